//! Where the run happens: paths, CPU pinning, the network namespace and the machine notes.

use crate::Error;
use crate::cli::Opts;
use dps_benches::measure;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where things are.
pub(crate) struct Env {
    pub(crate) root: PathBuf,
    pub(crate) exe: PathBuf,
    pub(crate) cargo: String,
    pub(crate) release: bool,
    pub(crate) pin: bool,
    pub(crate) netns: bool,
}

impl Env {
    pub(crate) fn detect() -> Result<Self, Error> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace root")?
            .to_owned();
        let pin = Command::new("taskset")
            .args(["-c", "0", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && std::thread::available_parallelism().map_or(1, std::num::NonZero::get) >= 2;
        Ok(Self {
            root,
            exe: std::env::current_exe()?,
            cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            release: !cfg!(debug_assertions),
            pin,
            netns: std::env::var_os("LOADGEN_NETNS").is_some(),
        })
    }

    /// `program` pinned to `core` when pinning is available.
    pub(crate) fn pinned(&self, core: u32, program: &Path) -> Command {
        if self.pin {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(core.to_string()).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    pub(crate) fn results_dir(&self) -> PathBuf {
        self.root.join("benches/results")
    }

    pub(crate) fn profile(&self) -> &'static str {
        if self.release { "release" } else { "debug" }
    }
}

/// Re-runs this command inside a private network namespace (root only), so that port 8883 is
/// free for the emulator whatever else runs on the machine. Returns `Some(exit status)` when it
/// did.
pub(crate) fn reenter_in_netns(opts: &Opts) -> Option<std::process::ExitStatus> {
    if opts.no_netns
        || std::env::var_os("LOADGEN_NETNS").is_some()
        || !nix::unistd::Uid::effective().is_root()
    {
        return None;
    }
    let usable = Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    Command::new("unshare")
        .args(["-n", "sh", "-c", r#"ip link set lo up && exec "$@""#, "sh"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("LOADGEN_NETNS", "1")
        .status()
        .ok()
}

/// What the run ran on, printed first and written into the report.
pub(crate) struct Environment {
    pub(crate) machine: String,
    pub(crate) load: String,
    pub(crate) notes: Vec<String>,
}

impl Environment {
    pub(crate) fn now(env: &Env, fd_limit: u64) -> Self {
        let commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&env.root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            machine: measure::machine(),
            load: measure::load_average(),
            notes: vec![
                format!("run: {date}, commit {commit}, {} build", env.profile()),
                format!(
                    "placement: {}",
                    if env.pin {
                        "emulator pinned to core 1, each client process to core 0 (taskset)"
                    } else {
                        "not pinned (taskset unavailable or one core)"
                    }
                ),
                format!(
                    "network: loopback{}; open-files limit {fd_limit}",
                    if env.netns {
                        " of a private network namespace"
                    } else {
                        ""
                    }
                ),
            ],
        }
    }

    pub(crate) fn text(&self) -> String {
        let mut text = format!(
            "- machine: {}\n- load average before the run: {}",
            self.machine, self.load
        );
        for note in &self.notes {
            text.push_str(&format!("\n- {note}"));
        }
        text
    }
}
