//! What the runs report: one client run, and the results of each workload.

use crate::cli::Kind;
use dps_benches::raw::Breakdown;
use serde::{Deserialize, Serialize};

/// What one client run reports (the Python script prints the same fields).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RunResult {
    pub(crate) client: String,
    pub(crate) devices: usize,
    pub(crate) concurrency: usize,
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) elapsed_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) rss_start_kib: u64,
    #[serde(default)]
    pub(crate) rss_end_kib: u64,
    pub(crate) peak_rss_kib: u64,
    pub(crate) cpu_s: f64,
    #[serde(default)]
    pub(crate) samples_ms: Vec<f64>,
    #[serde(default)]
    pub(crate) breakdowns: Vec<Breakdown>,
    #[serde(default)]
    pub(crate) errors: Vec<String>,
    /// Filled in by the orchestrator: the emulator's CPU seconds during the run.
    #[serde(default)]
    pub(crate) emulator_cpu_s: f64,
    /// Filled in by the orchestrator: TCP segments retransmitted during the run.
    #[serde(default)]
    pub(crate) retransmits: u64,
    /// Filled in by the orchestrator: how busy the whole machine was during the run (%).
    #[serde(default)]
    pub(crate) machine_busy_pct: f64,
}

impl RunResult {
    pub(crate) fn rate(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ok as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
    pub(crate) fn cpu_us_per_registration(&self) -> f64 {
        if self.ok == 0 {
            f64::NAN
        } else {
            self.cpu_s * 1e6 / self.ok as f64
        }
    }
    pub(crate) fn emulator_us_per_registration(&self) -> f64 {
        if self.ok == 0 {
            f64::NAN
        } else {
            self.emulator_cpu_s * 1e6 / self.ok as f64
        }
    }
}

/// Fleet results: per client, one result per run.
pub(crate) type Fleet = Vec<(Kind, Vec<RunResult>)>;

/// Curve results: per in-flight level, per client, the runs.
pub(crate) type Curve = Vec<(usize, Vec<(Kind, Vec<RunResult>)>)>;

/// The hub measurements.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub(crate) enum HubScenario {
    TelemetryOne,
    TelemetryHundred,
    Idle,
}

impl HubScenario {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::TelemetryOne => "tel1",
            Self::TelemetryHundred => "tel100",
            Self::Idle => "idle",
        }
    }
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::TelemetryOne => "1 connection",
            Self::TelemetryHundred => "100 connections",
            Self::Idle => "1,000 idle connections",
        }
    }
}

/// Hub results: per scenario, per client, the runs.
pub(crate) type HubResults = Vec<(HubScenario, Vec<(Kind, Vec<RunResult>)>)>;
