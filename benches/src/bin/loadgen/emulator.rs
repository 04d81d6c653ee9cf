//! The emulator process that every client run faces.

use crate::Error;
use crate::env::Env;
use dps_benches::measure;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The emulator process.
pub(crate) struct Emulator {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) endpoint: String,
    pub(crate) ca: PathBuf,
    pub(crate) scope: String,
    pub(crate) group_key: String,
    pub(crate) data_dir: PathBuf,
}

impl Emulator {
    /// Builds the emulator binary (a no-op when it is fresh) and starts it.
    pub(crate) fn start(env: &Env, port: u16) -> Result<Self, Error> {
        let mut build = Command::new(&env.cargo);
        build.args([
            "build",
            "--quiet",
            "-p",
            "dps-emulator",
            "--bin",
            "dps-emulator",
        ]);
        if env.release {
            build.arg("--release");
        }
        if !build.current_dir(&env.root).status()?.success() {
            return Err("cannot build the emulator".into());
        }
        Self::spawn(env, port)
    }

    /// Stops the emulator and starts it again on an empty store (the CA and keys are kept), so
    /// that every client run meets the same emulator state: its store is rewritten whole on
    /// every flush, so thousands of registrations left from earlier runs would slow it down.
    pub(crate) fn restart(mut self, env: &Env, port: u16) -> Result<Self, Error> {
        self.stop_keeping_data();
        Self::spawn(env, port)
    }

    pub(crate) fn spawn(env: &Env, port: u16) -> Result<Self, Error> {
        // Where cargo put the workspace's binaries (CARGO_TARGET_DIR moves them).
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env.root.join("target"));
        let binary = target.join(env.profile()).join("dps-emulator");
        let data_dir = env
            .root
            .join("target/loadgen")
            .join(format!("emulator-{}", std::process::id()));
        // An empty store, not a missing one: the emulator refuses to start when the store of a
        // data directory with keys has gone missing. An empty snapshot in the place of the
        // database is migrated into a new, empty one. Fails harmlessly on the first start.
        let _ = std::fs::remove_file(data_dir.join("state/state.redb"));
        let _ = std::fs::write(data_dir.join("state/state.json"), b"{}\n");
        std::fs::create_dir_all(&data_dir)?;
        // A fixed group key: the benchmarks need a key, not a secret.
        let group_key =
            "bG9hZGdlbi1ncm91cC1rZXktZm9yLXRoZS1iZW5jaG1hcmtzLW9mLWlzc3VlLTctMDAwMDAwMDA=";
        let config = serde_json::json!({
            "behaviour": {"retryAfterSeconds": 0, "pollsBeforeAssignment": 1},
            "enrollmentGroups": [{
                "enrollmentGroupId": "fleet",
                "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": group_key, "secondaryKey": group_key}}
            }]
        });
        let config_path = data_dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = std::fs::File::create(data_dir.join("emulator.log"))?;
        let mut child = env
            .pinned(1, &binary)
            .arg("--data-dir")
            .arg(data_dir.join("state"))
            .args([
                "--mqtt-port",
                &port.to_string(),
                "--https-port",
                "0",
                "--config",
            ])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        let Some(ready) = dps_benches::ready::read(&mut child)? else {
            let _ = child.wait();
            let log = std::fs::read_to_string(data_dir.join("emulator.log")).unwrap_or_default();
            return Err(format!(
                "the emulator did not start (port {port} busy? run as root for a private network \
                 namespace, or leave out --clients python):\n{log}"
            )
            .into());
        };
        Ok(Self {
            child,
            pid,
            endpoint: ready.endpoint,
            ca: ready.ca,
            scope: ready.scope,
            group_key: group_key.to_owned(),
            data_dir,
        })
    }

    /// CPU time so far: `/proc/<pid>/stat` (all threads, 10 ms ticks) and the finer
    /// schedstat sum of the live threads.
    pub(crate) fn cpu(&self) -> (Duration, Duration) {
        (
            measure::pid_cpu(self.pid).unwrap_or_default(),
            measure::pid_schedstat(self.pid).unwrap_or_default(),
        )
    }

    pub(crate) fn stop_keeping_data(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }

    pub(crate) fn stop(mut self) {
        self.stop_keeping_data();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
