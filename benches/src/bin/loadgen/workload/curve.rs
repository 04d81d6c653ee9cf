//! The scaling curve: registrations per second against the number in flight.

use crate::Error;
use crate::bench::Bench;
use crate::cli::{Kind, Mode};
use crate::report::save_json;
use crate::result::{Curve, Fleet, RunResult};

impl Bench<'_> {
    /// How many devices a curve point registers: enough to keep `in_flight` busy for a while,
    /// and few enough that the Python SDK (2 s per device, one after the other) finishes.
    pub(crate) fn curve_devices(kind: Kind, in_flight: usize) -> usize {
        match kind {
            Kind::Python => in_flight.max(in_flight.saturating_mul(4).clamp(5, 200)),
            Kind::Sdk | Kind::Raw => in_flight.max(500),
        }
    }

    pub(crate) fn curve(&mut self, fleet: Option<&Fleet>) -> Result<Curve, Error> {
        println!("\ncurve: in flight {:?}", self.opts.curve);
        let mut curve: Curve = Vec::new();
        for c in self.opts.curve.clone() {
            let mut point: Vec<(Kind, Vec<RunResult>)> =
                self.clients.iter().map(|&k| (k, Vec::new())).collect();
            // The fleet figure is the curve's point at its size: reuse it.
            if c == self.opts.devices {
                if let Some(fleet) = fleet {
                    curve.push((c, fleet.clone()));
                    continue;
                }
            }
            // The Python SDK takes minutes per point: one run per point.
            for run in 0..self.opts.runs {
                for (kind, runs) in &mut point {
                    // One run for the Python SDK, and none beyond the fleet size: at 1,000 in
                    // flight two thirds of its devices already time out.
                    if *kind == Kind::Python && (run > 0 || c > self.opts.devices) {
                        continue;
                    }
                    let devices = Self::curve_devices(*kind, c);
                    let prefix = format!("{}-c{c}-r{run}", kind.name());
                    runs.push(self.run(*kind, Mode::Fleet, devices, c, &prefix)?);
                }
            }
            curve.push((c, point));
        }
        save_json(self.env, self.opts, "curve.json", &curve)?;
        Ok(curve)
    }
}
