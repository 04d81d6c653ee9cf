//! The data directory: created owner-only, cleaned of what an interrupted write left, checked
//! for a lost store; and the service key kept in it.

use std::path::Path;

use super::{EmulatorError, LEGACY_STORE_FILE, SERVICE_KEY_FILE, STORE_FILE};
use crate::config::EmulatorConfig;
use crate::tls::{CA_KEY_FILE, SERVER_KEY_FILE};

/// Reads the service key from the config or the data dir, creating and saving one if needed.
pub(super) fn service_key(config: &EmulatorConfig) -> Result<String, EmulatorError> {
    if let Some(key) = &config.service_key {
        return Ok(key.clone());
    }
    let path = config.data_dir.join(SERVICE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = crate::util::ids::service_key();
            crate::persist::write_atomic_private(&path, key.as_bytes()).map_err(|e| {
                EmulatorError::ServiceKey(format!("cannot save {}: {e}", path.display()))
            })?;
            Ok(key)
        }
        Err(e) => Err(EmulatorError::ServiceKey(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Creates the data directory (owner-only: it holds keys and every enrollment's secrets),
/// removes what an interrupted write left, and checks that the store of an earlier run is
/// still there; on a fresh directory it creates the empty store first, before any key, so a
/// later start can tell "fresh" from "lost".
pub(crate) fn prepare_data_dir(dir: &Path) -> Result<(), EmulatorError> {
    let io_error = |source| EmulatorError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    create_private_dir(dir).map_err(io_error)?;
    // A crash (`kill -9`) mid-write leaves temporary files behind; they are never valid state
    // and may hold secrets.
    let removed = crate::persist::remove_temp_files(dir).map_err(io_error)?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed temporary files left by an interrupted write"
        );
    }
    let store = dir.join(STORE_FILE);
    if store.try_exists().map_err(io_error)?
        || dir.join(LEGACY_STORE_FILE).try_exists().map_err(io_error)?
    {
        return Ok(());
    }
    let earlier = [CA_KEY_FILE, SERVICE_KEY_FILE, SERVER_KEY_FILE]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists());
    if let Some(found) = earlier {
        return Err(EmulatorError::StoreMissing { store, found });
    }
    crate::store::create(&store).map_err(EmulatorError::Store)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Only directories created here get 0700; an existing directory is the user's choice.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}
