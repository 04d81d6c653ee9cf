//! Accepting a hub CONNECT: the identity is authenticated against the registry, the
//! connection is registered (closing an older one of the same identity), and a session runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::hub::device::connect::{self, AuthContext, Refusal};
use crate::hub::device::session::HubDeviceSession;
use crate::hub::runtime::HubRuntime;
use crate::net::{ConnectRequest, ConnectReturnCode, MqttSession, Outbox};
use crate::util::time;

/// SAS expiries further away than this get no disconnect timer (the emulator will not run
/// that long, and tokio timers have a horizon).
const MAX_EXPIRY_TIMER: Duration = Duration::from_secs(366 * 24 * 3600);

impl HubRuntime {
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
        self.record_connection(&identity.key, SystemTime::now(), true);
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
        Ok(Box::new(HubDeviceSession::new(
            Arc::clone(self),
            identity,
            conn_id,
            request.clean_session,
            restored.is_some(),
            expiry_timer,
        )))
    }
}
