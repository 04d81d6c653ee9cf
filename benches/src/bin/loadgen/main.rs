//! `loadgen`: the system benchmarks of issue 7, side by side for three clients against one
//! emulator process: this SDK (`dps-client`), the official Python SDK (`benches/python/fleet.py`)
//! and the raw baseline (`dps_benches::raw`).
//!
//! ```text
//! cargo run --release -p dps-benches --bin loadgen -- all     # everything, writes BENCHMARKS.md
//! cargo run -p dps-benches --bin loadgen -- smoke             # a few devices, seconds (CI)
//! loadgen fleet | curve | latency | micro [--runs N] [--clients sdk,raw,python] [--no-write]
//! ```
//!
//! How it measures: the emulator binary runs as its own process pinned to core 1 (`taskset -c
//! 1`), with `retryAfterSeconds` 0, and its CPU is read from `/proc/<pid>/stat` around every
//! client run. Each client run is a child process pinned to core 0 (`loadgen client ...` or the
//! Python script), which reports its own peak RSS (`VmHWM`) and CPU (`getrusage`) as one JSON
//! line. When run as root, the whole run moves into a private network namespace (`unshare
//! -n`), so the emulator can take port 8883 (the Python SDK's only port) without clashing with
//! anything else on the machine. Results go to `benches/results/*.json`, the plot to
//! `benches/results/scaling.png`, the tables into the generated sections of `BENCHMARKS.md`.

use crate::cli::{Cli, Cmd};
use crate::client::client_main;
use crate::orchestrate::{Part, orchestrate};
use crate::workload::smoke::smoke;
use clap::Parser as _;

mod bench;
mod cli;
mod client;
mod emulator;
mod env;
mod orchestrate;
mod process;
mod report;
mod result;
mod workload;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Client(args) => client_main(&args),
        Cmd::Smoke => smoke(),
        Cmd::All(opts) => orchestrate(
            &[
                Part::Micro,
                Part::Fleet,
                Part::Curve,
                Part::Latency,
                Part::Hub,
            ],
            &opts,
        ),
        Cmd::Micro(opts) => orchestrate(&[Part::Micro], &opts),
        Cmd::Fleet(opts) => orchestrate(&[Part::Fleet], &opts),
        Cmd::Curve(opts) => orchestrate(&[Part::Curve], &opts),
        Cmd::Latency(opts) => orchestrate(&[Part::Latency], &opts),
        Cmd::System(opts) => orchestrate(&[Part::Fleet, Part::Curve, Part::Latency], &opts),
        Cmd::Hub(opts) => orchestrate(&[Part::Hub], &opts),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;
