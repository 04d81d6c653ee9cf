//! The emulator's persistent state and its write-behind flusher.
//!
//! Every mutation happens in memory under one lock and wakes the flusher, which writes a
//! snapshot atomically (temp file + rename), coalescing bursts: a fleet of registrations costs a
//! few writes, not one per device. Every change that someone is told about (a REST answer, an
//! admin call, a registration answered to a device, a reported-properties update acknowledged
//! to a device) waits for the flush with [`Store::mutate_durable`]: nothing acknowledged can be
//! taken back by a crash (#11).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::model::QueuedC2d;
use crate::model::{DeviceRegistrationState, EnrollmentGroup, HubDevice, IndividualEnrollment};

/// Everything that survives a restart. Keys are lower-case ids (ids compare case-insensitively).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoreData {
    /// Individual enrollments by lower-case registration id.
    #[serde(default)]
    pub(crate) enrollments: BTreeMap<String, IndividualEnrollment>,
    /// Enrollment groups by lower-case group id.
    #[serde(default)]
    pub(crate) groups: BTreeMap<String, EnrollmentGroup>,
    /// Registration records by lower-case registration id.
    #[serde(default)]
    pub(crate) registrations: BTreeMap<String, DeviceRegistrationState>,
    /// Hub devices by `{hub}/{deviceId}` (hub lower-case).
    #[serde(default)]
    pub(crate) hub_devices: BTreeMap<String, HubDevice>,
    /// Cloud-to-device messages not yet completed by their device, oldest first, by the
    /// device's [`StoreData::hub_device_key`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) hub_c2d: BTreeMap<String, Vec<QueuedC2d>>,
    /// Import and export jobs by `{hub}/{jobId}` (#15).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) hub_jobs: BTreeMap<String, crate::model::Job>,
}

impl StoreData {
    /// The key of a hub device in [`StoreData::hub_devices`].
    pub(crate) fn hub_device_key(hub: &str, device_id: &str) -> String {
        format!("{}/{}", hub.to_ascii_lowercase(), device_id)
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The store file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid store.
    #[error("cannot parse {path}: {source}")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// The shared, persisted state. The file holds every enrollment's keys: it is written
/// owner-only (mode 0600).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
    /// Dropped with the last handle, which tells the flusher to write once more and stop.
    _alive: Arc<watch::Sender<()>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    data: Mutex<StoreData>,
    /// Bumped by every mutation.
    generation: Mutex<u64>,
    wake: Notify,
    /// The last generation written to disk.
    flushed: watch::Sender<u64>,
}

impl Store {
    /// Opens the store at `path` (an absent file is an empty store) and starts its flusher on
    /// the current tokio runtime.
    pub(crate) fn open(path: PathBuf) -> Result<Self, StoreError> {
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreData::default(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let (flushed, _) = watch::channel(0);
        let (alive, alive_rx) = watch::channel(());
        let inner = Arc::new(Inner {
            path,
            data: Mutex::new(data),
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

/// Writes the state if it changed since the last write; false when writing failed.
async fn flush_pending(inner: &Arc<Inner>) -> bool {
    let target = *lock(&inner.generation);
    if target <= *inner.flushed.borrow() {
        return true;
    }
    let bytes = serde_json::to_vec_pretty(&*lock(&inner.data));
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "serializing the store failed");
            return false;
        }
    };
    let path = inner.path.clone();
    match tokio::task::spawn_blocking(move || crate::persist::write_atomic_private(&path, &bytes))
        .await
    {
        Ok(Ok(())) => {
            inner.flushed.send_replace(target);
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, path = %inner.path.display(), "writing the store failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "the store writer panicked");
            false
        }
    }
}
