//! The DPS device endpoint: CONNECT decisions and per-connection sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use dps_core::dps::topic::ResponseTopic;

use super::auth::{self, DpsIdentity, Refusal};
use super::faults::{FaultState, Faults, OVERSIZED_RESPONSE_BYTES, ResponsePlan};
use super::registrar::Registrar;
use super::reply::Reply;
use crate::config::Behaviour;
use crate::net::{
    Close, CloseReason, ConnectRequest, ConnectReturnCode, MqttSession, Outbox, QoS,
    SubscribeOutcome,
};
use crate::util::time;

const SUBSCRIBE_FILTER: &str = "$dps/registrations/res/#";
const REGISTER_PREFIX: &str = "$dps/registrations/PUT/iotdps-register/?";
const POLL_PREFIX: &str = "$dps/registrations/GET/iotdps-get-operationstatus/?";

/// The emulated DPS device endpoint, shared by every DPS connection.
pub(crate) struct DpsRuntime {
    pub(crate) id_scope: String,
    pub(crate) registrar: Registrar,
    behaviour: Mutex<(u32, u32)>,
    faults: Mutex<FaultState>,
    /// Device requests (register and poll publishes on documented topics) received, by
    /// lower-case registration id, of devices that matched an enrollment.
    requests: Mutex<HashMap<String, u32>>,
    /// The same for devices that matched none: anyone can invent registration ids, so these
    /// are bounded, the oldest forgotten first (#11).
    unknown: Mutex<BoundedCounts>,
    /// The open connection of each client id, with its number: a second CONNECT with the same
    /// client id closes the first (MQTT 3.1.1 §3.1.4-2), as the hub does.
    live: Mutex<HashMap<String, (u64, Outbox)>>,
    next_connection: AtomicU64,
}

/// Counters for at most `capacity` keys; inserting beyond forgets the oldest key.
#[derive(Debug, Default)]
struct BoundedCounts {
    capacity: usize,
    counts: HashMap<String, u32>,
    order: VecDeque<String>,
}

impl BoundedCounts {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn increment(&mut self, key: String) {
        if let Some(count) = self.counts.get_mut(&key) {
            *count += 1;
            return;
        }
        if self.capacity == 0 {
            return;
        }
        while self.counts.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.counts.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.counts.insert(key, 1);
    }

    fn get(&self, key: &str) -> Option<u32> {
        self.counts.get(key).copied()
    }
}

impl DpsRuntime {
    pub(crate) fn new(id_scope: String, registrar: Registrar, behaviour: &Behaviour) -> Self {
        Self {
            id_scope,
            registrar,
            behaviour: Mutex::new((
                behaviour.retry_after_seconds,
                behaviour.polls_before_assignment,
            )),
            faults: Mutex::new(FaultState::new(behaviour.faults.clone())),
            requests: Mutex::new(HashMap::new()),
            unknown: Mutex::new(BoundedCounts::new(
                behaviour.limits.max_unknown_registration_ids,
            )),
            live: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
        }
    }

    /// How many device requests (register and poll publishes) `registration_id` sent so far,
    /// including those answered with injected faults or closed on.
    pub(crate) fn device_requests(&self, registration_id: &str) -> u32 {
        let key = registration_id.to_ascii_lowercase();
        let known = lock(&self.requests).get(&key).copied();
        known.or_else(|| lock(&self.unknown).get(&key)).unwrap_or(0)
    }

    fn count_request(&self, registration_id: &str, enrolled: bool) {
        let key = registration_id.to_ascii_lowercase();
        if enrolled {
            *lock(&self.requests).entry(key).or_default() += 1;
        } else {
            lock(&self.unknown).increment(key);
        }
    }

    /// Replaces the `retry-after` and polls-before-assignment knobs.
    pub(crate) fn set_timing(&self, retry_after_seconds: u32, polls_before_assignment: u32) {
        *lock(&self.behaviour) = (retry_after_seconds, polls_before_assignment);
    }

