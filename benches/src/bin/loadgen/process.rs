//! Child processes: the Python venv and waiting with a time limit.

use crate::Error;
use crate::env::Env;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The Python interpreter of the official SDK's venv (the interop suite's recipe).
pub(crate) fn python_venv(env: &Env) -> Result<PathBuf, Error> {
    let venv = env.root.join("target/interop-venv");
    let python = venv.join("bin/python");
    let requirements = env.root.join("interop/requirements.txt");
    let current = std::fs::read(venv.join("requirements.txt")).ok();
    if !python.exists() || current != std::fs::read(&requirements).ok() {
        println!("creating {} (the official Python SDK)", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()?
                .success();
        if !ok {
            return Err("cannot create the Python venv".into());
        }
        std::fs::copy(&requirements, venv.join("requirements.txt"))?;
    }
    Ok(python)
}

pub(crate) fn wait_with_timeout(
    mut child: Child,
    limit: Duration,
) -> Result<std::process::Output, Error> {
    // Read both pipes on threads so that a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().map_err(|_| "reader panicked")??,
        stderr: err.join().map_err(|_| "reader panicked")??,
    })
}
