//! The table of live hub connections: one per device or module identity, with what it
//! subscribed to, its activity, and the cloud-to-device messages in flight on it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::net::{Outbox, QoS};

/// A device (`module_id: None`) or module identity in one hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct IdentityKey {
    /// The hub, as configured (see `HubRuntime::hub_name`).
    pub(crate) hub: String,
    /// The device id (case-sensitive).
    pub(crate) device_id: String,
    /// The module id, for a module identity.
    pub(crate) module_id: Option<String>,
}

impl IdentityKey {
    pub(crate) fn device(hub: &str, device_id: &str) -> Self {
        Self {
            hub: hub.to_owned(),
            device_id: device_id.to_owned(),
            module_id: None,
        }
    }

    pub(crate) fn module(hub: &str, device_id: &str, module_id: &str) -> Self {
        Self {
            hub: hub.to_owned(),
            device_id: device_id.to_owned(),
            module_id: Some(module_id.to_owned()),
        }
    }

    /// The device's key in the store.
    pub(crate) fn store_key(&self) -> String {
        crate::store::StoreData::hub_device_key(&self.hub, &self.device_id)
    }
}

impl std::fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.hub, self.device_id)?;
        if let Some(module_id) = &self.module_id {
            write!(f, "/{module_id}")?;
        }
        Ok(())
    }
}

/// The QoS granted on each documented subscription, `None` when not subscribed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Subscriptions {
    pub(crate) c2d: Option<QoS>,
    pub(crate) twin_responses: Option<QoS>,
    pub(crate) desired: Option<QoS>,
    pub(crate) methods: Option<QoS>,
    pub(crate) inputs: Option<QoS>,
    /// `$iothub/credentials/res/#` (#12).
    pub(crate) credentials: Option<QoS>,
}

/// One live connection.
#[derive(Debug)]
pub(crate) struct LiveConn {
    /// Tells this connection from a later one of the same identity.
    pub(crate) id: u64,
    pub(crate) outbox: Outbox,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) last_activity: SystemTime,
    /// Cloud-to-device messages sent with QoS 1 and not yet acknowledged: packet id → message id.
    pub(crate) c2d_in_flight: HashMap<u16, String>,
    /// Message ids already sent on this connection (never twice on one connection).
    pub(crate) c2d_sent: HashSet<String>,
}

/// Every live connection, and the subscriptions kept for clients that connect with
/// CleanSession=0 (MQTT sessions outlive connections, as on the service).
#[derive(Debug, Default)]
pub(crate) struct Live {
    conns: Mutex<HashMap<IdentityKey, LiveConn>>,
    saved: Mutex<HashMap<IdentityKey, Subscriptions>>,
    next_id: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The critical sections never panic halfway; a poisoned table is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    /// Adds a connection, replacing (and closing) any previous one of the same identity.
    ///
    /// With CleanSession=0 the client resumes its MQTT session: the subscriptions of the
    /// connection it replaces, or those kept when its last connection ended. Returns the new
    /// connection's id and the resumed subscriptions (`None`: a new session).
    pub(crate) fn register(
        &self,
        key: &IdentityKey,
        outbox: Outbox,
        clean_session: bool,
    ) -> (u64, Option<Subscriptions>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut conns = lock(&self.conns);
        let old = conns.remove(key);
        let saved = lock(&self.saved).remove(key);
        if let Some(old) = &old {
            // One connection per identity: the new one drops the old (400027
            // ConnectionForcefullyClosedOnNewConnection).
            tracing::info!(identity = %key, "a new connection replaces the live one");
            old.outbox.close();
        }
        let resumed = if clean_session {
            None
        } else {
            old.map(|o| o.subscriptions).or(saved)
        };
        let conn = LiveConn {
            id,
            outbox,
            subscriptions: resumed.unwrap_or_default(),
            last_activity: SystemTime::now(),
            c2d_in_flight: HashMap::new(),
            c2d_sent: HashSet::new(),
        };
        conns.insert(key.clone(), conn);
        (id, resumed)
    }

    /// Runs `f` on the identity's live connection, if it is connection `id` (any when `None`).
    pub(crate) fn with<R>(
        &self,
        key: &IdentityKey,
        id: Option<u64>,
        f: impl FnOnce(&mut LiveConn) -> R,
    ) -> Option<R> {
        let mut conns = lock(&self.conns);
        let conn = conns.get_mut(key)?;
        if id.is_some_and(|id| id != conn.id) {
            return None;
        }
        Some(f(conn))
    }

    /// Removes connection `id` of the identity (not a newer one); what it was.
    pub(crate) fn remove(&self, key: &IdentityKey, id: u64) -> Option<LiveConn> {
        let mut conns = lock(&self.conns);
        if conns.get(key).is_some_and(|c| c.id == id) {
            conns.remove(key)
        } else {
            None
        }
    }

    /// Whether the identity is connected, and its live last activity.
    pub(crate) fn state(&self, key: &IdentityKey) -> Option<SystemTime> {
        lock(&self.conns).get(key).map(|c| c.last_activity)
    }

    /// Closes the connections of a device and of all its modules.
    pub(crate) fn close_device(&self, hub: &str, device_id: &str) {
        let conns = lock(&self.conns);
        for (key, conn) in conns.iter() {
            if key.hub == hub && key.device_id == device_id {
                conn.outbox.close();
            }
        }
        drop(conns);
        lock(&self.saved).retain(|key, _| !(key.hub == hub && key.device_id == device_id));
    }

    /// Closes every connection to `hub` (a hub going down); their sessions are kept, as a
    /// network failure keeps them.
    pub(crate) fn close_hub(&self, hub: &str) {
        for (key, conn) in lock(&self.conns).iter() {
            if key.hub.eq_ignore_ascii_case(hub) {
                conn.outbox.close();
            }
        }
    }

    /// Closes one identity's connection.
    pub(crate) fn close(&self, key: &IdentityKey) {
        if let Some(conn) = lock(&self.conns).get(key) {
            conn.outbox.close();
        }
        lock(&self.saved).remove(key);
    }

    /// Keeps the subscriptions of a CleanSession=0 client for its next connection.
    pub(crate) fn save_session(&self, key: &IdentityKey, subscriptions: Subscriptions) {
        lock(&self.saved).insert(key.clone(), subscriptions);
    }
}
