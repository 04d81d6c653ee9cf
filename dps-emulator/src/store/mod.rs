//! The emulator's persistent state: in memory for reads, an embedded database on disk.
//!
//! Every mutation happens in memory under one lock, marks the records it wrote ([`Table`]) and
//! wakes the flusher, which writes just those records in one redb transaction ([`db`]),
//! coalescing bursts: the cost of a write follows what changed, not the size of the fleet
//! (#15). Every change that someone is told about (a REST answer, an admin call, a registration
//! answered to a device, a reported-properties update acknowledged to a device) waits for the
//! commit with [`Store::mutate_durable`]: nothing acknowledged can be taken back by a crash
//! (#11).
//!
//! redb rather than SQLite: pure Rust (no C toolchain, no second copy of a TLS or crypto
//! stack), ACID with a durable commit, one file, and the store only needs keyed rows.

mod db;
mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::model::QueuedC2d;
use crate::model::{DeviceRegistrationState, EnrollmentGroup, HubDevice, IndividualEnrollment};

pub(crate) use table::Table;

/// Everything that survives a restart. Keys are lower-case ids (ids compare case-insensitively).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoreData {
    /// Individual enrollments by lower-case registration id.
    #[serde(default)]
    pub(crate) enrollments: Table<IndividualEnrollment>,
    /// Enrollment groups by lower-case group id.
    #[serde(default)]
    pub(crate) groups: Table<EnrollmentGroup>,
    /// Registration records by lower-case registration id.
    #[serde(default)]
    pub(crate) registrations: Table<DeviceRegistrationState>,
    /// Hub devices by `{hub}/{deviceId}` (hub lower-case).
    #[serde(default)]
    pub(crate) hub_devices: Table<HubDevice>,
    /// Cloud-to-device messages not yet completed by their device, oldest first, by the
    /// device's [`StoreData::hub_device_key`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) hub_c2d: Table<Vec<QueuedC2d>>,
    /// Import and export jobs by `{hub}/{jobId}` (#15).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) hub_jobs: Table<crate::model::Job>,
    /// Devices moved to another hub (#12), by lower-case registration id: the hub their next
    /// registrations are allocated to, whatever the enrollment's allocation policy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) moved_to: Table<String>,
    /// The twins of moved devices, by device id, from the identity deleted on the old hub
    /// until the device registers again (then migrated per the reprovision policy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) moved_twins: Table<serde_json::Value>,
}

/// Runs `$each!(field)` for every table of [`StoreData`]; the table's name on disk is the
/// field's.
macro_rules! for_each_table {
    ($each:ident) => {
        $each!(enrollments);
        $each!(groups);
        $each!(registrations);
        $each!(hub_devices);
        $each!(hub_c2d);
        $each!(hub_jobs);
        $each!(moved_to);
        $each!(moved_twins);
    };
}

impl StoreData {
    /// The key of a hub device in [`StoreData::hub_devices`].
    pub(crate) fn hub_device_key(hub: &str, device_id: &str) -> String {
        format!("{}/{}", hub.to_ascii_lowercase(), device_id)
    }

    /// Every record written since the last call, as JSON rows.
    fn take_changes(&mut self) -> Vec<db::Change> {
        let mut changes = Vec::new();
        macro_rules! take {
            ($field:ident) => {
                for (key, value) in self.$field.take_changes() {
                    let row = match value.map(serde_json::to_vec).transpose() {
                        Ok(row) => row,
                        Err(error) => {
                            tracing::error!(%error, table = stringify!($field), %key, "a record could not be serialized");
                            continue;
                        }
                    };
                    changes.push((stringify!($field), key, row));
                }
            };
        }
        for_each_table!(take);
        changes
    }

