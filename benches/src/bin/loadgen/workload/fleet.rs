//! The fleet workload: every device in flight at once.

use crate::Error;
use crate::bench::Bench;
use crate::cli::{Kind, Mode};
use crate::report::save_json;
use crate::result::Fleet;

impl Bench<'_> {
    pub(crate) fn fleet(&mut self) -> Result<Fleet, Error> {
        let n = self.opts.devices;
        println!(
            "\nfleet: {n} devices, all in flight, {} runs",
            self.opts.runs
        );
        let mut results: Fleet = self.clients.iter().map(|&k| (k, Vec::new())).collect();
        for run in 0..self.opts.runs {
            for (kind, runs) in &mut results {
                // The Python SDK needs minutes per fleet run (its devices time out): one run.
                if *kind == Kind::Python && run > 0 {
                    continue;
                }
                let prefix = format!("{}-fleet-r{run}", kind.name());
                let result = self.run(*kind, Mode::Fleet, n, n, &prefix)?;
                runs.push(result);
            }
        }
        save_json(self.env, self.opts, "fleet.json", &results)?;
        Ok(results)
    }
}
