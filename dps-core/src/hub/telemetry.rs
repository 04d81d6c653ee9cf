//! Device-to-cloud telemetry: `devices/{device}[/modules/{module}]/messages/events/{bag}`.
//!
//! The same topic carries module outputs (with the `$.on` property) and the MQTT will message.

use core::fmt;

use super::properties::BagRef;
use super::topic::{TopicError, bag_after, identity_prefix};
use super::{MessageProperties, PropertyBag};

/// The topic a device or module publishes telemetry to, written by its
/// [`Display`](fmt::Display) implementation.
///
/// The device and module ids are written verbatim; the property bag, when given, follows the
/// final `/`.
///
/// ```
/// use dps_core::hub::{MessageProperties, TelemetryTopic};
///
/// assert_eq!(
///     TelemetryTopic::new("my_device").to_string(),
///     "devices/my_device/messages/events/"
/// );
/// let props = MessageProperties::new().content_type("application/json").content_encoding("utf-8");
/// assert_eq!(
///     TelemetryTopic::new("my_device").module("my_module").properties(&props).to_string(),
///     "devices/my_device/modules/my_module/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryTopic<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
    bag: BagRef<'a>,
}

impl<'a> TelemetryTopic<'a> {
    /// The telemetry topic of `device_id`, with no properties.
    #[must_use]
    pub const fn new(device_id: &'a str) -> Self {
        Self {
            device_id,
            module_id: None,
            bag: BagRef::Empty,
        }
    }

    /// Publishes as the module `module_id` of the device.
    #[must_use]
    pub const fn module(mut self, module_id: &'a str) -> Self {
        self.module_id = Some(module_id);
        self
    }

    /// Appends the bag of `properties` (encoded as it is written).
    #[must_use]
    pub const fn properties(mut self, properties: &'a MessageProperties) -> Self {
        self.bag = BagRef::Built(properties);
        self
    }

    /// Appends `bag` verbatim: a bag the caller has already percent-encoded, or one received
    /// and forwarded unchanged.
    #[must_use]
    pub const fn raw_properties(mut self, bag: &'a str) -> Self {
        self.bag = BagRef::Raw(bag);
        self
    }
}

impl TelemetryTopic<'_> {
    /// Hands the topic to `emit` piece by piece: the one writer behind `Display` and the hub
    /// session, which appends the pieces to its transmit's `String` without the formatting
    /// machinery (every telemetry message takes that path).
    pub(crate) fn write_pieces<E>(&self, emit: &mut E) -> fmt::Result
    where
        E: FnMut(&str) -> fmt::Result + ?Sized,
    {
        emit("devices/")?;
        emit(self.device_id)?;
        emit("/")?;
        if let Some(module_id) = self.module_id {
            emit("modules/")?;
            emit(module_id)?;
            emit("/")?;
        }
        emit("messages/events/")?;
        self.bag.write_pieces(emit)
    }
}

impl fmt::Display for TelemetryTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_pieces(&mut |piece| f.write_str(piece))
    }
}

/// A telemetry topic as the hub (or an emulator of it) receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryMessage<'a> {
    /// The device id, as written in the topic.
    pub device_id: &'a str,
    /// The module id, for a module's message.
    pub module_id: Option<&'a str>,
    /// The message properties (empty when the topic has none).
    pub properties: PropertyBag<'a>,
}

/// Parses a telemetry topic, as a service or an emulator does on every device publish.
///
/// A topic without the final `/` (`devices/d/messages/events`) has an empty bag. Any other topic
/// is [`TopicError::NoMatch`].
///
/// ```
/// use dps_core::hub::parse_telemetry_topic;
///
/// let t = parse_telemetry_topic("devices/d/modules/m/messages/events/%24.on=out&k=v").unwrap();
/// assert_eq!((t.device_id, t.module_id), ("d", Some("m")));
/// assert_eq!(t.properties.output_name().unwrap().value, Some("out"));
/// ```
pub fn parse_telemetry_topic(topic: &str) -> Result<TelemetryMessage<'_>, TopicError> {
    let (device_id, module_id, rest) = identity_prefix(topic).ok_or(TopicError::NoMatch)?;
    let bag = bag_after(rest, "messages/events").ok_or(TopicError::NoMatch)?;
    Ok(TelemetryMessage {
        device_id,
        module_id,
        properties: PropertyBag::new(bag),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn raw_bag_is_verbatim() {
        assert_eq!(
            TelemetryTopic::new("d")
                .raw_properties("%24.mid=1&a")
                .to_string(),
            "devices/d/messages/events/%24.mid=1&a"
        );
    }

    #[test]
    fn parse_shapes() {
        let t = parse_telemetry_topic("devices/d/messages/events/").unwrap();
        assert_eq!(
            (t.device_id, t.module_id, t.properties.as_str()),
            ("d", None, "")
        );
        let t = parse_telemetry_topic("devices/d/messages/events").unwrap();
        assert!(t.properties.is_empty());
        let t = parse_telemetry_topic("devices/d/messages/events/a=/b").unwrap();
        assert_eq!(t.properties.as_str(), "a=/b");
        for other in [
            "devices/d/messages/devicebound/",
            "devices/d/messages/eventsX",
            "devices//messages/events/",
            "devices/d/modules//messages/events/",
            "$iothub/twin/res/200/?$rid=1",
            "",
        ] {
            assert_eq!(
                parse_telemetry_topic(other),
                Err(TopicError::NoMatch),
                "{other}"
            );
        }
    }
}