    /// The state in the database.
    fn load(db: &redb::Database, path: &Path) -> Result<Self, StoreError> {
        let mut data = Self::default();
        macro_rules! load {
            ($field:ident) => {
                let rows = db::rows(db, stringify!($field)).map_err(|e| database(path, e))?;
                let mut map = BTreeMap::new();
                for (key, row) in rows {
                    let value =
                        serde_json::from_slice(&row).map_err(|source| StoreError::Corrupt {
                            path: path.to_owned(),
                            source,
                        })?;
                    map.insert(key, value);
                }
                data.$field = Table::loaded(map);
            };
        }
        for_each_table!(load);
        Ok(data)
    }
}

fn database(path: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Database {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The store file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record (or the snapshot of an earlier version) is not valid.
    #[error("cannot parse {path}: {source}")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The database could not be opened, read or written (a damaged file, a full disk).
    #[error("the store database {path} failed: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Creates the empty database at `path` (owner-only) and closes it again.
pub(crate) fn create(path: &Path) -> Result<(), StoreError> {
    db::open(path).map(drop).map_err(|e| database(path, e))
}

/// The shared, persisted state. The database holds every enrollment's keys: it is created
/// owner-only (mode 0600).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
    /// Dropped with the last handle, which tells the flusher to write once more and stop.
    _alive: Arc<watch::Sender<()>>,
}

struct Inner {
    path: PathBuf,
    /// `None` once closed: the file lock is released for the next emulator on this directory.
    db: Mutex<Option<Arc<redb::Database>>>,
    data: Mutex<StoreData>,
    /// Rows of a write that failed, written first by the next one.
    retry: Mutex<Vec<db::Change>>,
    /// Bumped by every mutation.
    generation: Mutex<u64>,
    wake: Notify,
    /// The last generation written to disk.
    flushed: watch::Sender<u64>,
}

impl Store {
    /// Opens the database at `path` (an absent one is an empty store; the JSON snapshot of an
    /// earlier version, `path` with the extension `json`, is migrated into it) and starts its
    /// flusher on the current tokio runtime.
    pub(crate) fn open(path: PathBuf) -> Result<Self, StoreError> {
        let legacy = path.with_extension("json");
        let migrate = legacy != path && !path.exists() && legacy.exists();
        let db = db::open(&path).map_err(|e| database(&path, e))?;
        let data = if migrate {
            let data = migrate_snapshot(&db, &legacy, &path)?;
            tracing::info!(from = %legacy.display(), to = %path.display(), "migrated the store");
            data
        } else {
            StoreData::load(&db, &path)?
        };
        let (flushed, _) = watch::channel(0);
        let (alive, alive_rx) = watch::channel(());
        let inner = Arc::new(Inner {
            path,
            db: Mutex::new(Some(Arc::new(db))),
            data: Mutex::new(data),
            retry: Mutex::new(Vec::new()),
            generation: Mutex::new(0),
            wake: Notify::new(),
            flushed,
        });
        tokio::spawn(flusher(Arc::clone(&inner), alive_rx));
        Ok(Self {
            inner,
            _alive: Arc::new(alive),
        })
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&StoreData) -> R) -> R {
        f(&lock(&self.inner.data))
    }

    /// Changes the state; the change is written to disk shortly after.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut StoreData) -> R) -> R {
        let result = f(&mut lock(&self.inner.data));
        *lock(&self.inner.generation) += 1;
        self.inner.wake.notify_one();
        result
    }

    /// Changes the state and waits until the change is on disk.
    pub(crate) async fn mutate_durable<R>(&self, f: impl FnOnce(&mut StoreData) -> R) -> R {
        let result = self.mutate(f);
        self.flush().await;
        result
    }

    /// Writes what is pending, then closes the database (releasing its lock) even while other
    /// handles remain: the emulator is shutting down, and a later change is not persisted.
    pub(crate) async fn close(&self) {
        self.flush().await;
        lock(&self.inner.db).take();
    }

    /// What the database has committed, `{table: {key: record}}`: what a crash would leave.
    #[cfg(test)]
    pub(crate) fn committed(&self) -> serde_json::Value {
        let db = lock(&self.inner.db).clone().expect("the store is open");
        let mut out = serde_json::Map::new();
        macro_rules! dump {
            ($field:ident) => {
                let rows = db::rows(&db, stringify!($field)).expect("readable");
                let table: serde_json::Map<String, serde_json::Value> = rows
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::from_slice(&v).expect("JSON rows")))
                    .collect();
                out.insert(stringify!($field).to_owned(), table.into());
            };
        }
        for_each_table!(dump);
        out.into()
    }

    /// A counter bumped by every mutation: equal values mean nothing changed in between.
    pub(crate) fn generation(&self) -> u64 {
        *lock(&self.inner.generation)
    }

    /// Waits until every change made so far is on disk.
    pub(crate) async fn flush(&self) {
        let target = *lock(&self.inner.generation);
        let mut flushed = self.inner.flushed.subscribe();
        // The flusher only stops when the store is dropped, and `self` holds it.
        let _ = flushed.wait_for(|&g| g >= target).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the plain data half-updated in a way that
    // matters more than stopping the emulator would.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn flusher(inner: Arc<Inner>, mut alive: watch::Receiver<()>) {
    loop {
        let notified = inner.wake.notified();
        let ok = flush_pending(&inner).await;
        tokio::select! {
            () = notified => {}
            // A failed write (disk full, permissions) is retried; durable writers keep waiting.
            () = tokio::time::sleep(std::time::Duration::from_secs(1)), if !ok => {}
            // Every `Store` handle is gone: write what is left and stop.
            _ = alive.changed() => {
                flush_pending(&inner).await;
                return;
            }
        }
    }
}

