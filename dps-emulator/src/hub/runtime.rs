//! The hub runtime shared by every hub connection and by the service APIs: the linked hubs,
//! the store, the live connections, the events feed and the pending method calls.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;

use super::connect::{self, AuthContext, Refusal};
use super::events::EventFeed;
use super::lifecycle::Lifecycle;
use super::live::{IdentityKey, Live};
use super::methods::PendingMethods;
use super::session::HubSession;
use super::view::LiveState;
use crate::model::HubDevice;
use crate::net::{ConnectRequest, ConnectReturnCode, MqttSession, Outbox};
use crate::service::ServiceFailure;
use crate::state::Store;
use crate::util::time;

/// SAS expiries further away than this get no disconnect timer (the emulator will not run
/// that long, and tokio timers have a horizon).
const MAX_EXPIRY_TIMER: Duration = Duration::from_secs(366 * 24 * 3600);

/// The emulated IoT hubs.
pub(crate) struct HubRuntime {
    pub(crate) store: Store,
    /// The linked hubs, as configured; the first is the default of the service API.
    hubs: Vec<String>,
    /// CAs trusted for `certificateAuthority` identities besides enrollment groups' signing
    /// certificates.
    trusted_cas: Vec<CertificateDer<'static>>,
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

    /// Decides a hub CONNECT (any username that is not a DPS one).
    pub(crate) fn connect(
        self: &Arc<Self>,
        request: &ConnectRequest,
        outbox: Outbox,
    ) -> Result<Box<dyn MqttSession>, ConnectReturnCode> {
        let refuse = |refusal: Refusal| {
            tracing::warn!(client_id = %request.client_id, reason = %refusal, "IoT Hub CONNECT refused");
            match refusal {
                Refusal::Identifier(_) => ConnectReturnCode::BadClientId,
                Refusal::NotAuthorized(_) => ConnectReturnCode::NotAuthorized,
            }
        };
        let username = request.username.as_deref().unwrap_or_default();
        let parsed = connect::parse_username(username).ok_or_else(|| {
            refuse(Refusal::Identifier(
                "username is not {hub}/{device}[/{module}]/?api-version=..",
            ))
        })?;
        let hub = self.hub_name(parsed.host).ok_or_else(|| {
            refuse(Refusal::NotAuthorized(format!(
                "{:?} is not a hub of this emulator",
                parsed.host
            )))
        })?;
        let password = match request.password.as_deref().map(std::str::from_utf8) {
            None => None,
            Some(Ok(text)) => Some(text),
            Some(Err(_)) => {
                return Err(refuse(Refusal::NotAuthorized(
                    "the password is not UTF-8".into(),
                )));
            }
        };
        // A device DPS created gets its lifecycle event before anything it sends.
        self.ensure_announced(hub, parsed.device_id);
        let identity = self
            .store
            .read(|data| {
                let ctx = AuthContext {
                    data,
                    hub,
                    trusted_cas: &self.trusted_cas,
                    now_unix: time::unix_now(),
                };
                connect::authenticate(
                    &ctx,
                    &parsed,
                    &request.client_id,
                    password,
                    &request.peer_certificates,
                )
            })
            .map_err(refuse)?;

        let (conn_id, restored) =
            self.live
                .register(&identity.key, outbox.clone(), request.clean_session);
        self.record_connection(&identity.key, SystemTime::now());
        tracing::info!(
            identity = %identity.key,
            transport = ?request.transport,
            auth = identity.method,
            session_present = restored.is_some(),
            "IoT Hub device connected"
        );
        let expiry_timer = identity.sas_expiry.and_then(|expiry| {
            // Valid up to and including second `expiry`: closed once it has passed.
            let at = UNIX_EPOCH.checked_add(Duration::from_secs(expiry.checked_add(1)?))?;
            let delay = at.duration_since(SystemTime::now()).unwrap_or_default();
            if delay > MAX_EXPIRY_TIMER {
                return None;
            }
            let outbox = outbox.clone();
            let key = identity.key.clone();
            Some(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                tracing::info!(identity = %key, "SAS token expired: closing the connection");
                outbox.close();
            }))
        });
        if restored.is_some_and(|s| s.c2d.is_some()) {
            self.deliver_c2d(&identity.key);
        }
        Ok(Box::new(HubSession::new(
            Arc::clone(self),
            identity,
            conn_id,
            request.clean_session,
            restored.is_some(),
            expiry_timer,
        )))
    }

    /// Writes the connection-state time and last activity of an identity (on connect and
    /// disconnect; live activity in between stays in memory).
    pub(crate) fn record_connection(&self, key: &IdentityKey, last_activity: SystemTime) {
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
                .get(&crate::state::StoreData::hub_device_key(hub, device_id))
                .cloned()
        })
    }

    /// How many cloud-to-device messages wait for a device.
    pub(crate) fn c2d_count(&self, hub: &str, device_id: &str) -> usize {
        self.store.read(|data| {
            data.hub_c2d
                .get(&crate::state::StoreData::hub_device_key(hub, device_id))
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
