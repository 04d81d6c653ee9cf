//! The hub workload: telemetry on 1 and 100 connections, and idle connections.

use crate::Error;
use crate::bench::Bench;
use crate::cli::{Kind, Mode};
use crate::report::save_json;
use crate::result::{HubResults, HubScenario, RunResult};

impl Bench<'_> {
    /// Telemetry on 1 and 100 connections, and 1,000 idle connections: each on a restarted
    /// emulator whose devices were first registered through DPS (by the raw client, not
    /// measured).
    pub(crate) fn hub(&mut self) -> Result<HubResults, Error> {
        let scenarios = [
            (HubScenario::TelemetryOne, Mode::Telemetry, 1, 16),
            (HubScenario::TelemetryHundred, Mode::Telemetry, 100, 16),
            (HubScenario::Idle, Mode::Idle, 1000, 0),
        ];
        println!("\nhub: telemetry (window 16) on 1 and 100 connections; 1,000 idle connections");
        let mut results: HubResults = Vec::new();
        for (scenario, mode, connections, window) in scenarios {
            let mut per_kind: Vec<(Kind, Vec<RunResult>)> =
                self.clients.iter().map(|&k| (k, Vec::new())).collect();
            for run in 0..self.opts.runs {
                for (kind, runs) in &mut per_kind {
                    // The Python SDK is slow at this: one run.
                    if *kind == Kind::Python && run > 0 {
                        continue;
                    }
                    let prefix = format!("{}-{}-r{run}", kind.name(), scenario.key());
                    self.restart_emulator()?;
                    let provisioned =
                        self.child(Kind::Raw, Mode::Fleet, connections, 100, &prefix, 0)?;
                    if provisioned.ok != connections {
                        return Err(format!(
                            "provisioning for the hub runs: {:?}",
                            provisioned.errors
                        )
                        .into());
                    }
                    let messages = match (mode, *kind) {
                        (Mode::Telemetry, Kind::Python) => self.opts.messages / 10,
                        (Mode::Telemetry, _) => self.opts.messages,
                        _ => 0,
                    };
                    runs.push(self.child(*kind, mode, connections, window, &prefix, messages)?);
                }
            }
            results.push((scenario, per_kind));
        }
        save_json(self.env, self.opts, "hub.json", &results)?;
        Ok(results)
    }
}