/// Writes the records changed since the last write; false when writing failed.
async fn flush_pending(inner: &Arc<Inner>) -> bool {
    let target = *lock(&inner.generation);
    if target <= *inner.flushed.borrow() {
        return true;
    }
    let mut rows = std::mem::take(&mut *lock(&inner.retry));
    rows.extend(lock(&inner.data).take_changes());
    let Some(db) = lock(&inner.db).clone() else {
        tracing::warn!(
            rows = rows.len(),
            "the store is closed: a late change is not persisted"
        );
        inner.flushed.send_replace(target);
        return true;
    };
    let written = tokio::task::spawn_blocking(move || match db::write(&db, &rows) {
        Ok(()) => Ok(()),
        Err(error) => Err((error, rows)),
    })
    .await;
    match written {
        Ok(Ok(())) => {
            inner.flushed.send_replace(target);
            true
        }
        Ok(Err((error, rows))) => {
            tracing::error!(%error, path = %inner.path.display(), "writing the store failed");
            // Kept for the next attempt, ahead of anything newer.
            let mut retry = lock(&inner.retry);
            let newer = std::mem::replace(&mut *retry, rows);
            retry.extend(newer);
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "the store writer panicked");
            false
        }
    }
}

/// Loads the JSON snapshot of an earlier version into the new database, then renames it
/// `*.json.migrated` (it keeps its owner-only mode; remove it once the new store is trusted).
fn migrate_snapshot(
    db: &redb::Database,
    legacy: &Path,
    path: &Path,
) -> Result<StoreData, StoreError> {
    let bytes = std::fs::read(legacy).map_err(|source| StoreError::Io {
        path: legacy.to_owned(),
        source,
    })?;
    // Every table of a snapshot deserializes as unsaved: all its records are written now.
    let mut data: StoreData =
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
            path: legacy.to_owned(),
            source,
        })?;
    db::write(db, &data.take_changes()).map_err(|e| database(path, e))?;
    let mut done = legacy.as_os_str().to_owned();
    done.push(".migrated");
    std::fs::rename(legacy, &done).map_err(|source| StoreError::Io {
        path: legacy.to_owned(),
        source,
    })?;
    Ok(data)
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
