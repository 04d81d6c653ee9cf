//! Messages: what a device sends ([`Message`]) and what it receives ([`ReceivedMessage`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::hub::{MessageProperties, PropertyBag, SystemProperty};
use bytes::Bytes;

/// A device-to-cloud message: a body, application properties and the system properties the hub
/// understands.
///
/// ```
/// use std::time::Duration;
/// use dps_core::hub::Message;
///
/// #[derive(serde::Serialize)]
/// struct Reading { temperature: f64 }
///
/// let message = Message::json(&Reading { temperature: 21.5 })?
///     .property("alert", "false")
///     .message_id("reading-0001")
///     .expires_in(Duration::from_secs(600));
/// assert_eq!(message.payload().as_ref(), br#"{"temperature":21.5}"#);
/// assert_eq!(message.content_type_value(), Some("application/json"));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// Messages are always sent with QoS 1 (at least once): there is no way to ask for QoS 2,
/// which IoT Hub answers by closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub(crate) payload: Bytes,
    pub(crate) properties: MessageProperties,
    pub(crate) expires_in: Option<Duration>,
}

impl Message {
    /// A message with `payload` as its body and no properties.
    #[must_use]
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            properties: MessageProperties::new(),
            expires_in: None,
        }
    }

    /// A message whose body is `value` as JSON, with content type `application/json` and content
    /// encoding `utf-8` (so hub routes can query the body).
    ///
    /// # Errors
    /// When `value` cannot be serialized.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let body = serde_json::to_vec(value)?;
        Ok(Self::new(body)
            .content_type("application/json")
            .content_encoding("utf-8"))
    }

    /// Appends an application property (keys and values are percent-encoded on the wire).
    #[must_use]
    pub fn property(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.properties.push(key, value);
        self
    }

    /// Sets `$.mid`, the message id (the hub and back ends use it to de-duplicate: messages are
    /// delivered at least once).
    #[must_use]
    pub fn message_id(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::MessageId, value)
    }

    /// Sets `$.cid`, the correlation id.
    #[must_use]
    pub fn correlation_id(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::CorrelationId, value)
    }

    /// Sets `$.ct`, the content type of the body.
    #[must_use]
    pub fn content_type(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::ContentType, value)
    }

    /// Sets `$.ce`, the content encoding of the body (for example `utf-8`).
    #[must_use]
    pub fn content_encoding(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::ContentEncoding, value)
    }

    /// Sets `$.uid`, the user id.
    #[must_use]
    pub fn user_id(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::UserId, value)
    }

    /// Sets `$.ctime`, the creation time (ISO 8601, for example `2024-01-01T00:00:00Z`).
    #[must_use]
    pub fn creation_time(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::CreationTime, value)
    }

    /// Sets `$.on`: a module sends the message to its output `name` (hub or IoT Edge routes
    /// deliver it to another module's input).
    #[must_use]
    pub fn output(self, name: impl AsRef<str>) -> Self {
        self.system(SystemProperty::OutputName, name)
    }

    /// Sets `$.sub`, the IoT Plug and Play component the telemetry belongs to.
    #[must_use]
    pub fn component(self, name: impl AsRef<str>) -> Self {
        self.system(SystemProperty::Component, name)
    }

    /// Sets any system property.
    #[must_use]
    pub fn system(mut self, property: SystemProperty, value: impl AsRef<str>) -> Self {
        self.properties.set(property, value);
        self
    }

    /// Drops the message, with [`SendError::Expired`](crate::hub::SendError::Expired), if it has not
    /// been handed to the hub within `ttl` of being queued (for example while the device is
    /// offline). Without it the message waits as long as the client runs.
    #[must_use]
    pub const fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    /// The body.
    #[must_use]
    pub const fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The properties, system and application.
    #[must_use]
    pub const fn properties(&self) -> &MessageProperties {
        &self.properties
    }

    /// `$.ct`, if set.
    #[must_use]
    pub fn content_type_value(&self) -> Option<&str> {
        self.properties.get(SystemProperty::ContentType)
    }

    /// The time to live set with [`expires_in`](Self::expires_in).
    #[must_use]
    pub const fn ttl(&self) -> Option<Duration> {
        self.expires_in
    }
}

/// A message the hub delivered: a cloud-to-device message, or a module input message.
///
/// Property keys and values are percent-decoded; a value the hub sent as a bare key (a null
/// value) reads as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub(crate) payload: Bytes,
    pub(crate) input_name: Option<String>,
    pub(crate) system: Vec<(SystemProperty, String)>,
    pub(crate) properties: Vec<(String, Option<String>)>,
}

