//! Cloud-to-device messages: `devices/{device}/messages/devicebound/{bag}`.
//!
//! The hub queues cloud-to-device messages for a device only once it has had a session, and a
//! clean-session-false connection keeps the queue across reconnects.

use core::fmt;

use super::properties::BagRef;
use super::topic::{TopicError, bag_after, identity_prefix};
use super::{MessageProperties, PropertyBag};

/// The filter a device subscribes to for its cloud-to-device messages:
/// `devices/{device_id}/messages/devicebound/#`.
///
/// ```
/// use dps_core::hub::C2dSubscription;
/// assert_eq!(C2dSubscription::new("d1").to_string(), "devices/d1/messages/devicebound/#");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C2dSubscription<'a> {
    device_id: &'a str,
}

impl<'a> C2dSubscription<'a> {
    /// The filter for `device_id`'s messages.
    #[must_use]
    pub const fn new(device_id: &'a str) -> Self {
        Self { device_id }
    }
}

impl fmt::Display for C2dSubscription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "devices/{}/messages/devicebound/#", self.device_id)
    }
}

/// The topic a cloud-to-device message is delivered on, for an emulator of the hub to publish.
///
/// The hub sets `$.to`, `$.mid` and friends; build them with [`MessageProperties`].
///
/// ```
/// use dps_core::hub::{C2dTopic, MessageProperties, SystemProperty};
///
/// let props = MessageProperties::new()
///     .message_id("7")
///     .system(SystemProperty::To, "/devices/d1/messages/deviceBound");
/// assert_eq!(
///     C2dTopic::new("d1").properties(&props).to_string(),
///     "devices/d1/messages/devicebound/%24.mid=7&%24.to=%2Fdevices%2Fd1%2Fmessages%2FdeviceBound"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C2dTopic<'a> {
    device_id: &'a str,
    bag: BagRef<'a>,
}

impl<'a> C2dTopic<'a> {
    /// The delivery topic for `device_id`, with no properties.
    #[must_use]
    pub const fn new(device_id: &'a str) -> Self {
        Self {
            device_id,
            bag: BagRef::Empty,
        }
    }

    /// Appends the bag of `properties`.
    #[must_use]
    pub const fn properties(mut self, properties: &'a MessageProperties) -> Self {
        self.bag = BagRef::Built(properties);
        self
    }

    /// Appends an already-encoded `bag` verbatim.
    #[must_use]
    pub const fn raw_properties(mut self, bag: &'a str) -> Self {
        self.bag = BagRef::Raw(bag);
        self
    }
}

impl fmt::Display for C2dTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "devices/{}/messages/devicebound/{}",
            self.device_id, self.bag
        )
    }
}

/// A received cloud-to-device message topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct C2dMessage<'a> {
    /// The device id, as written in the topic.
    pub device_id: &'a str,
    /// The message properties, still encoded (`%24.to` and `$.mid` forms both occur).
    pub properties: PropertyBag<'a>,
}

/// Parses a cloud-to-device topic. Any other topic (a twin response, a method request, a
/// module's input) is [`TopicError::NoMatch`].
///
/// The device id is not checked against the connected device; compare it if the connection
/// carries several identities.
///
/// ```
/// use dps_core::hub::parse_c2d_topic;
///
/// let msg = parse_c2d_topic("devices/d1/messages/devicebound/$.mid=7&abc=123").unwrap();
/// assert_eq!(msg.device_id, "d1");
/// assert_eq!(msg.properties.message_id().unwrap().value, Some("7"));
/// assert_eq!(msg.properties.value("abc").unwrap().as_deref(), Some("123"));
/// ```
pub fn parse_c2d_topic(topic: &str) -> Result<C2dMessage<'_>, TopicError> {
    match identity_prefix(topic) {
        Some((device_id, None, rest)) => {
            let bag = bag_after(rest, "messages/devicebound").ok_or(TopicError::NoMatch)?;
            Ok(C2dMessage {
                device_id,
                properties: PropertyBag::new(bag),
            })
        }
        _ => Err(TopicError::NoMatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn topics() {
        assert_eq!(
            C2dTopic::new("d").to_string(),
            "devices/d/messages/devicebound/"
        );
        assert_eq!(
            C2dTopic::new("d").raw_properties("a&b=").to_string(),
            "devices/d/messages/devicebound/a&b="
        );
    }

    #[test]
    fn parse_shapes() {
        let msg = parse_c2d_topic("devices/d/messages/devicebound").unwrap();
        assert!(msg.properties.is_empty());
        for other in [
            "devices/d/modules/m/messages/devicebound/",
            "devices/d/modules/m/inputs/i/",
            "devices/d/messages/events/",
            "devices/d/messages/deviceboundX/",
            "devices/d",
            "",
        ] {
            assert_eq!(parse_c2d_topic(other), Err(TopicError::NoMatch), "{other}");
        }
    }
}
