//! Module input messages: `devices/{device}/modules/{module}/inputs/{input}/{bag}`.
//!
//! Another module's output (a telemetry message with `$.on`) reaches a module on one of its
//! inputs when a hub (or IoT Edge) route says so.

use core::fmt;

use super::properties::BagRef;
use super::topic::{TopicError, identity_prefix};
use super::{MessageProperties, PropertyBag};

/// The filter a module subscribes to for all its inputs:
/// `devices/{device_id}/modules/{module_id}/inputs/#`.
///
/// ```
/// use dps_core::hub::InputSubscription;
/// assert_eq!(InputSubscription::new("d", "m").to_string(), "devices/d/modules/m/inputs/#");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSubscription<'a> {
    device_id: &'a str,
    module_id: &'a str,
}

impl<'a> InputSubscription<'a> {
    /// The filter for the inputs of module `module_id` of `device_id`.
    #[must_use]
    pub const fn new(device_id: &'a str, module_id: &'a str) -> Self {
        Self {
            device_id,
            module_id,
        }
    }
}

impl fmt::Display for InputSubscription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "devices/{}/modules/{}/inputs/#",
            self.device_id, self.module_id
        )
    }
}

/// The topic an input message is delivered on, for an emulator (or an edge hub) to publish.
/// Ids and the input name are written verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTopic<'a> {
    device_id: &'a str,
    module_id: &'a str,
    input_name: &'a str,
    bag: BagRef<'a>,
}

impl<'a> InputTopic<'a> {
    /// The topic of input `input_name` of module `module_id` of `device_id`, with no properties.
    #[must_use]
    pub const fn new(device_id: &'a str, module_id: &'a str, input_name: &'a str) -> Self {
        Self {
            device_id,
            module_id,
            input_name,
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

impl fmt::Display for InputTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "devices/{}/modules/{}/inputs/{}/{}",
            self.device_id, self.module_id, self.input_name, self.bag
        )
    }
}

/// A received module input message topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputMessage<'a> {
    /// The device id, as written in the topic.
    pub device_id: &'a str,
    /// The module id, as written in the topic.
    pub module_id: &'a str,
    /// The input the message arrived on.
    pub input_name: &'a str,
    /// The message properties, still encoded.
    pub properties: PropertyBag<'a>,
}

/// Parses a module input topic. Topics of other features are [`TopicError::NoMatch`]; an
/// inputs topic with an empty input name is [`TopicError::Malformed`].
///
/// ```
/// use dps_core::hub::parse_input_topic;
///
/// let msg = parse_input_topic("devices/d/modules/m/inputs/input1/%24.mid=1").unwrap();
/// assert_eq!((msg.device_id, msg.module_id, msg.input_name), ("d", "m", "input1"));
/// assert_eq!(msg.properties.message_id().unwrap().value, Some("1"));
/// ```
pub fn parse_input_topic(topic: &str) -> Result<InputMessage<'_>, TopicError> {
    let Some((device_id, Some(module_id), rest)) = identity_prefix(topic) else {
        return Err(TopicError::NoMatch);
    };
    let rest = match rest.strip_prefix("inputs") {
        Some(rest) => rest.strip_prefix('/').ok_or(TopicError::NoMatch)?,
        None => return Err(TopicError::NoMatch),
    };
    let (input_name, bag) = rest.split_once('/').unwrap_or((rest, ""));
    if input_name.is_empty() {
        return Err(TopicError::Malformed);
    }
    Ok(InputMessage {
        device_id,
        module_id,
        input_name,
        properties: PropertyBag::new(bag),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn format_and_parse() {
        let props = MessageProperties::new()
            .message_id("1")
            .property("k", "a/b");
        let topic = InputTopic::new("d", "m", "in")
            .properties(&props)
            .to_string();
        assert_eq!(topic, "devices/d/modules/m/inputs/in/%24.mid=1&k=a%2Fb");
        let msg = parse_input_topic(&topic).unwrap();
        assert_eq!(msg.input_name, "in");
        assert_eq!(msg.properties.value("k").unwrap().as_deref(), Some("a/b"));
        assert_eq!(
            InputTopic::new("d", "m", "in")
                .raw_properties("x")
                .to_string(),
            "devices/d/modules/m/inputs/in/x"
        );
    }

    #[test]
    fn parse_shapes() {
        let msg = parse_input_topic("devices/d/modules/m/inputs/in").unwrap();
        assert!(msg.properties.is_empty());
        assert_eq!(
            parse_input_topic("devices/d/modules/m/inputs/"),
            Err(TopicError::Malformed)
        );
        assert_eq!(
            parse_input_topic("devices/d/modules/m/inputs//a=1"),
            Err(TopicError::Malformed)
        );
        for other in [
            "devices/d/modules/m/inputs",
            "devices/d/modules/m/inputsX/a/",
            "devices/d/inputs/in/",
            "devices/d/modules/m/messages/events/",
            "devices/d/messages/devicebound/",
            "",
        ] {
            assert_eq!(
                parse_input_topic(other),
                Err(TopicError::NoMatch),
                "{other}"
            );
        }
    }
}