impl ReceivedMessage {
    /// Decodes a received property bag. Keys or values with invalid escapes are kept as sent.
    pub(crate) fn decode(bag: PropertyBag<'_>, payload: Bytes, input_name: Option<String>) -> Self {
        let mut system = Vec::new();
        let mut properties = Vec::new();
        for property in bag {
            let key = property
                .decoded_key()
                .map_or_else(|_| property.key.to_string(), |k| k.into_owned());
            let value = match property.decoded_value() {
                Ok(value) => value.map(|v| v.into_owned()),
                Err(_) => property.value.map(ToString::to_string),
            };
            match (SystemProperty::from_key(&key), value) {
                (Some(p), Some(v)) => system.push((p, v)),
                (_, value) => properties.push((key, value)),
            }
        }
        Self {
            payload,
            input_name,
            system,
            properties,
        }
    }

    /// The body.
    #[must_use]
    pub const fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The body as UTF-8 text, if it is.
    #[must_use]
    pub fn payload_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.payload).ok()
    }

    /// The input the message arrived on (module input messages only).
    #[must_use]
    pub fn input_name(&self) -> Option<&str> {
        self.input_name.as_deref()
    }

    /// A system property, if the hub sent it.
    #[must_use]
    pub fn system_property(&self, property: SystemProperty) -> Option<&str> {
        self.system
            .iter()
            .find(|(p, _)| *p == property)
            .map(|(_, v)| v.as_str())
    }

    /// `$.mid`, the message id.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.system_property(SystemProperty::MessageId)
    }

    /// `$.cid`, the correlation id.
    #[must_use]
    pub fn correlation_id(&self) -> Option<&str> {
        self.system_property(SystemProperty::CorrelationId)
    }

    /// `$.ct`, the content type.
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.system_property(SystemProperty::ContentType)
    }

    /// `$.ce`, the content encoding.
    #[must_use]
    pub fn content_encoding(&self) -> Option<&str> {
        self.system_property(SystemProperty::ContentEncoding)
    }

    /// `$.uid`, the user id.
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        self.system_property(SystemProperty::UserId)
    }

    /// `$.exp`, the absolute expiry time the sender set.
    #[must_use]
    pub fn expiry(&self) -> Option<&str> {
        self.system_property(SystemProperty::Expiry)
    }

    /// `$.to`, the destination the hub set (`/devices/{id}/messages/deviceBound`).
    #[must_use]
    pub fn to(&self) -> Option<&str> {
        self.system_property(SystemProperty::To)
    }

    /// `iothub-ack`, the delivery feedback the sender asked for (`none`, `positive`, `negative`
    /// or `full`).
    #[must_use]
    pub fn ack(&self) -> Option<&str> {
        self.property("iothub-ack")
    }

    /// The value of the application property `key` (`None` when absent or null).
    #[must_use]
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The application properties, in the order received.
    pub fn properties(&self) -> impl Iterator<Item = (&str, Option<&str>)> + '_ {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// The system properties, in the order received.
    pub fn system_properties(&self) -> impl Iterator<Item = (SystemProperty, &str)> + '_ {
        self.system.iter().map(|(p, v)| (*p, v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_system_and_application_properties() {
        let bag = PropertyBag::new(
            "%24.to=%2Fdevices%2Fd%2Fmessages%2FdeviceBound&$.mid=7&%24.cid=c%201&$.ct=application%2Fjson\
             &iothub-ack=full&k%20x=a%2Fb&flag&empty=&bad=%zz",
        );
        let m = ReceivedMessage::decode(bag, Bytes::from_static(b"hi"), None);
        assert_eq!(m.to(), Some("/devices/d/messages/deviceBound"));
        assert_eq!(m.message_id(), Some("7"));
        assert_eq!(m.correlation_id(), Some("c 1"));
        assert_eq!(m.content_type(), Some("application/json"));
        assert_eq!(m.ack(), Some("full"));
        assert_eq!(m.property("k x"), Some("a/b"));
        assert_eq!(m.property("flag"), None);
        assert_eq!(m.property("empty"), Some(""));
        assert_eq!(m.property("bad"), Some("%zz"));
        assert_eq!(m.payload_str(), Some("hi"));
        assert_eq!(m.properties().count(), 5);
        assert_eq!(m.system_properties().count(), 4);
        assert!(m.user_id().is_none() && m.expiry().is_none() && m.content_encoding().is_none());
    }
}
