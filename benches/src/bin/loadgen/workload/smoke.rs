//! The CI smoke run.

use crate::Error;
use crate::bench::Bench;
use crate::cli::{Kind, Mode, Opts};
use crate::emulator::Emulator;
use crate::env::Env;
use dps_benches::measure;
use std::io::Write as _;
use std::time::Instant;

/// CI: the emulator (debug build) and five devices through this SDK; no files written.
pub(crate) fn smoke() -> Result<(), Error> {
    let started = Instant::now();
    let env = Env::detect()?;
    let _ = measure::raise_fd_limit();
    println!("loadgen smoke: {}", measure::machine());
    let opts = Opts {
        clients: vec![Kind::Sdk],
        runs: 1,
        devices: 5,
        curve: vec![],
        latency_runs: 0,
        messages: 0,
        no_write: true,
        no_netns: true,
    };
    let emulator = Emulator::start(&env, 0)?;
    let mut bench = Bench {
        env: &env,
        emulator: Some(emulator),
        port: 0,
        python: None,
        clients: opts.clients.clone(),
        opts: &opts,
    };
    let result = bench.run(Kind::Sdk, Mode::Fleet, 5, 5, "smoke");
    if let Some(emulator) = bench.emulator.take() {
        emulator.stop();
    }
    let result = result?;
    std::io::stdout().flush()?;
    if result.ok != 5 {
        return Err(format!(
            "smoke: {} of 5 devices assigned: {:?}",
            result.ok, result.errors
        )
        .into());
    }
    println!(
        "smoke: 5 devices assigned in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
