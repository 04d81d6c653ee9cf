//! Crash-safe persistence of the emulator's state files.
//!
//! Every file is replaced atomically: the new content goes to a temporary file in the same
//! directory, is flushed to disk, and is then renamed over the target (and the directory entry is
//! flushed too). A crash at any point leaves either the old file or the new one, never a torn mix.
//! Temporary files left behind by a crash have names that never collide with a target file and
//! are simply ignored by [`JsonFile::load`].
//!
//! These helpers use blocking file I/O; the files are small. From async code call them directly
//! for startup/shutdown work, or through `tokio::task::spawn_blocking` on hot paths.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Marker inside the names of temporary files: `.{file name}.tmp-{pid}-{n}`.
const TEMP_MARKER: &str = ".tmp-";

/// Distinguishes temporary files of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces `path` with `bytes` (temp file in the same directory, fsync, rename,
/// fsync of the directory). The file gets the process's default permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, false)
}

/// Like [`write_atomic`], but the file is readable and writable by its owner only (mode 0600 on
/// Unix), from the moment it is created: for private keys and shared access keys.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, true)
}

fn write_atomic_with(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = dir.join(temp_name(file_name));

    let result = (|| {
        let mut file = open_new(&temp, private)?;
        file.write_all(bytes)?;
        // The data must be on disk before the rename makes it visible under the real name.
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        // Best effort: a stray temp file is harmless, but do not leave it behind needlessly.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn temp_name(file_name: &std::ffi::OsStr) -> OsString {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!("{TEMP_MARKER}{}-{n}", std::process::id()));
    name
}

/// Whether `file_name` is a temporary file left by [`write_atomic`] (e.g. after a crash).
pub fn is_temp_file_name(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(TEMP_MARKER)
}

#[cfg(unix)]
fn open_new(path: &Path, private: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if private {
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _private: bool) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    // Makes the rename itself durable.
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing on Windows; the rename is durable enough there.
    Ok(())
}

/// A failure to load or save a persisted file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not hold valid JSON for the expected type.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

/// A typed JSON file replaced atomically on every save.
///
/// A missing file loads as `T::default()`, so a fresh data directory needs no setup.
pub struct JsonFile<T> {
    path: PathBuf,
    // `fn() -> T`: the handle neither owns a `T` nor restricts Send/Sync.
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for JsonFile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonFile")
            .field("path", &self.path)
            .finish()
    }
}

impl<T> Clone for JsonFile<T> {
    fn clone(&self) -> Self {
        Self::new(self.path.clone())
    }
}

impl<T> JsonFile<T> {
    /// A handle on the JSON file at `path` (nothing is read or created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            _type: PhantomData,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T: Serialize + DeserializeOwned + Default> JsonFile<T> {
    /// Reads the file; a missing file yields `T::default()`.
    pub fn load(&self) -> Result<T, PersistError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| PersistError::Json {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
            Err(source) => Err(PersistError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Writes `value` as pretty-printed JSON, atomically.
    pub fn save(&self, value: &T) -> Result<(), PersistError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| PersistError::Json {
            path: self.path.clone(),
            source,
        })?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(|source| PersistError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type State = BTreeMap<String, u32>;

    #[test]
    fn missing_file_loads_default_and_save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let file = JsonFile::<State>::new(dir.path().join("state.json"));
        assert!(file.load().unwrap().is_empty());
        let mut state = State::new();
        state.insert("a".into(), 1);
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        state.insert("b".into(), 2);
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
    }

    #[test]
    fn interrupted_write_leaves_old_content_and_stray_temp_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = JsonFile::<State>::new(dir.path().join("state.json"));
        let mut old = State::new();
        old.insert("old".into(), 7);
        file.save(&old).unwrap();

        // A crash between "write temp" and "rename" leaves a partial temp file behind.
        let stray = dir.path().join(".state.json.tmp-999-0");
        fs::write(&stray, b"{\"new\": 8, \"trunc").unwrap();
        assert!(is_temp_file_name(".state.json.tmp-999-0"));
        assert!(!is_temp_file_name("state.json"));

        assert_eq!(file.load().unwrap(), old);
        // The next save still works and does not collide with the stray file.
        let mut new = State::new();
        new.insert("new".into(), 8);
        file.save(&new).unwrap();
        assert_eq!(file.load().unwrap(), new);
    }

    #[test]
    fn no_temp_files_remain_after_save() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join("x.bin"), b"hello").unwrap();
        write_atomic(&dir.path().join("x.bin"), b"world").unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["x.bin".to_string()]);
        assert_eq!(fs::read(dir.path().join("x.bin")).unwrap(), b"world");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_atomic_private(&path, b"secret").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"not json").unwrap();
        let file = JsonFile::<State>::new(&path);
        assert!(matches!(file.load(), Err(PersistError::Json { .. })));
    }
}
