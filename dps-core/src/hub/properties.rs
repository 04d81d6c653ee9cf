//! Message properties to send: the system properties IoT Hub understands plus application
//! properties, written as a percent-encoded property bag.
//!
//! Received bags are read with [`PropertyBag`](super::PropertyBag).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::encoding::{PercentEncoded, appending};

/// A system property of an IoT Hub message: a `$.`-prefixed key the hub interprets (for
/// routing, expiry, or to tell a module output apart).
///
/// The variants are listed in the order [`MessageProperties`] writes them, which is the Python
/// SDK's order followed by the keys it does not write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SystemProperty {
    /// `$.on`: the output name of a module message, which routes it to another module's input.
    OutputName,
    /// `$.mid`: the message id, for de-duplication and correlation.
    MessageId,
    /// `$.cid`: the correlation id, usually the message id of the message being answered.
    CorrelationId,
    /// `$.uid`: the user id (an origin the hub does not verify).
    UserId,
    /// `$.ct`: the body content type, for example `application/json`; the hub needs it (with
    /// [`ContentEncoding`](Self::ContentEncoding)) to route on the message body.
    ContentType,
    /// `$.ce`: the body content encoding, for example `utf-8`.
    ContentEncoding,
    /// `$.ifid`: the interface id (the C# and Python security agents set it).
    InterfaceId,
    /// `$.exp`: the absolute expiry time (ISO 8601) after which the hub drops the message.
    Expiry,
    /// `$.ctime`: the creation time (ISO 8601) as the sender saw it.
    CreationTime,
    /// `$.sub`: the IoT Plug and Play component the telemetry belongs to.
    Component,
    /// `$.to`: the destination; the hub sets it on cloud-to-device messages
    /// (`/devices/{id}/messages/deviceBound`).
    To,
}

impl SystemProperty {
    /// Every system property, in the order [`MessageProperties`] writes them.
    pub const ALL: [Self; 11] = [
        Self::OutputName,
        Self::MessageId,
        Self::CorrelationId,
        Self::UserId,
        Self::ContentType,
        Self::ContentEncoding,
        Self::InterfaceId,
        Self::Expiry,
        Self::CreationTime,
        Self::Component,
        Self::To,
    ];

    /// The key as the protocol names it, for example `$.mid`.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Self::OutputName => "$.on",
            Self::MessageId => "$.mid",
            Self::CorrelationId => "$.cid",
            Self::UserId => "$.uid",
            Self::ContentType => "$.ct",
            Self::ContentEncoding => "$.ce",
            Self::InterfaceId => "$.ifid",
            Self::Expiry => "$.exp",
            Self::CreationTime => "$.ctime",
            Self::Component => "$.sub",
            Self::To => "$.to",
        }
    }

    /// The key percent-encoded as it is sent, for example `%24.mid`.
    #[must_use]
    pub const fn encoded_key(self) -> &'static str {
        match self {
            Self::OutputName => "%24.on",
            Self::MessageId => "%24.mid",
            Self::CorrelationId => "%24.cid",
            Self::UserId => "%24.uid",
            Self::ContentType => "%24.ct",
            Self::ContentEncoding => "%24.ce",
            Self::InterfaceId => "%24.ifid",
            Self::Expiry => "%24.exp",
            Self::CreationTime => "%24.ctime",
            Self::Component => "%24.sub",
            Self::To => "%24.to",
        }
    }

    /// The system property whose (decoded) key is `key`, if any.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// The properties of a message to send (telemetry, a module output, or, for an emulator, a
