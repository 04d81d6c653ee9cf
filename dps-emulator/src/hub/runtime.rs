//! The hub runtime shared by every hub connection and by the service APIs: the linked hubs,
//! the store, the live connections, the events feed and the pending method calls.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;

use crate::hub::events::EventFeed;
use crate::hub::lifecycle::Lifecycle;
use crate::hub::live::{IdentityKey, Live};
use crate::hub::methods::PendingMethods;
use crate::hub::service::view::LiveState;
use crate::model::HubDevice;
use crate::rest::ServiceFailure;
use crate::store::Store;
use crate::util::time;

/// The emulated IoT hubs.
pub(crate) struct HubRuntime {
    pub(crate) store: Store,
    /// The linked hubs, as configured; the first is the default of the service API.
    hubs: Vec<String>,
    /// CAs trusted for `certificateAuthority` identities besides enrollment groups' signing
    /// certificates.
    pub(crate) trusted_cas: Vec<CertificateDer<'static>>,
    pub(crate) live: Live,
    pub(crate) events: EventFeed,
    pub(crate) methods: PendingMethods,
    pub(crate) lifecycle: Lifecycle,
}

impl HubRuntime {
    pub(crate) fn new(
        store: Store,
        hubs: Vec<String>,
        trusted_cas: Vec<CertificateDer<'static>>,
    ) -> Arc<Self> {
        let lifecycle = Lifecycle::new(&store);
        Arc::new(Self {
            store,
            hubs,
            trusted_cas,
            live: Live::default(),
            events: EventFeed::default(),
            methods: PendingMethods::default(),
            lifecycle,
        })
    }

    /// The linked hub called `host` (any case, any `:port` ignored), as configured.
    pub(crate) fn hub_name(&self, host: &str) -> Option<&str> {
        let host = host.split(':').next().unwrap_or(host);
        self.hubs
            .iter()
            .find(|h| h.eq_ignore_ascii_case(host))
            .map(String::as_str)
    }

    /// The hub the service API addresses when the token names the emulator itself.
    pub(crate) fn default_hub(&self) -> &str {
        self.hubs.first().map_or("localhost", String::as_str)
    }

    /// [`HubRuntime::hub_name`], or 404 for the admin and REST APIs.
    pub(crate) fn require_hub(&self, hub: &str) -> Result<String, ServiceFailure> {
        self.hub_name(hub).map(str::to_owned).ok_or_else(|| {
            ServiceFailure::not_found(
                401_001,
                format!("IoT hub {hub:?} is not linked to this emulator"),
            )
        })
    }

    /// Writes the connection-state time and last activity of an identity (on connect and
    /// disconnect; live activity in between stays in memory), and puts the connection-state
    /// notification on the events feed.
    pub(crate) fn record_connection(
        &self,
        key: &IdentityKey,
        last_activity: SystemTime,
        connected: bool,
    ) {
        self.events
            .push(crate::hub::lifecycle::connection_state_event(
                &key.hub,
                &key.device_id,
                key.module_id.as_deref(),
                connected,
            ));
        let now = time::now_utc();
        let activity = format_time(last_activity);
        self.store.mutate(|data| {
            let Some(device) = data.hub_devices.get_mut(&key.store_key()) else {
                return;
            };
            match &key.module_id {
                None => {
                    device.connection_state_updated_time = Some(now);
                    device.last_activity_time = Some(activity);
                }
                Some(module_id) => {
                    if let Some(module) = device.modules.get_mut(module_id) {
                        module.connection_state_updated_time = Some(now);
                        module.last_activity_time = Some(activity);
                    }
                }
            }
        });
    }

    /// Notes activity on a live connection.
    pub(crate) fn touch(&self, key: &IdentityKey, conn_id: u64) {
        self.live.with(key, Some(conn_id), |conn| {
            conn.last_activity = SystemTime::now();
        });
    }

    /// Whether an identity is connected, and its live last activity.
    pub(crate) fn live_state(&self, key: &IdentityKey) -> LiveState {
        match self.live.state(key) {
            Some(activity) => LiveState {
                connected: true,
                last_activity: Some(format_time(activity)),
            },
            None => LiveState::default(),
        }
    }

    /// A stored device, by hub (as configured) and id.
    pub(crate) fn stored_device(&self, hub: &str, device_id: &str) -> Option<HubDevice> {
        self.store.read(|data| {
            data.hub_devices
                .get(&crate::store::StoreData::hub_device_key(hub, device_id))
                .cloned()
        })
    }

    /// How many cloud-to-device messages wait for a device.
    pub(crate) fn c2d_count(&self, hub: &str, device_id: &str) -> usize {
        self.store.read(|data| {
            data.hub_c2d
                .get(&crate::store::StoreData::hub_device_key(hub, device_id))
                .map_or(0, Vec::len)
        })
    }
}

/// A time in the service's format.
pub(crate) fn format_time(at: SystemTime) -> String {
    time::format_utc(at.duration_since(UNIX_EPOCH).unwrap_or_default())
}

impl HubRuntime {
    /// The events of `hub` numbered after `since` (at most `limit`), and the number of the
    /// last event of the feed (to pass as `since` next time).
    pub(crate) fn read_events(
        &self,
        hub: &str,
        since: u64,
        limit: usize,
    ) -> (Vec<super::events::HubEvent>, u64) {
        self.sync_lifecycle();
        let last = self.events.last();
        (self.events.read(hub, since, limit), last)
    }
}
