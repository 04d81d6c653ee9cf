//! Reading a received property bag (`k=v&k2&k3=`) without copying it.

use alloc::borrow::Cow;

use super::SystemProperty;
use crate::encoding::{DecodeError, percent_decode};
use crate::query::{Params, RawParam};

/// One property of a received bag, as it appears in the topic (still percent-encoded).
///
/// The hub sends some keys encoded (`%24.to`) and some not (`$.mid`), and values may carry
/// encoded `/`, `?` or `=`: use [`decoded_key`](Self::decoded_key) and
/// [`decoded_value`](Self::decoded_value) for the text the sender meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a parsed view of one wire format, field for field; the protocol vectors build it by literal"
)]
pub struct Property<'a> {
    /// The raw key.
    pub key: &'a str,
    /// The raw value: `None` for a bare `key` (a null value), `Some("")` for `key=`.
    pub value: Option<&'a str>,
}

impl<'a> Property<'a> {
    /// The key with `%XX` escapes decoded (`+` stays `+`); borrows when there is nothing to
    /// decode.
    pub fn decoded_key(&self) -> Result<Cow<'a, str>, DecodeError> {
        percent_decode(self.key)
    }

    /// The value with `%XX` escapes decoded, or `None` for a null value.
    pub fn decoded_value(&self) -> Result<Option<Cow<'a, str>>, DecodeError> {
        self.value.map(percent_decode).transpose()
    }

    /// True for a bare `key`, which the hub uses for a property whose value is null.
    #[must_use]
    pub const fn is_null(&self) -> bool {
        self.value.is_none()
    }

    /// True when the key decodes to `name`.
    fn has_name(&self, name: &str) -> bool {
        self.key == name || matches!(percent_decode(self.key), Ok(key) if key == name)
    }
}

impl<'a> From<RawParam<'a>> for Property<'a> {
    fn from(param: RawParam<'a>) -> Self {
        Self {
            key: param.key,
            value: param.value,
        }
    }
}

/// A received property bag, borrowed from the topic: the part after `messages/devicebound/`,
/// `messages/events/` or `inputs/{name}/`.
///
/// Nothing is copied or decoded until asked: iterate for the raw [`Property`] items, or look one
/// up by its decoded name with [`get`](Self::get), which finds `$.mid` whether the sender wrote
/// `$.mid` or `%24.mid`.
///
/// ```
/// use dps_core::hub::PropertyBag;
///
/// let bag = PropertyBag::new("%24.to=%2Fdevices%2Fd%2Fmessages%2FdeviceBound&$.mid=7&flag&empty=");
/// let to = bag.to().unwrap();
/// assert_eq!(to.value, Some("%2Fdevices%2Fd%2Fmessages%2FdeviceBound"));
/// assert_eq!(to.decoded_value().unwrap().as_deref(), Some("/devices/d/messages/deviceBound"));
/// assert_eq!(bag.message_id().unwrap().value, Some("7"));
/// assert!(bag.get("flag").unwrap().is_null());
/// assert_eq!(bag.value("empty").unwrap().as_deref(), Some(""));
/// assert_eq!(bag.iter().count(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PropertyBag<'a> {
    raw: &'a str,
}

impl<'a> PropertyBag<'a> {
    /// Reads the bag `raw` (`k=v&k2=v2`, no leading `?`).
    #[must_use]
    pub const fn new(raw: &'a str) -> Self {
        Self { raw }
    }

    /// The bag as received, for forwarding it unchanged.
    #[must_use]
    pub const fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when the bag has no properties.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The properties in the order received; empty items (`a=1&&b=2`) are skipped.
    #[must_use]
    pub const fn iter(&self) -> Properties<'a> {
        Properties {
            params: Params::new(self.raw),
        }
    }

    /// The first property whose decoded key is `name` (a plain, unencoded name such as `$.mid`).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Property<'a>> {
        self.iter().find(|p| p.has_name(name))
    }

    /// The decoded value of the property `name`: `Ok(None)` when it is absent or null.
    pub fn value(&self, name: &str) -> Result<Option<Cow<'a, str>>, DecodeError> {
        self.get(name).map_or(Ok(None), |p| p.decoded_value())
    }

    /// The system property `property`, in either its `$.` or its `%24.` form.
    #[must_use]
    pub fn system(&self, property: SystemProperty) -> Option<Property<'a>> {
        self.get(property.key())
    }

    /// `$.mid`, the message id.
    #[must_use]
    pub fn message_id(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::MessageId)
    }

    /// `$.cid`, the correlation id.
    #[must_use]
    pub fn correlation_id(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::CorrelationId)
    }

    /// `$.uid`, the user id.
    #[must_use]
    pub fn user_id(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::UserId)
    }

    /// `$.ct`, the content type.
    #[must_use]
    pub fn content_type(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::ContentType)
    }

    /// `$.ce`, the content encoding.
    #[must_use]
    pub fn content_encoding(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::ContentEncoding)
    }

    /// `$.ctime`, the creation time.
    #[must_use]
    pub fn creation_time(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::CreationTime)
    }

    /// `$.exp`, the expiry time.
    #[must_use]
    pub fn expiry(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::Expiry)
    }

    /// `$.on`, the output name of a module message.
    #[must_use]
    pub fn output_name(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::OutputName)
    }

    /// `$.sub`, the IoT Plug and Play component.
    #[must_use]
    pub fn component(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::Component)
    }

    /// `$.ifid`, the interface id.
    #[must_use]
    pub fn interface_id(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::InterfaceId)
    }

    /// `$.to`, the destination the hub sets on cloud-to-device messages.
    #[must_use]
    pub fn to(&self) -> Option<Property<'a>> {
        self.system(SystemProperty::To)
    }

    /// `iothub-ack`, the feedback the sender of a cloud-to-device message asked for (`none`,
    /// `positive`, `negative` or `full`).
    #[must_use]
    pub fn ack(&self) -> Option<Property<'a>> {
        self.get("iothub-ack")
    }
}