/// cloud-to-device message), written as a property bag by its [`Display`](fmt::Display)
/// implementation.
///
/// System properties are written first, in [`SystemProperty::ALL`] order, then application
/// properties in insertion order; keys and values are percent-encoded, so `$.mid` is sent as
/// `%24.mid` and `a/b` as `a%2Fb`. Pass it to
/// [`TelemetryTopic::properties`](super::TelemetryTopic::properties).
///
/// ```
/// use dps_core::hub::MessageProperties;
///
/// let props = MessageProperties::new()
///     .message_id("1234")
///     .content_type("application/json")
///     .content_encoding("utf-8")
///     .property("alert", "true");
/// assert_eq!(
///     props.to_string(),
///     "%24.mid=1234&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true"
/// );
/// ```
#[derive(Clone, Default)]
pub struct MessageProperties {
    /// Every value and key, back to back (the spans below point into it): one buffer for the
    /// whole message instead of a `String` per key and value, which made the message API most
    /// of the allocations of a telemetry message (#16).
    text: String,
    system: [Option<Span>; SystemProperty::ALL.len()],
    application: Vec<(Span, Span)>,
}

/// Where a key or value lies in [`MessageProperties::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: usize,
    end: usize,
}

/// The room the first key or value reserves: a typical message's properties (a message id,
/// content type and encoding, two application properties) fit without growing.
const FIRST_ROOM: usize = 96;

impl PartialEq for MessageProperties {
    fn eq(&self, other: &Self) -> bool {
        SystemProperty::ALL
            .iter()
            .all(|p| self.get(*p) == other.get(*p))
            && self
                .application_properties()
                .eq(other.application_properties())
    }
}

impl Eq for MessageProperties {}

impl fmt::Debug for MessageProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let system = SystemProperty::ALL
            .iter()
            .filter_map(|p| self.get(*p).map(|v| (p.key(), v)));
        f.debug_struct("MessageProperties")
            .field("system", &DebugMap(system))
            .field("application", &DebugMap(self.application_properties()))
            .finish()
    }
}

/// Debug-prints `(key, value)` pairs as a map.
struct DebugMap<I>(I);

impl<'a, I: Iterator<Item = (&'a str, &'a str)> + Clone> fmt::Debug for DebugMap<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.clone()).finish()
    }
}

impl MessageProperties {
    /// The encoded bag as a `String` of exactly its size, allocated once: `to_string` would
    /// regrow it three or four times for a typical bag, and a size that misses the escapes
    /// (`application/json` is `application%2Fjson`) once.
    pub(crate) fn encode(&self) -> String {
        let len = |text: &str| PercentEncoded::new(text).encoded_len();
        let system = SystemProperty::ALL
            .iter()
            .filter_map(|p| self.get(*p).map(|v| p.encoded_key().len() + len(v) + 2));
        let application = self
            .application_properties()
            .map(|(k, v)| len(k) + len(v) + 2);
        let capacity: usize = system.chain(application).sum();
        let mut bag = String::with_capacity(capacity);
        // Appended directly: the formatting machinery cost more than the encoding itself on
        // the telemetry path.
        let _ = self.write_bag(&mut appending(&mut bag));
        debug_assert!(
            bag.len() <= capacity,
            "the bag never outgrows its first allocation"
        );
        bag
    }

    /// The one writer of the bag, behind [`encode`](Self::encode) and `Display`: hands it to
    /// `emit` piece by piece.
    pub(crate) fn write_bag<E>(&self, emit: &mut E) -> fmt::Result
    where
        E: FnMut(&str) -> fmt::Result + ?Sized,
    {
        let mut separator = "";
        for property in SystemProperty::ALL {
            if let Some(value) = self.get(property) {
                emit(separator)?;
                emit(property.encoded_key())?;
                emit("=")?;
                PercentEncoded::new(value).write_pieces(emit)?;
                separator = "&";
            }
        }
        for (key, value) in self.application_properties() {
            emit(separator)?;
            PercentEncoded::new(key).write_pieces(emit)?;
            emit("=")?;
            PercentEncoded::new(value).write_pieces(emit)?;
            separator = "&";
        }
        Ok(())
    }

    /// An empty set of properties (it writes an empty bag).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a system property, replacing an earlier value.
    #[must_use]
    pub fn system(mut self, property: SystemProperty, value: impl AsRef<str>) -> Self {
        self.set(property, value);
        self
    }

