//! Crash-safe persistence of the emulator's state files.
//!
//! Every file is replaced atomically: the new content goes to a temporary file in the same
//! directory, is flushed to disk, and is then renamed over the target (and the directory entry is
//! flushed too). A crash at any point leaves either the old file or the new one, never a torn mix.
//! Temporary files left behind by a crash have names that never collide with a target file and
//! are removed at start by [`remove_temp_files`].
//!
//! These helpers use blocking file I/O; the files are small. From async code call them directly
//! for startup/shutdown work, or through `tokio::task::spawn_blocking` on hot paths.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marker inside the names of temporary files: `.{file name}.tmp-{pid}-{n}`.
const TEMP_MARKER: &str = ".tmp-";

/// Distinguishes temporary files of concurrent writers within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Atomically replaces `path` with `bytes` (temp file in the same directory, fsync, rename,
/// fsync of the directory). The file gets the process's default permissions.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, false)
}

/// Like [`write_atomic`], but the file is readable and writable by its owner only (mode 0600 on
/// Unix), from the moment it is created: for private keys and shared access keys.
pub(crate) fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
pub(crate) fn is_temp_file_name(file_name: &str) -> bool {
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

/// Removes the temporary files a crash left in `dir` (see [`is_temp_file_name`]); returns how
/// many. Called at start, before anything writes: a stray temp file is never a valid state
/// and may hold secrets.
pub(crate) fn remove_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_temp_file_name) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_temp_files_are_recognised_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join("state.json"), b"{}").unwrap();
        // A crash between "write temp" and "rename" leaves a partial temp file behind.
        fs::write(dir.path().join(".state.json.tmp-999-0"), b"{\"trunc").unwrap();
        assert!(is_temp_file_name(".state.json.tmp-999-0"));
        assert!(!is_temp_file_name("state.json"));
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 1);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["state.json".to_string()]);
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
}
