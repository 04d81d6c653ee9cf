//! The orchestrator: runs the requested parts in order and writes their sections.

use crate::Error;
use crate::bench::Bench;
use crate::cli::{Kind, Opts};
use crate::emulator::Emulator;
use crate::env::{Env, Environment, reenter_in_netns};
use crate::process::python_venv;
use crate::report::{Sections, curve_section, fleet_section, hub_section, latency_section};
use crate::workload::micro::micro;
use dps_benches::measure;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Part {
    Micro,
    Fleet,
    Curve,
    Latency,
    /// Telemetry throughput and idle-connection memory: need the IoT Hub client and the
    /// emulator's hub side (issues 5 and 6).
    Hub,
}

pub(crate) fn orchestrate(parts: &[Part], opts: &Opts) -> Result<(), Error> {
    let system = parts.iter().any(|p| *p != Part::Micro);
    if system && opts.clients.contains(&Kind::Python) && std::env::var_os("LOADGEN_NETNS").is_none()
    {
        // Before the private network namespace: installing the SDK needs the package index.
        python_venv(&Env::detect()?)?;
    }
    if let Some(status) = reenter_in_netns(opts) {
        return if status.success() {
            Ok(())
        } else {
            Err(format!("the run in the private network namespace failed ({status})").into())
        };
    }
    let env = Env::detect()?;
    let fd_limit = measure::raise_fd_limit();
    let environment = Environment::now(&env, fd_limit);
    println!("{}", environment.text());
    let mut doc = Sections::new(&env, opts.no_write);
    doc.put("environment", &environment.text());

    if parts.contains(&Part::Micro) {
        micro(&env, &mut doc)?;
    }
    let system: Vec<Part> = parts
        .iter()
        .copied()
        .filter(|p| matches!(p, Part::Fleet | Part::Curve | Part::Latency | Part::Hub))
        .collect();
    if !system.is_empty() {
        let clients = opts.clients.clone();
        let python = if clients.contains(&Kind::Python) {
            Some(python_venv(&env)?)
        } else {
            None
        };
        let port = if clients.contains(&Kind::Python) {
            8883
        } else {
            0
        };
        let emulator = Emulator::start(&env, port)?;
        println!(
            "emulator: {} ({} build{}), restarted on an empty store before every client run",
            emulator.endpoint,
            env.profile(),
            if env.pin {
                ", pinned to core 1; clients on core 0"
            } else {
                ", not pinned"
            }
        );
        let mut bench = Bench {
            env: &env,
            emulator: Some(emulator),
            port,
            python,
            clients,
            opts,
        };
        let mut fleet = None;
        if system.contains(&Part::Fleet) || system.contains(&Part::Curve) {
            let results = bench.fleet()?;
            doc.put("fleet", &fleet_section(&results, opts));
            fleet = Some(results);
        }
        if system.contains(&Part::Curve) {
            let curve = bench.curve(fleet.as_ref())?;
            doc.put("curve", &curve_section(&env, &curve, opts)?);
        }
        if system.contains(&Part::Latency) {
            let latency = bench.latency()?;
            doc.put("latency", &latency_section(&latency, opts));
        }
        if system.contains(&Part::Hub) {
            let hub = bench.hub()?;
            doc.put("hub", &hub_section(&hub));
        }
        if let Some(emulator) = bench.emulator.take() {
            emulator.stop();
        }
    }
    let after = format!("load average after the run: {}", measure::load_average());
    println!("{after}");
    doc.put("environment", &format!("{}\n- {after}", environment.text()));
    doc.save()
}
