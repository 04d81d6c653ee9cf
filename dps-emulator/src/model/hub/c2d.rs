//! Cloud-to-device messages: what the service sends, how it is queued (persisted, at most 50
//! per device), and the topic and property bag it reaches the device with.

use base64::Engine as _;
use dps_core::hub::{C2dTopic, InputTopic, MessageProperties, SystemProperty};
use serde::{Deserialize, Serialize};

use crate::rest::ServiceFailure;

/// The most messages queued for one device (the service's limit).
pub const MAX_QUEUED_C2D: usize = 50;
/// The largest cloud-to-device message body (64 KB).
pub const MAX_C2D_SIZE: usize = 64 * 1024;

/// A message for a device (cloud-to-device) or for a module input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudToDeviceMessage {
    /// The body.
    pub body: Vec<u8>,
    /// `$.mid` (generated when `None`).
    pub message_id: Option<String>,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// `$.ct`.
    pub content_type: Option<String>,
    /// `$.ce`.
    pub content_encoding: Option<String>,
    /// `$.uid`.
    pub user_id: Option<String>,
    /// `$.exp`, as the service writes it (ISO 8601); informational, not enforced.
    pub expiry_time_utc: Option<String>,
    /// `iothub-ack` (`none`, `positive`, `negative`, `full`); informational.
    pub ack: Option<String>,
    /// Application properties, in order.
    pub properties: Vec<(String, String)>,
}

impl CloudToDeviceMessage {
    /// A message with this body and no properties.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// Adds an application property.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets the message id.
    #[must_use]
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the content type.
    #[must_use]
    pub fn content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    /// Sets the content encoding.
    #[must_use]
    pub fn content_encoding(mut self, value: impl Into<String>) -> Self {
        self.content_encoding = Some(value.into());
        self
    }
}

/// The REST body of the emulator-only send endpoints: `body` (text) or `bodyBase64`, the system
/// properties by name, and `properties` (an object of strings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct MessageRequest {
    body: Option<String>,
    body_base64: Option<String>,
    message_id: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    user_id: Option<String>,
    expiry_time_utc: Option<String>,
    ack: Option<String>,
    properties: serde_json::Map<String, serde_json::Value>,
}

impl MessageRequest {
    pub(crate) fn into_message(self) -> Result<CloudToDeviceMessage, ServiceFailure> {
        let body = match (self.body, self.body_base64) {
            (Some(_), Some(_)) => {
                return Err(ServiceFailure::bad_request(
                    "give either body or bodyBase64, not both",
                ));
            }
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ServiceFailure::bad_request(format!("bodyBase64: {e}")))?,
            (None, None) => Vec::new(),
        };
        let properties = self
            .properties
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok((k, v.to_string())),
                _ => Err(ServiceFailure::bad_request(format!(
                    "property {k:?} must be a string, number or boolean"
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(CloudToDeviceMessage {
            body,
            message_id: self.message_id,
            correlation_id: self.correlation_id,
            content_type: self.content_type,
            content_encoding: self.content_encoding,
            user_id: self.user_id,
            expiry_time_utc: self.expiry_time_utc,
            ack: self.ack,
            properties,
        })
    }
}

/// A queued cloud-to-device message, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueuedC2d {
    pub(crate) message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiry_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ack: Option<String>,
    #[serde(default)]
    pub(crate) properties: Vec<(String, String)>,
    /// The body, base64 (the state file is JSON).
    pub(crate) body: String,
    pub(crate) enqueued_time: String,
}

impl QueuedC2d {
    /// Checks and queues a message; the message id is generated when absent.
    pub(crate) fn new(message: CloudToDeviceMessage, now: &str) -> Result<Self, ServiceFailure> {
        if message.body.len() > MAX_C2D_SIZE {
            return Err(ServiceFailure::new(
                413,
                413_001,
                format!(
                    "the message is {} bytes, over the {MAX_C2D_SIZE}-byte limit",
                    message.body.len()
                ),
            ));
        }
        Ok(Self {
            message_id: message
                .message_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            correlation_id: message.correlation_id,
            content_type: message.content_type,
            content_encoding: message.content_encoding,
            user_id: message.user_id,
            expiry_time_utc: message.expiry_time_utc,
            ack: message.ack,
            properties: message.properties,
            body: base64::engine::general_purpose::STANDARD.encode(&message.body),
            enqueued_time: now.to_owned(),
        })
    }

    /// The body bytes (empty if the stored text was damaged).
    pub(crate) fn body(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .unwrap_or_default()
    }

    /// The property bag: system properties (with `$.to` as the service adds it), then the
    /// application properties.
    fn properties(&self, to: Option<String>) -> MessageProperties {
        let mut bag = MessageProperties::new().message_id(self.message_id.clone());
        let optional = [
            (SystemProperty::CorrelationId, &self.correlation_id),
            (SystemProperty::UserId, &self.user_id),
            (SystemProperty::ContentType, &self.content_type),
            (SystemProperty::ContentEncoding, &self.content_encoding),
            (SystemProperty::Expiry, &self.expiry_time_utc),
        ];
        for (property, value) in optional {
            if let Some(value) = value {
                bag.set(property, value.clone());
            }
        }
        if let Some(to) = to {
            bag.set(SystemProperty::To, to);
        }
        if let Some(ack) = &self.ack {
            bag.push("iothub-ack", ack.clone());
        }
        for (key, value) in &self.properties {
            bag.push(key.clone(), value.clone());
        }
        bag
    }

    /// The delivery topic for a device.
    pub(crate) fn c2d_topic(&self, device_id: &str) -> String {
        let bag = self.properties(Some(format!("/devices/{device_id}/messages/deviceBound")));
        C2dTopic::new(device_id).properties(&bag).to_string()
    }

    /// The delivery topic for a module input.
    pub(crate) fn input_topic(&self, device_id: &str, module_id: &str, input: &str) -> String {
        let bag = self.properties(None);
        InputTopic::new(device_id, module_id, input)
            .properties(&bag)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dps_core::hub::{parse_c2d_topic, parse_input_topic};

    #[test]
    fn topics_carry_system_and_application_properties() {
        let message = CloudToDeviceMessage::new("hi")
            .message_id("m 1")
            .correlation_id("c")
            .content_type("application/json")
            .property("color", "red&blue");
        let queued = QueuedC2d::new(message, "now").unwrap();
        let topic = queued.c2d_topic("dev");
        let parsed = parse_c2d_topic(&topic).unwrap();
        assert_eq!(parsed.device_id, "dev");
        let bag = parsed.properties;
        assert_eq!(bag.value("$.mid").unwrap().as_deref(), Some("m 1"));
        assert_eq!(bag.value("$.cid").unwrap().as_deref(), Some("c"));
        assert_eq!(
            bag.value("$.ct").unwrap().as_deref(),
            Some("application/json")
        );
        assert_eq!(
            bag.value("$.to").unwrap().as_deref(),
            Some("/devices/dev/messages/deviceBound")
        );
        assert_eq!(bag.value("color").unwrap().as_deref(), Some("red&blue"));
        assert_eq!(queued.body(), b"hi");

        let input = queued.input_topic("dev", "mod", "in1");
        let parsed = parse_input_topic(&input).unwrap();
        assert_eq!((parsed.module_id, parsed.input_name), ("mod", "in1"));
        assert!(parsed.properties.value("$.to").unwrap().is_none());
    }

    #[test]
    fn oversized_messages_are_refused() {
        let big = CloudToDeviceMessage::new(vec![0; MAX_C2D_SIZE + 1]);
        assert_eq!(QueuedC2d::new(big, "now").unwrap_err().status, 413);
    }
}