impl<'a> IntoIterator for PropertyBag<'a> {
    type Item = Property<'a>;
    type IntoIter = Properties<'a>;

    fn into_iter(self) -> Properties<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &PropertyBag<'a> {
    type Item = Property<'a>;
    type IntoIter = Properties<'a>;

    fn into_iter(self) -> Properties<'a> {
        self.iter()
    }
}

/// Iterator over the raw properties of a [`PropertyBag`].
#[derive(Debug, Clone)]
pub struct Properties<'a> {
    params: Params<'a>,
}

impl<'a> Iterator for Properties<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        self.params.next().map(Property::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn null_empty_and_plus() {
        let bag = PropertyBag::new("a&b=&c=x+y&d=%2B");
        let items: Vec<_> = bag.iter().collect();
        assert_eq!(
            items[0],
            Property {
                key: "a",
                value: None
            }
        );
        assert!(items[0].is_null());
        assert_eq!(items[1].decoded_value(), Ok(Some(Cow::Borrowed(""))));
        assert_eq!(bag.value("c").unwrap().as_deref(), Some("x+y"));
        assert_eq!(bag.value("d").unwrap().as_deref(), Some("+"));
        assert_eq!(bag.value("a"), Ok(None));
        assert_eq!(bag.value("missing"), Ok(None));
    }

    #[test]
    fn encoded_and_plain_system_keys() {
        for raw in [
            "$.mid=1&%24.cid=2&%24.ct=application%2Fjson",
            "%24.mid=1&$.cid=2&$.ct=application%2fjson",
        ] {
            let bag = PropertyBag::new(raw);
            assert_eq!(bag.message_id().unwrap().value, Some("1"));
            assert_eq!(bag.correlation_id().unwrap().value, Some("2"));
            assert_eq!(
                bag.content_type()
                    .unwrap()
                    .decoded_value()
                    .unwrap()
                    .as_deref(),
                Some("application/json")
            );
            assert!(bag.user_id().is_none());
        }
    }

    #[test]
    fn every_typed_accessor() {
        let bag = PropertyBag::new(
            "$.uid=u&$.ce=e&$.ctime=t&$.exp=x&$.on=o&$.sub=s&$.ifid=i&$.to=d&iothub-ack=full",
        );
        fn value(p: Option<Property<'_>>) -> Option<&str> {
            p.and_then(|p| p.value)
        }
        assert_eq!(value(bag.user_id()), Some("u"));
        assert_eq!(value(bag.content_encoding()), Some("e"));
        assert_eq!(value(bag.creation_time()), Some("t"));
        assert_eq!(value(bag.expiry()), Some("x"));
        assert_eq!(value(bag.output_name()), Some("o"));
        assert_eq!(value(bag.component()), Some("s"));
        assert_eq!(value(bag.interface_id()), Some("i"));
        assert_eq!(value(bag.to()), Some("d"));
        assert_eq!(value(bag.ack()), Some("full"));
    }

    #[test]
    fn invalid_escapes_are_errors_only_when_decoded() {
        let bag = PropertyBag::new("k%zz=1&k=%2");
        assert_eq!(bag.iter().count(), 2);
        assert!(bag.iter().next().unwrap().decoded_key().is_err());
        assert!(bag.get("k").unwrap().decoded_value().is_err());
        assert!(bag.value("k").is_err());
    }

    #[test]
    fn empty_bags() {
        assert!(PropertyBag::new("").is_empty());
        assert!(PropertyBag::new("&&").is_empty());
        assert!(PropertyBag::default().is_empty());
        assert!(!PropertyBag::new("a").is_empty());
        assert_eq!(PropertyBag::new("a=1").as_str(), "a=1");
        assert_eq!((&PropertyBag::new("a=1&b")).into_iter().count(), 2);
    }
}