    /// Replaces the fault plan (counters restart).
    pub(crate) fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults);
    }

    /// The fault plan with its counters as they stand.
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    /// Whether a username is addressed to DPS (`{scope}/registrations/...`).
    pub(crate) fn is_dps_username(username: &str) -> bool {
        username.split('/').nth(1) == Some("registrations")
    }

    /// Decides a DPS CONNECT.
    pub(crate) fn connect(
        self: &Arc<Self>,
        request: &ConnectRequest,
        outbox: Outbox,
    ) -> Result<Box<dyn MqttSession>, ConnectReturnCode> {
        let username = request.username.as_deref().unwrap_or_default();
        let password = request
            .password
            .as_deref()
            .map(|p| std::str::from_utf8(p).map_err(|_| ConnectReturnCode::BadUserNamePassword))
            .transpose()?;
        let identity = self
            .registrar
            .store
            .read(|data| {
                auth::authenticate(
                    data,
                    &self.id_scope,
                    &request.client_id,
                    username,
                    password,
                    &request.peer_certificates,
                    time::unix_now(),
                )
            })
            .map_err(|refusal| {
                tracing::warn!(client_id = %request.client_id, reason = %refusal, "DPS CONNECT refused");
                match refusal {
                    Refusal::Identifier(_) => ConnectReturnCode::BadClientId,
                    Refusal::NotAuthorized(_) => ConnectReturnCode::NotAuthorized,
                }
            })?;
        tracing::info!(
            registration_id = %identity.registration_id,
            transport = ?request.transport,
            known = identity.enrollment.is_some(),
            "DPS device connected"
        );
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let older =
            lock(&self.live).insert(request.client_id.clone(), (connection, outbox.clone()));
        if let Some((_, older)) = older {
            tracing::info!(client_id = %request.client_id, "a new connection with the same client id: closing the older one");
            older.close();
        }
        Ok(Box::new(DpsSession {
            runtime: Arc::clone(self),
            client_id: request.client_id.clone(),
            connection,
            identity,
            outbox,
            granted: None,
            publishes: 0,
        }))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One DPS device connection.
struct DpsSession {
    runtime: Arc<DpsRuntime>,
    client_id: String,
    /// This connection's number in [`DpsRuntime::live`].
    connection: u64,
    identity: DpsIdentity,
    outbox: Outbox,
    /// The QoS granted on `$dps/registrations/res/#`, once subscribed.
    granted: Option<QoS>,
    publishes: u32,
}

enum RequestTopic {
    Register { rid: String },
    Poll { rid: String, operation_id: String },
}

fn parse_request_topic(topic: &str) -> Option<RequestTopic> {
    let param = |query: &str, key: &str| {
        dps_core::query::Params::new(query)
            .get(key)
            .flatten()
            .map(str::to_owned)
    };
    if let Some(query) = topic.strip_prefix(REGISTER_PREFIX) {
        return Some(RequestTopic::Register {
            rid: param(query, "$rid")?,
        });
    }
    let query = topic.strip_prefix(POLL_PREFIX)?;
    let operation_id = param(query, "operationId")?;
    let operation_id = dps_core::encoding::percent_decode(&operation_id)
        .ok()?
        .into_owned();
    Some(RequestTopic::Poll {
        rid: param(query, "$rid")?,
        operation_id,
    })
}

#[async_trait]
impl MqttSession for DpsSession {
    async fn subscribe(
        &mut self,
        filters: Vec<(String, QoS)>,
    ) -> Result<Vec<SubscribeOutcome>, Close> {
        let mut outcomes = Vec::with_capacity(filters.len());
        for (filter, qos) in filters {
            // DPS supports only its documented filter and closes on anything else.
            if filter != SUBSCRIBE_FILTER {
                tracing::warn!(registration_id = %self.identity.registration_id, %filter, "undocumented DPS subscription: closing");
                return Err(Close);
            }
            let granted = if qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            self.granted = Some(granted);
            outcomes.push(SubscribeOutcome::Granted(granted));
        }
        Ok(outcomes)
    }

    async fn unsubscribe(&mut self, filters: Vec<String>) -> Result<(), Close> {
        if filters.iter().any(|f| f == SUBSCRIBE_FILTER) {
            self.granted = None;
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: QoS,
        _retain: bool,
    ) -> Result<(), Close> {
        let registration_id = &self.identity.registration_id;
        self.publishes += 1;
        let request = parse_request_topic(&topic);
        if request.is_some() {
            self.runtime
                .count_request(registration_id, self.identity.enrollment.is_some());
        }
        let faults = self.runtime.faults();
        if faults
            .close_after_publishes
            .is_some_and(|n| self.publishes > n)
        {
            tracing::info!(%registration_id, "fault: closing the connection");
            return Err(Close);
        }
        if qos == QoS::ExactlyOnce {
            tracing::warn!(%registration_id, "QoS 2 publish: closing");
            return Err(Close);
        }
        let Some(request) = request else {
            tracing::warn!(%registration_id, %topic, "undocumented DPS topic: closing");
            return Err(Close);
        };
        let (retry_after, polls) = *lock(&self.runtime.behaviour);
        let injected = lock(&self.runtime.faults).take_error(Instant::now());
        let (rid, reply) = match (request, injected) {
            (
                RequestTopic::Register { rid } | RequestTopic::Poll { rid, .. },
                Some((status, retry)),
            ) => {
                tracing::info!(%registration_id, status, "fault: injected error");
                (rid, Reply::injected(status, retry))
            }
            (RequestTopic::Register { rid }, None) => {
                let reply = self
                    .runtime
                    .registrar
                    .register(&self.identity, &payload, retry_after, polls)
                    .await;
                (rid, reply)
            }
            (RequestTopic::Poll { rid, operation_id }, None) => (
                rid,
                self.runtime
                    .registrar
                    .poll(&self.identity, &operation_id, retry_after),
            ),
        };
        let plan = lock(&self.runtime.faults).plan_response();
        self.deliver(rid, reply, plan);
        Ok(())
    }

    async fn closed(&mut self, reason: CloseReason) {
        tracing::debug!(registration_id = %self.identity.registration_id, %reason, "DPS connection closed");
        let mut live = lock(&self.runtime.live);
        // A newer connection with the same client id may have taken the entry already.
        if live
            .get(&self.client_id)
            .is_some_and(|(connection, _)| *connection == self.connection)
        {
            live.remove(&self.client_id);
        }
    }
}

impl DpsSession {
    fn deliver(&self, rid: String, reply: Reply, plan: ResponsePlan) {
        let Some(qos) = self.granted else {
            tracing::warn!(registration_id = %self.identity.registration_id, "response dropped: not subscribed to {SUBSCRIBE_FILTER}");
            return;
        };
        if plan.drop {
            tracing::info!(registration_id = %self.identity.registration_id, "fault: response dropped");
            return;
        }
        let topic = |rid: &str| {
            ResponseTopic {
                status: reply.status,
                rid,
                retry_after: reply.retry_after,
            }
            .to_string()
        };
        let body = if plan.malformed {
            Bytes::copy_from_slice(&reply.body[..reply.body.len() / 2])
        } else if plan.oversized {
            let mut padded = reply.body.clone();
            padded.resize(padded.len().max(OVERSIZED_RESPONSE_BYTES), b' ');
            Bytes::from(padded)
        } else {
            Bytes::from(reply.body.clone())
        };
        let mut messages = Vec::new();
        if plan.wrong_rid {
            messages.push((topic(&format!("wrong-{rid}")), body.clone()));
        }
        messages.push((topic(&rid), body.clone()));
        if plan.duplicate {
            messages.push((topic(&rid), body));
        }
        let outbox = self.outbox.clone();
        let send = move || {
            for (topic, body) in messages {
                // A closed connection just loses the answer, as on the real service.
                let _ = outbox.publish(topic, body, qos);
            }
        };
        if plan.delay.is_zero() {
            send();
        } else {
            let delay = plan.delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                send();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    /// #11: request counts of never-enrolled registration ids stay bounded.
    #[tokio::test]
    async fn unknown_registration_ids_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path().join("state.redb")).unwrap();
        struct NoIssuer;
        impl super::super::registrar::CertificateIssuer for NoIssuer {
            fn issue(&self, _csr: &[u8]) -> Result<Vec<Vec<u8>>, String> {
                Err("none".into())
            }
        }
        let registrar = Registrar::new(store, vec!["hub".into()], Arc::new(NoIssuer));
        let behaviour = Behaviour {
            limits: Limits {
                max_unknown_registration_ids: 3,
                ..Limits::default()
            },
            ..Behaviour::default()
        };
        let runtime = DpsRuntime::new("0ne00000001".into(), registrar, &behaviour);
        for n in 0..1000 {
            runtime.count_request(&format!("invented-{n}"), false);
        }
        runtime.count_request("invented-999", false);
        assert_eq!(lock(&runtime.unknown).counts.len(), 3);
        assert_eq!(
            runtime.device_requests("invented-999"),
            2,
            "the newest is kept"
        );
        assert_eq!(
            runtime.device_requests("invented-0"),
            0,
            "the oldest is forgotten"
        );
        // Enrolled devices are counted apart, without the bound.
        for _ in 0..5 {
            runtime.count_request("Enrolled", true);
        }
        assert_eq!(runtime.device_requests("enrolled"), 5);
    }
}
