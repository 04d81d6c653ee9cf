//! One hub device (or module) connection: documented subscriptions only, telemetry, twin
//! requests and method answers; anything undocumented closes the connection, as the hub does.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use dps_core::hub::{
    MAX_TELEMETRY_MESSAGE_SIZE, METHODS_SUBSCRIPTION, TWIN_DESIRED_SUBSCRIPTION,
    TWIN_RESPONSE_SUBSCRIPTION, TopicError, TwinRequest, TwinResponseTopic, parse_method_response,
    parse_telemetry_topic, parse_twin_request,
};
use tokio::task::JoinHandle;

use crate::hub::device::connect::HubIdentity;
use crate::hub::device::telemetry;
use crate::hub::live::{IdentityKey, Subscriptions};
use crate::hub::methods::{MethodResult, answer_payload};
use crate::hub::runtime::HubRuntime;
use crate::net::{Close, CloseReason, MqttSession, QoS, SubscribeOutcome};
use crate::util::time;

/// The documented subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    C2d,
    TwinResponses,
    Desired,
    Methods,
    Inputs,
}

/// Which documented subscription `filter` is, for this identity; `None` for anything else.
fn classify(filter: &str, key: &IdentityKey) -> Option<Feature> {
    match filter {
        TWIN_RESPONSE_SUBSCRIPTION => return Some(Feature::TwinResponses),
        TWIN_DESIRED_SUBSCRIPTION => return Some(Feature::Desired),
        METHODS_SUBSCRIPTION => return Some(Feature::Methods),
        _ => {}
    }
    let rest = filter.strip_prefix("devices/")?;
    let (device, rest) = rest.split_once('/')?;
    match &key.module_id {
        // Embedded C subscribes with a `+` for the device id.
        None if (device == key.device_id || device == "+") && rest == "messages/devicebound/#" => {
            Some(Feature::C2d)
        }
        Some(module_id) if device == key.device_id => {
            let rest = rest
                .strip_prefix("modules/")?
                .strip_prefix(module_id.as_str())?;
            // Python subscribes `.../inputs/#`; the C SDK `.../#`.
            matches!(rest, "/inputs/#" | "/#").then_some(Feature::Inputs)
        }
        _ => None,
    }
}

fn slot(subscriptions: &mut Subscriptions, feature: Feature) -> &mut Option<QoS> {
    match feature {
        Feature::C2d => &mut subscriptions.c2d,
        Feature::TwinResponses => &mut subscriptions.twin_responses,
        Feature::Desired => &mut subscriptions.desired,
        Feature::Methods => &mut subscriptions.methods,
        Feature::Inputs => &mut subscriptions.inputs,
    }
}

/// One accepted hub connection.
pub(crate) struct HubDeviceSession {
    runtime: Arc<HubRuntime>,
    identity: HubIdentity,
    conn_id: u64,
    clean_session: bool,
    session_present: bool,
    expiry_timer: Option<JoinHandle<()>>,
}

impl HubDeviceSession {
    pub(crate) fn new(
        runtime: Arc<HubRuntime>,
        identity: HubIdentity,
        conn_id: u64,
        clean_session: bool,
        session_present: bool,
        expiry_timer: Option<JoinHandle<()>>,
    ) -> Self {
        Self {
            runtime,
            identity,
            conn_id,
            clean_session,
            session_present,
            expiry_timer,
        }
    }

    fn key(&self) -> &IdentityKey {
        &self.identity.key
    }

    /// Sends to this connection, with the QoS granted on `feature` (dropped when the client
    /// did not subscribe to it: the hub does not deliver to unsubscribed clients).
    fn reply(&self, feature: Feature, topic: String, body: Vec<u8>) {
        let sent = self
            .runtime
            .live
            .with(self.key(), Some(self.conn_id), |conn| {
                let Some(qos) = *slot(&mut conn.subscriptions, feature) else {
                    return false;
                };
                // A closed connection loses the answer, as on the service.
                let _ = conn.outbox.publish(topic, body, qos);
                true
            });
        if sent != Some(true) {
            // Some SDKs publish a request before subscribing to its answers; the hub answers
            // only subscribed clients.
            tracing::info!(identity = %self.key(), ?feature, "answer dropped: not subscribed");
        }
    }

