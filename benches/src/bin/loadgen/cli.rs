//! The command line: the subcommands, their options and the client kinds.

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "System benchmarks: this SDK vs the official Python SDK vs a raw MQTT baseline"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Everything: micro-benchmarks (criterion + allocation counts), fleet, scaling curve,
    /// single-registration latency; writes BENCHMARKS.md and benches/results/.
    All(Opts),
    /// A tiny run for CI: the emulator and a few devices with this SDK; writes nothing.
    Smoke,
    /// Criterion micro-benchmarks and allocation counts.
    Micro(Opts),
    /// Fleet provisioning: `--devices` devices all in flight at once.
    Fleet(Opts),
    /// The concurrency curve (`--curve` in-flight levels).
    Curve(Opts),
    /// Single-registration latency (median over `--latency-runs`) and its breakdown.
    Latency(Opts),
    /// Fleet, curve and latency (everything but the micro-benchmarks and the hub).
    System(Opts),
    /// IoT Hub: telemetry throughput on 1 and 100 connections, memory per idle connection.
    Hub(Opts),
    /// Internal: one client run in this process (what the orchestrator spawns).
    #[command(hide = true)]
    Client(ClientArgs),
}

#[derive(clap::Args, Clone)]
pub(crate) struct Opts {
    /// The clients to compare.
    #[arg(long, value_delimiter = ',', default_value = "sdk,raw,python")]
    pub(crate) clients: Vec<Kind>,
    /// Repetitions of each fleet and curve measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Devices of the fleet figure (all in flight at once).
    #[arg(long, default_value_t = 1000)]
    pub(crate) devices: usize,
    /// In-flight levels of the scaling curve.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,5000")]
    pub(crate) curve: Vec<usize>,
    /// Sequential registrations of the latency figure.
    #[arg(long, default_value_t = 30)]
    pub(crate) latency_runs: usize,
    /// Telemetry messages of each hub run (this SDK and the raw baseline; the Python SDK sends
    /// a tenth). Raise it to profile the telemetry path: the connections' setup then weighs
    /// little in the samples.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) messages: usize,
    /// Print only: leave BENCHMARKS.md and benches/results/ alone.
    #[arg(long)]
    pub(crate) no_write: bool,
    /// Stay in the current network namespace (the Python SDK then needs port 8883 free).
    #[arg(long)]
    pub(crate) no_netns: bool,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Sdk,
    Raw,
    Python,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Sdk => "this SDK",
            Self::Raw => "raw baseline",
            Self::Python => "Python SDK",
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sdk => "sdk",
            Self::Raw => "raw",
            Self::Python => "python",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Fleet,
    Latency,
    Telemetry,
    Idle,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Fleet => "fleet",
            Self::Latency => "latency",
            Self::Telemetry => "telemetry",
            Self::Idle => "idle",
        }
    }
}

#[derive(clap::Args, Clone)]
pub(crate) struct ClientArgs {
    #[arg(long)]
    pub(crate) kind: Kind,
    #[arg(long)]
    pub(crate) mode: Mode,
    /// `host:port` of the emulator's MQTT listener.
    #[arg(long)]
    pub(crate) endpoint: String,
    #[arg(long)]
    pub(crate) ca: PathBuf,
    #[arg(long)]
    pub(crate) scope: String,
    #[arg(long)]
    pub(crate) group_key: String,
    #[arg(long)]
    pub(crate) devices: usize,
    #[arg(long)]
    pub(crate) concurrency: usize,
    #[arg(long)]
    pub(crate) prefix: String,
    /// Telemetry: messages to send in all.
    #[arg(long, default_value_t = 0)]
    pub(crate) messages: usize,
    /// Idle: how long the connections stay idle before RSS is read.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) idle_seconds: f64,
}
