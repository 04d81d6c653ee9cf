//! Service-to-device messaging: cloud-to-device messages (queued, delivered on subscription,
//! completed on PUBACK), module input messages, and direct method calls.

use std::time::{Duration, SystemTime};

use dps_core::hub::MethodRequestTopic;
use tokio::time::Instant;

use crate::hub::live::IdentityKey;
use crate::hub::methods::{MethodInvocation, MethodResult};
use crate::hub::runtime::HubRuntime;
use crate::hub::service::registry::{device_not_found, module_not_found};
use crate::model::{CloudToDeviceMessage, MAX_QUEUED_C2D, QueuedC2d};
use crate::rest::ServiceFailure;
use crate::store::StoreData;
use crate::util::time;

/// How often a method call waiting for its device to connect looks again.
const ONLINE_POLL: Duration = Duration::from_millis(50);

fn not_online(device_id: &str) -> ServiceFailure {
    ServiceFailure::not_found(
        404_103,
        format!("Timed out waiting for device {device_id} to connect."),
    )
}

impl HubRuntime {
    /// Queues a cloud-to-device message (at most [`MAX_QUEUED_C2D`] per device) and delivers it
    /// at once if the device is connected and subscribed; the message id.
    pub(crate) async fn send_c2d(
        &self,
        hub: &str,
        device_id: &str,
        message: CloudToDeviceMessage,
    ) -> Result<String, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let queued = QueuedC2d::new(message, &time::now_utc())?;
        let message_id = queued.message_id.clone();
        let key = StoreData::hub_device_key(&hub, device_id);
        self.store.mutate(|data| {
            if !data.hub_devices.contains_key(&key) {
                return Err(device_not_found(device_id));
            }
            let queue = data.hub_c2d.entry(key.clone()).or_default();
            if queue.len() >= MAX_QUEUED_C2D {
                return Err(ServiceFailure::new(
                    403,
                    403_004,
                    format!(
                        "Device {device_id} already has {MAX_QUEUED_C2D} messages queued \
                         (DeviceMaximumQueueDepthExceeded)."
                    ),
                ));
            }
            queue.push(queued);
            Ok(())
        })?;
        self.store.flush().await;
        self.deliver_c2d(&IdentityKey::device(&hub, device_id));
        Ok(message_id)
    }

    /// Sends the device's queued messages not yet sent on its live connection, if it is
    /// subscribed to them. QoS 1 messages stay queued until acknowledged; QoS 0 ones are
    /// completed once written.
    pub(crate) fn deliver_c2d(&self, key: &IdentityKey) {
        let store_key = key.store_key();
        let queue = self
            .store
            .read(|data| data.hub_c2d.get(&store_key).cloned().unwrap_or_default());
        if queue.is_empty() {
            return;
        }
        let completed = self.live.with(key, None, |conn| {
            let mut completed = Vec::new();
            let Some(qos) = conn.subscriptions.c2d else {
                return completed;
            };
            for message in &queue {
                if conn.c2d_sent.contains(&message.message_id) {
                    continue;
                }
                let topic = message.c2d_topic(&key.device_id);
                match conn.outbox.publish(topic, message.body(), qos) {
                    Ok(Some(pkid)) => {
                        conn.c2d_in_flight.insert(pkid, message.message_id.clone());
                    }
                    Ok(None) => completed.push(message.message_id.clone()),
                    Err(_) => break,
                }
                conn.c2d_sent.insert(message.message_id.clone());
                conn.last_activity = SystemTime::now();
            }
            completed
        });
        if let Some(completed) = completed.filter(|c| !c.is_empty()) {
            self.complete_c2d(key, &completed);
        }
    }

    /// The device acknowledged packet `pkid` on connection `conn_id`: if it carried a
    /// cloud-to-device message, that message is completed.
    pub(crate) fn c2d_acknowledged(&self, key: &IdentityKey, conn_id: u64, pkid: u16) {
        let message_id = self
            .live
            .with(key, Some(conn_id), |conn| conn.c2d_in_flight.remove(&pkid))
            .flatten();
        if let Some(message_id) = message_id {
            self.complete_c2d(key, &[message_id]);
        }
    }

    fn complete_c2d(&self, key: &IdentityKey, message_ids: &[String]) {
        let store_key = key.store_key();
        self.store.mutate(|data| {
            if let Some(queue) = data.hub_c2d.get_mut(&store_key) {
                queue.retain(|m| !message_ids.contains(&m.message_id));
                if queue.is_empty() {
                    data.hub_c2d.remove(&store_key);
                }
            }
        });
    }

    /// Sends a message to a module input (what an edge route would deliver). The module must
    /// be connected and subscribed to its inputs.
    pub(crate) fn send_to_input(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        input: &str,
        message: CloudToDeviceMessage,
    ) -> Result<String, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        if input.is_empty() || input.contains(['/', '#', '+']) {
            return Err(ServiceFailure::bad_request("invalid input name"));
        }
        self.check_identity(&hub, device_id, Some(module_id))?;
        let queued = QueuedC2d::new(message, &time::now_utc())?;
        let key = IdentityKey::module(&hub, device_id, module_id);
        let topic = queued.input_topic(device_id, module_id, input);
        let sent = self
            .live
            .with(&key, None, |conn| {
                let qos = conn.subscriptions.inputs?;
                conn.last_activity = SystemTime::now();
                conn.outbox.publish(topic, queued.body(), qos).ok()
            })
            .flatten();
        match sent {
            Some(_) => Ok(queued.message_id),
            None => Err(not_online(device_id)),
        }
    }

    /// 404 unless the device (and module) exist.
    fn check_identity(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        let device = self
            .stored_device(hub, device_id)
            .ok_or_else(|| device_not_found(device_id))?;
        match module_id {
            Some(module_id) if !device.modules.contains_key(module_id) => {
                Err(module_not_found(device_id, module_id))
            }
            _ => Ok(()),
        }
    }

    /// Invokes a direct method: waits up to the connect timeout for the identity to be
    /// connected and subscribed to methods (else 404103 DeviceNotOnline), then up to the
    /// response timeout for its answer (else 504101 GatewayTimeout).
    pub(crate) async fn invoke_method(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
        invocation: &MethodInvocation,
    ) -> Result<MethodResult, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let (response_timeout, connect_timeout) = invocation.validate()?;
        self.check_identity(&hub, device_id, module_id)?;
        let key = match module_id {
            None => IdentityKey::device(&hub, device_id),
            Some(module_id) => IdentityKey::module(&hub, device_id, module_id),
        };
        let deadline = Instant::now() + connect_timeout;
        let qos = loop {
            if let Some(qos) = self
                .live
                .with(&key, None, |c| c.subscriptions.methods)
                .flatten()
            {
                break qos;
            }
            if Instant::now() >= deadline {
                return Err(not_online(device_id));
            }
            tokio::time::sleep(ONLINE_POLL).await;
        };
        let (rid, answer) = self.methods.register(&key);
        let topic = MethodRequestTopic::new(&invocation.method_name, &rid).to_string();
        let payload = serde_json::to_vec(&invocation.payload).unwrap_or_else(|_| b"null".to_vec());
        let sent = self
            .live
            .with(&key, None, |conn| {
                conn.last_activity = SystemTime::now();
                conn.outbox.publish(topic, payload, qos).is_ok()
            })
            .unwrap_or(false);
        if !sent {
            self.methods.cancel(&rid);
            return Err(not_online(device_id));
        }
        tracing::info!(identity = %key, method = %invocation.method_name, %rid, "direct method sent");
        match tokio::time::timeout(response_timeout, answer).await {
            Ok(Ok(result)) => Ok(result),
            _ => {
                self.methods.cancel(&rid);
                Err(ServiceFailure::new(
                    504,
                    504_101,
                    format!(
                        "Timed out waiting for the response from device {device_id} \
                         (GatewayTimeout)."
                    ),
                ))
            }
        }
    }
}