    fn telemetry(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        bag: dps_core::hub::PropertyBag<'_>,
        payload: &[u8],
        retain: bool,
    ) -> Result<(), Close> {
        let key = self.key();
        if device_id != key.device_id || module_id != key.module_id.as_deref() {
            tracing::warn!(identity = %key, "telemetry for another identity: closing");
            return Err(Close);
        }
        let size = payload.len() + bag.as_str().len();
        if size > MAX_TELEMETRY_MESSAGE_SIZE {
            // 413001 MessageTooLarge: over MQTT the hub drops the connection.
            tracing::warn!(identity = %key, size, "message over 256 KB: closing");
            return Err(Close);
        }
        let event = telemetry::event(
            key,
            bag,
            payload,
            retain,
            self.identity.method,
            &time::now_utc(),
        )
        .map_err(|e| {
            tracing::warn!(identity = %key, error = %e, "malformed property bag: closing");
            Close
        })?;
        self.runtime.events.push(event);
        Ok(())
    }

    async fn twin_request(&self, request: TwinRequest<'_>, payload: &[u8]) {
        let (status, version, body) = match request {
            TwinRequest::Get { .. } => match self.runtime.device_side_twin(self.key()) {
                Some(twin) => (200, None, twin.to_string().into_bytes()),
                None => (
                    404,
                    None,
                    error_body(404_001, "the identity no longer exists"),
                ),
            },
            TwinRequest::ReportedPatch { .. } => {
                match self.runtime.patch_reported(self.key(), payload).await {
                    Ok(version) => (204, Some(version), Vec::new()),
                    Err(failure) => (
                        failure.status,
                        None,
                        error_body(failure.error_code, &failure.message),
                    ),
                }
            }
            _ => (400, None, error_body(400_000, "unsupported twin request")),
        };
        let mut topic = TwinResponseTopic::new(status, request.rid());
        if let Some(version) = version {
            topic = topic.version(version);
        }
        self.reply(Feature::TwinResponses, topic.to_string(), body);
    }
}

fn error_body(code: u32, message: &str) -> Vec<u8> {
    serde_json::json!({ "errorCode": code, "message": message })
        .to_string()
        .into_bytes()
}

#[async_trait]
impl MqttSession for HubDeviceSession {
    fn session_present(&self) -> bool {
        self.session_present
    }

    async fn subscribe(
        &mut self,
        filters: Vec<(String, QoS)>,
    ) -> Result<Vec<SubscribeOutcome>, Close> {
        let mut granted = Vec::with_capacity(filters.len());
        for (filter, qos) in &filters {
            let Some(feature) = classify(filter, self.key()) else {
                // Only documented filters exist; MQTT terminates the connection otherwise.
                tracing::warn!(identity = %self.key(), %filter, "undocumented subscription: closing");
                return Err(Close);
            };
            // QoS 2 is granted as QoS 1.
            let qos = if *qos == QoS::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            granted.push((feature, qos));
        }
        let c2d_added = self
            .runtime
            .live
            .with(self.key(), Some(self.conn_id), |conn| {
                let before = conn.subscriptions.c2d;
                for (feature, qos) in &granted {
                    *slot(&mut conn.subscriptions, *feature) = Some(*qos);
                }
                before.is_none() && conn.subscriptions.c2d.is_some()
            })
            .unwrap_or(false);
        if c2d_added {
            // Queued messages follow the SUBACK (the frame writes it before anything queued now).
            self.runtime.deliver_c2d(self.key());
        }
        Ok(granted
            .into_iter()
            .map(|(_, qos)| SubscribeOutcome::Granted(qos))
            .collect())
    }