    /// Sets `$.mid`, the message id.
    #[must_use]
    pub fn message_id(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::MessageId, value)
    }

    /// Sets `$.cid`, the correlation id.
    #[must_use]
    pub fn correlation_id(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::CorrelationId, value)
    }

    /// Sets `$.ct`, the content type; set it to `application/json` (and the content encoding)
    /// when hub routes query the message body.
    #[must_use]
    pub fn content_type(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::ContentType, value)
    }

    /// Sets `$.ce`, the content encoding, for example `utf-8`.
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

    /// Sets `$.exp`, the absolute expiry time (ISO 8601).
    #[must_use]
    pub fn expiry(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::Expiry, value)
    }

    /// Sets `$.on`, the output name a module sends a message to.
    #[must_use]
    pub fn output_name(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::OutputName, value)
    }

    /// Sets `$.sub`, the IoT Plug and Play component of the telemetry.
    #[must_use]
    pub fn component(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::Component, value)
    }

    /// Sets `$.ifid`, the interface id.
    #[must_use]
    pub fn interface_id(self, value: impl AsRef<str>) -> Self {
        self.system(SystemProperty::InterfaceId, value)
    }

    /// Appends an application property. Properties keep their insertion order and a repeated key
    /// is sent twice; use the system property setters for `$.` keys.
    #[must_use]
    pub fn property(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.push(key, value);
        self
    }

    /// Sets a system property in place, replacing an earlier value.
    pub fn set(&mut self, property: SystemProperty, value: impl AsRef<str>) {
        let span = self.store(value.as_ref());
        if let Some(slot) = self.system.get_mut(property.index()) {
            *slot = Some(span);
        }
    }

    /// Removes a system property, returning its value.
    pub fn remove(&mut self, property: SystemProperty) -> Option<String> {
        let span = self.system.get_mut(property.index())?.take()?;
        Some(String::from(self.text_at(span)))
    }

    /// Appends an application property in place.
    pub fn push(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let key = self.store(key.as_ref());
        let value = self.store(value.as_ref());
        self.application.push((key, value));
    }

    /// The value of a system property, if set.
    #[must_use]
    pub fn get(&self, property: SystemProperty) -> Option<&str> {
        let span = (*self.system.get(property.index())?)?;
        Some(self.text_at(span))
    }

    /// The application properties, in insertion order.
    pub fn application_properties(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        self.application
            .iter()
            .map(|(k, v)| (self.text_at(*k), self.text_at(*v)))
    }

    /// Appends `value` to the text; a replaced value's old text stays until the properties
    /// are dropped (values are set once in the usual case, and the message goes soon).
    fn store(&mut self, value: &str) -> Span {
        if self.text.capacity() == 0 {
            self.text.reserve(FIRST_ROOM.max(value.len()));
        }
        let start = self.text.len();
        self.text.push_str(value);
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn text_at(&self, span: Span) -> &str {
        // Spans are made by `store` at char boundaries of this text, which only grows.
        self.text.get(span.start..span.end).unwrap_or_default()
    }

    /// True when no property is set, so the bag is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.application.is_empty() && self.system.iter().all(Option::is_none)
    }
}

impl fmt::Display for MessageProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_bag(&mut |piece| f.write_str(piece))
    }
}

/// The bag a topic builder appends: none, one built from [`MessageProperties`], or raw text
/// the caller already encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum BagRef<'a> {
    #[default]
    Empty,
    Built(&'a MessageProperties),
    Raw(&'a str),
}

impl BagRef<'_> {
    /// Hands the bag to `emit` piece by piece, as `Display` writes it.
    pub(crate) fn write_pieces<E>(&self, emit: &mut E) -> fmt::Result
    where
        E: FnMut(&str) -> fmt::Result + ?Sized,
    {
        match self {
            Self::Empty => Ok(()),
            Self::Built(properties) => properties.write_bag(emit),
            Self::Raw(raw) => emit(raw),
        }
    }
}

