//! The latency workload: one device at a time, phase by phase.

use crate::Error;
use crate::bench::Bench;
use crate::cli::{Kind, Mode};
use crate::report::save_json;
use crate::result::RunResult;

impl Bench<'_> {
    pub(crate) fn latency(&mut self) -> Result<Vec<(Kind, RunResult)>, Error> {
        let n = self.opts.latency_runs;
        println!("\nlatency: {n} registrations one after the other, per client");
        let mut results = Vec::new();
        for kind in self.clients.clone() {
            let prefix = format!("{}-latency", kind.name());
            results.push((kind, self.run(kind, Mode::Latency, n, 1, &prefix)?));
        }
        save_json(self.env, self.opts, "latency.json", &results)?;
        Ok(results)
    }
}