    async fn unsubscribe(&mut self, filters: Vec<String>) -> Result<(), Close> {
        let features: Vec<Feature> = filters
            .iter()
            .filter_map(|f| classify(f, self.key()))
            .collect();
        self.runtime
            .live
            .with(self.key(), Some(self.conn_id), |conn| {
                for feature in features {
                    *slot(&mut conn.subscriptions, feature) = None;
                }
            });
        Ok(())
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    ) -> Result<(), Close> {
        if qos == QoS::ExactlyOnce {
            // "If a device app publishes a message with QoS 2, IoT Hub closes the network
            // connection."
            tracing::warn!(identity = %self.key(), "QoS 2 publish: closing");
            return Err(Close);
        }
        self.runtime.touch(self.key(), self.conn_id);
        let malformed = |e: TopicError| {
            tracing::warn!(identity = %self.key(), %topic, error = %e, "malformed topic: closing");
            Close
        };
        match parse_telemetry_topic(&topic) {
            Ok(message) => {
                return self.telemetry(
                    message.device_id,
                    message.module_id,
                    message.properties,
                    &payload,
                    retain,
                );
            }
            Err(TopicError::NoMatch) => {}
            Err(e) => return Err(malformed(e)),
        }
        match parse_twin_request(&topic) {
            Ok(request) => {
                self.twin_request(request, &payload).await;
                return Ok(());
            }
            Err(TopicError::NoMatch) => {}
            Err(e) => return Err(malformed(e)),
        }
        match parse_method_response(&topic) {
            Ok(response) => {
                let result = MethodResult {
                    status: i32::from(response.status),
                    payload: answer_payload(&payload),
                };
                if !self
                    .runtime
                    .methods
                    .complete(self.key(), response.rid, result)
                {
                    tracing::info!(identity = %self.key(), rid = response.rid, "method answer for no pending call (late?)");
                }
                return Ok(());
            }
            Err(TopicError::NoMatch) => {}
            Err(e) => return Err(malformed(e)),
        }
        tracing::warn!(identity = %self.key(), %topic, "undocumented topic: closing");
        Err(Close)
    }

    async fn puback(&mut self, pkid: u16) {
        self.runtime
            .c2d_acknowledged(self.key(), self.conn_id, pkid);
    }

    async fn closed(&mut self, reason: CloseReason) {
        if let Some(timer) = self.expiry_timer.take() {
            timer.abort();
        }
        let key = self.identity.key.clone();
        // A connection replaced by a newer one leaves the state to it.
        if let Some(conn) = self.runtime.live.remove(&key, self.conn_id) {
            if !self.clean_session {
                self.runtime.live.save_session(&key, conn.subscriptions);
            }
            self.runtime
                .record_connection(&key, conn.last_activity, false);
        }
        tracing::info!(identity = %key, %reason, "IoT Hub device disconnected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_filters_only() {
        let device = IdentityKey::device("h", "d");
        let module = IdentityKey::module("h", "d", "m");
        assert_eq!(
            classify("devices/d/messages/devicebound/#", &device),
            Some(Feature::C2d)
        );
        assert_eq!(
            classify("devices/+/messages/devicebound/#", &device),
            Some(Feature::C2d)
        );
        assert_eq!(classify("devices/x/messages/devicebound/#", &device), None);
        assert_eq!(classify("devices/d/messages/devicebound/#", &module), None);
        assert_eq!(
            classify("$iothub/twin/res/#", &module),
            Some(Feature::TwinResponses)
        );
        assert_eq!(
            classify("$iothub/methods/POST/#", &device),
            Some(Feature::Methods)
        );
        assert_eq!(
            classify("$iothub/twin/PATCH/properties/desired/#", &device),
            Some(Feature::Desired)
        );
        assert_eq!(
            classify("devices/d/modules/m/inputs/#", &module),
            Some(Feature::Inputs)
        );
        assert_eq!(
            classify("devices/d/modules/m/#", &module),
            Some(Feature::Inputs)
        );
        assert_eq!(classify("devices/d/modules/mm/#", &module), None);
        assert_eq!(classify("devices/d/modules/m/inputs/#", &device), None);
        for other in ["#", "$iothub/#", "devices/d/#", "$iothub/twin/res/200", ""] {
            assert_eq!(classify(other, &device), None, "{other}");
        }
    }
}
