//! Connection caps: at most so many open connections, and at most so many that have not
//! authenticated yet, on both listeners together. A connection over either cap is closed as
//! soon as it is accepted, before any TLS work; one log line says when a cap is reached (and
//! another is written only after it has been left again).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The caps shared by both listeners.
#[derive(Debug)]
pub(crate) struct Gate {
    open: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    max_open: usize,
    max_unauthenticated: usize,
    open_full: AtomicBool,
    unauthenticated_full: AtomicBool,
}

/// What an admitted connection holds until it ends.
#[derive(Debug)]
pub(crate) struct Admission {
    _open: OwnedSemaphorePermit,
    /// Released when the connection authenticates (or ends).
    pub(crate) unauthenticated: Arc<Unauthenticated>,
}

/// The "not authenticated yet" slot of one connection.
#[derive(Debug, Default)]
pub(crate) struct Unauthenticated(Mutex<Option<OwnedSemaphorePermit>>);

impl Unauthenticated {
    /// The connection has proved who it is: it no longer counts as unauthenticated.
    pub(crate) fn authenticated(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    /// Whether the connection has authenticated.
    pub(crate) fn is_done(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl Gate {
    pub(crate) fn new(max_open: usize, max_unauthenticated: usize) -> Self {
        // A semaphore holds at most `Semaphore::MAX_PERMITS`.
        let max_open = max_open.min(Semaphore::MAX_PERMITS);
        let max_unauthenticated = max_unauthenticated.min(Semaphore::MAX_PERMITS);
        Self {
            open: Arc::new(Semaphore::new(max_open)),
            unauthenticated: Arc::new(Semaphore::new(max_unauthenticated)),
            max_open,
            max_unauthenticated,
            open_full: AtomicBool::new(false),
            unauthenticated_full: AtomicBool::new(false),
        }
    }

    /// Admits a new connection, or `None` when a cap is reached (the caller closes it).
    pub(crate) fn admit(&self) -> Option<Admission> {
        let Ok(open) = Arc::clone(&self.open).try_acquire_owned() else {
            if !self.open_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = self.max_open,
                    "connection limit reached: {} connections are open; new connections are \
                     closed until some end",
                    self.max_open
                );
            }
            return None;
        };
        self.open_full.store(false, Ordering::Relaxed);
        let Ok(unauthenticated) = Arc::clone(&self.unauthenticated).try_acquire_owned() else {
            if !self.unauthenticated_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = self.max_unauthenticated,
                    "unauthenticated connection limit reached: {} connections have not \
                     authenticated yet; new connections are closed until some do or end",
                    self.max_unauthenticated
                );
            }
            return None;
        };
        self.unauthenticated_full.store(false, Ordering::Relaxed);
        Some(Admission {
            _open: open,
            unauthenticated: Arc::new(Unauthenticated(Mutex::new(Some(unauthenticated)))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_admit_up_to_their_size_and_authentication_frees_a_slot() {
        let gate = Gate::new(3, 2);
        let a = gate.admit().unwrap();
        let b = gate.admit().unwrap();
        assert!(gate.admit().is_none(), "two unauthenticated is the cap");
        a.unauthenticated.authenticated();
        let c = gate.admit().unwrap();
        assert!(gate.admit().is_none(), "three open is the cap");
        drop(b);
        assert!(gate.admit().is_some());
        drop(c);
    }
}