impl fmt::Display for BagRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_pieces(&mut |piece| f.write_str(piece))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn a_replaced_or_removed_value_is_gone_from_every_view() {
        let mut props = MessageProperties::new()
            .content_type("text/plain")
            .message_id("m-1")
            .property("k", "v");
        props.set(SystemProperty::ContentType, "application/json");
        assert_eq!(
            props.remove(SystemProperty::MessageId).as_deref(),
            Some("m-1")
        );
        assert_eq!(props.remove(SystemProperty::MessageId), None);
        let fresh = MessageProperties::new()
            .content_type("application/json")
            .property("k", "v");
        assert_eq!(props, fresh, "equal by content, not by buffer");
        assert_eq!(props.encode(), "%24.ct=application%2Fjson&k=v");
        assert_eq!(props.to_string(), props.encode());
        let debug = alloc::format!("{props:?}");
        assert!(
            debug.contains("application/json") && !debug.contains("text/plain"),
            "{debug}"
        );
        assert_ne!(
            props,
            fresh.clone().property("k", "v"),
            "a repeated key is sent twice"
        );
    }

    #[test]
    fn the_encoded_bag_is_what_display_writes() {
        let bags = [
            MessageProperties::new(),
            MessageProperties::new().property("k", "v"),
            MessageProperties::new()
                .message_id("msg-1")
                .content_type("application/json")
                .content_encoding("utf-8")
                .property("alert", "true")
                .property("zone", "north/7")
                .property("ünï cödé", "a=b&c"),
        ];
        for bag in bags {
            assert_eq!(bag.encode(), bag.to_string());
        }
    }

    #[test]
    fn keys_are_consistent() {
        for (i, p) in SystemProperty::ALL.into_iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(PercentEncoded::new(p.key()).to_string(), p.encoded_key());
            assert_eq!(SystemProperty::from_key(p.key()), Some(p));
        }
        assert_eq!(SystemProperty::from_key("%24.mid"), None);
    }

    #[test]
    fn empty_writes_nothing() {
        let props = MessageProperties::new();
        assert!(props.is_empty());
        assert_eq!(props.to_string(), "");
    }

    #[test]
    fn system_properties_are_written_in_order_whatever_the_set_order() {
        let props = MessageProperties::new()
            .property("z", "1")
            .component("thermostat1")
            .creation_time("2024-01-01T00:00:00Z")
            .output_name("out")
            .user_id("u")
            .correlation_id("c")
            .system(SystemProperty::To, "/devices/d/messages/deviceBound");
        assert_eq!(
            props.to_string(),
            "%24.on=out&%24.cid=c&%24.uid=u&%24.ctime=2024-01-01T00%3A00%3A00Z&%24.sub=thermostat1\
             &%24.to=%2Fdevices%2Fd%2Fmessages%2FdeviceBound&z=1"
        );
    }

    #[test]
    fn set_replace_remove_get() {
        let mut props = MessageProperties::new().message_id("1");
        props.set(SystemProperty::MessageId, "2");
        assert_eq!(props.get(SystemProperty::MessageId), Some("2"));
        assert_eq!(
            props.remove(SystemProperty::MessageId).as_deref(),
            Some("2")
        );
        assert!(props.is_empty());
        props.push("k", "v");
        props.push("k", "w");
        assert!(!props.is_empty());
        assert_eq!(
            props.application_properties().collect::<Vec<_>>(),
            [("k", "v"), ("k", "w")]
        );
        assert_eq!(props.to_string(), "k=v&k=w");
    }

    #[test]
    fn application_keys_and_values_are_encoded() {
        let props = MessageProperties::new().property("a b&c", "x=y+z%");
        assert_eq!(props.to_string(), "a%20b%26c=x%3Dy%2Bz%25");
    }
}
