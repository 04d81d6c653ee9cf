//! One client run as a child process against the emulator process.

use crate::Error;
use crate::cli::{Kind, Mode, Opts};
use crate::emulator::Emulator;
use crate::env::Env;
use crate::process::wait_with_timeout;
use crate::result::RunResult;
use dps_benches::measure;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

pub(crate) struct Bench<'a> {
    pub(crate) env: &'a Env,
    pub(crate) emulator: Option<Emulator>,
    pub(crate) port: u16,
    pub(crate) python: Option<PathBuf>,
    pub(crate) clients: Vec<Kind>,
    pub(crate) opts: &'a Opts,
}

impl Bench<'_> {
    pub(crate) fn restart_emulator(&mut self) -> Result<(), Error> {
        let emulator = self.emulator.take().ok_or("no emulator")?;
        self.emulator = Some(emulator.restart(self.env, self.port)?);
        Ok(())
    }

    /// One client run on a freshly restarted emulator.
    pub(crate) fn run(
        &mut self,
        kind: Kind,
        mode: Mode,
        devices: usize,
        concurrency: usize,
        prefix: &str,
    ) -> Result<RunResult, Error> {
        self.restart_emulator()?;
        self.child(kind, mode, devices, concurrency, prefix, 0)
    }

    /// One client run on the emulator as it is.
    pub(crate) fn child(
        &self,
        kind: Kind,
        mode: Mode,
        devices: usize,
        concurrency: usize,
        prefix: &str,
        messages: usize,
    ) -> Result<RunResult, Error> {
        let em = self.emulator.as_ref().ok_or("no emulator")?;
        let mut cmd = match kind {
            Kind::Python => {
                let python = self.python.as_ref().ok_or("no python")?;
                let mut cmd = self.env.pinned(0, python);
                let script = if matches!(mode, Mode::Fleet | Mode::Latency) {
                    "benches/python/fleet.py"
                } else {
                    "benches/python/hub.py"
                };
                cmd.arg(self.env.root.join(script)).args([
                    "--host",
                    em.endpoint.rsplit_once(':').map_or("localhost", |(h, _)| h),
                ]);
                cmd
            }
            Kind::Sdk | Kind::Raw => {
                let mut cmd = self.env.pinned(0, &self.env.exe);
                cmd.args(["client", "--kind", kind.name(), "--endpoint", &em.endpoint]);
                cmd
            }
        };
        cmd.args(["--mode", mode.as_str()])
            .args(["--messages", &messages.to_string()])
            .arg("--ca")
            .arg(&em.ca)
            .args(["--scope", &em.scope, "--group-key", &em.group_key])
            .args([
                "--devices",
                &devices.to_string(),
                "--concurrency",
                &concurrency.to_string(),
            ])
            .args(["--prefix", prefix])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (stat_before, sched_before) = em.cpu();
        let retransmits_before = measure::tcp_retransmits();
        let (busy_before, total_before) = measure::machine_jiffies();
        let child = cmd.spawn()?;
        let output = wait_with_timeout(child, Duration::from_secs(900))?;
        let (stat_after, sched_after) = em.cpu();
        let (busy_after, total_after) = measure::machine_jiffies();
        let emulator_cpu = stat_after
            .saturating_sub(stat_before)
            .max(sched_after.saturating_sub(sched_before));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
            return Err(format!(
                "{} run gave no result ({}): {}",
                kind.name(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
            .into());
        };
        let mut result: RunResult = serde_json::from_str(line)?;
        result.emulator_cpu_s = emulator_cpu.as_secs_f64();
        result.retransmits = measure::tcp_retransmits().saturating_sub(retransmits_before);
        result.machine_busy_pct = 100.0 * busy_after.saturating_sub(busy_before) as f64
            / total_after.saturating_sub(total_before).max(1) as f64;
        println!(
            "  {:<6} {mode:?} {devices:>5} devices, {concurrency:>5} in flight: {} ok, {} failed, {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, peak RSS {:.1} MiB, CPU {:.3} s ({:.0} µs/reg), emulator {:.0} µs/reg, {} TCP retransmits, machine {:.0} % busy{}",
            kind.name(),
            result.ok,
            result.failed,
            result.rate(),
            result.p50_ms,
            result.p99_ms,
            result.peak_rss_kib as f64 / 1024.0,
            result.cpu_s,
            result.cpu_us_per_registration(),
            result.emulator_us_per_registration(),
            result.retransmits,
            result.machine_busy_pct,
            if result.errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {:?}", result.errors)
            },
        );
        Ok(result)
    }
}
