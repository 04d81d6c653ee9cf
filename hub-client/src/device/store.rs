//! Where the device keeps its assignment between runs: [`FileStore`] (the default), or any
//! [`AssignmentStore`].

use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use dps_core::device::{AssignmentRecord, AssignmentStore, StoreAction};

/// The assignment in one JSON file, replaced atomically: written to a temporary file next to
/// it, flushed to disk, then renamed over it (a crash leaves the old record or the new one,
/// never half of one). Owner-only permissions (0600) on Unix. The record holds no secret: the
/// hub, the device id, the returned payload and the issued certificate chain (public).
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why the assignment file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the assignment file {path} could not be {action}: {source}")]
#[non_exhaustive]
pub struct FileStoreError {
    /// The file.
    pub path: PathBuf,
    /// `read`, `written` or `removed`.
    pub action: &'static str,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

impl FileStore {
    fn error(&self, action: &'static str, source: io::Error) -> FileStoreError {
        FileStoreError {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

impl AssignmentStore for FileStore {
    type Error = FileStoreError;

    fn load(&mut self) -> Result<Option<AssignmentRecord>, FileStoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error("read", e)),
        };
        match AssignmentRecord::from_json(&text) {
            Ok(record) => Ok(Some(record)),
            Err(error) => {
                // An unreadable record is no record: the device provisions again.
                tracing::warn!(path = %self.path.display(), %error, "ignoring the stored assignment");
                Ok(None)
            }
        }
    }

    fn save(&mut self, record: &AssignmentRecord) -> Result<(), FileStoreError> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(record.to_json().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename itself is durable once the directory is.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(dir) = std::fs::File::open(dir) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        };
        write().map_err(|e| self.error("written", e))
    }

    fn clear(&mut self) -> Result<(), FileStoreError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.error("removed", e)),
            _ => Ok(()),
        }
    }
}

/// An [`AssignmentStore`] of any error type, behind one object.
pub(crate) trait AnyStore: Send {
    fn load(&mut self) -> Result<Option<AssignmentRecord>, String>;
    fn apply(&mut self, action: &StoreAction) -> Result<(), String>;
}

impl<S> AnyStore for S
where
    S: AssignmentStore + Send,
    S::Error: fmt::Display,
{
    fn load(&mut self) -> Result<Option<AssignmentRecord>, String> {
        AssignmentStore::load(self).map_err(|e| e.to_string())
    }

    fn apply(&mut self, action: &StoreAction) -> Result<(), String> {
        AssignmentStore::apply(self, action).map_err(|e| e.to_string())
    }
}

/// A store that keeps nothing between runs (every start provisions).
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct NoStore;

impl AssignmentStore for NoStore {
    type Error = std::convert::Infallible;

    fn load(&mut self) -> Result<Option<AssignmentRecord>, Self::Error> {
        Ok(None)
    }

    fn save(&mut self, _record: &AssignmentRecord) -> Result<(), Self::Error> {
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
