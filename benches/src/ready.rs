//! The first line the `dps-emulator` binary prints once it listens: a JSON object naming its
//! endpoints, read by every benchmark that runs the emulator as its own process.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::Child;

/// Where a freshly started emulator listens.
#[derive(Debug, Clone)]
pub struct Ready {
    /// `host:port` of its MQTT over TLS listener.
    pub endpoint: String,
    /// Its CA certificate (PEM file).
    pub ca: PathBuf,
    /// Its DPS id scope.
    pub scope: String,
}

/// Reads the ready line from `child`'s standard output (which must be piped); `Ok(None)` when
/// the emulator ended without printing one (it failed to start).
///
/// # Errors
/// The line cannot be read, or is not the emulator's ready line.
pub fn read(child: &mut Child) -> Result<Option<Ready>, String> {
    let stdout = child
        .stdout
        .take()
        .ok_or("the emulator's stdout is not piped")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading the emulator's ready line: {e}"))?;
    if line.trim().is_empty() {
        return Ok(None);
    }
    let info: serde_json::Value = serde_json::from_str(&line)
        .map_err(|e| format!("no ready line from the emulator ({e}): {line:?}"))?;
    let field = |name: &str| {
        info[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} in the emulator's ready line: {line}"))
    };
    Ok(Some(Ready {
        endpoint: field("mqttEndpoint")?,
        ca: PathBuf::from(field("caFile")?),
        scope: field("idScope")?,
    }))
}
