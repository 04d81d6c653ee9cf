//! DPS topics: the register and operation-status publishes, the response subscription, and the
//! response topic parser.
//!
//! Topic builders are [`Display`](core::fmt::Display) types, so they can be written into any
//! buffer; `.to_string()` gives an owned topic.

use core::fmt;

use crate::encoding::PercentEncoded;
use crate::query::Params;

/// The one filter DPS accepts: every response arrives below it.
pub const SUBSCRIBE_TOPIC: &str = "$dps/registrations/res/#";

const RESPONSE_PREFIX: &str = "$dps/registrations/res/";

/// `$dps/registrations/PUT/iotdps-register/?$rid={rid}`: publish the registration request here.
///
/// ```
/// use dps_core::dps::topic::RegisterTopic;
/// assert_eq!(
///     RegisterTopic::new("1").to_string(),
///     "$dps/registrations/PUT/iotdps-register/?$rid=1"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterTopic<'a> {
    rid: &'a str,
}

impl<'a> RegisterTopic<'a> {
    /// The register topic for request id `rid` (percent-encoded when written).
    #[must_use]
    pub const fn new(rid: &'a str) -> Self {
        Self { rid }
    }
}

impl fmt::Display for RegisterTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$dps/registrations/PUT/iotdps-register/?$rid={}",
            PercentEncoded::new(self.rid)
        )
    }
}

/// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operationId}`:
/// publish (with an empty payload) to poll a registration operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryTopic<'a> {
    rid: &'a str,
    operation_id: &'a str,
}

impl<'a> QueryTopic<'a> {
    /// The operation-status topic for request id `rid` and the operation being polled.
    #[must_use]
    pub const fn new(rid: &'a str, operation_id: &'a str) -> Self {
        Self { rid, operation_id }
    }
}

impl fmt::Display for QueryTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={}&operationId={}",
            PercentEncoded::new(self.rid),
            PercentEncoded::new(self.operation_id)
        )
    }
}

/// Why a topic is not a well-formed DPS response topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic is not below `$dps/registrations/res/`; it is not for the DPS client.
    #[error("not a DPS response topic")]
    NoMatch,
    /// The status segment is not a 3-digit decimal number.
    #[error("invalid status in DPS response topic")]
    InvalidStatus,
    /// The topic has no `?$rid=` parameter, so it cannot be matched to a request.
    #[error("DPS response topic carries no $rid")]
    MissingRid,
    /// A parameter appears twice; which one to trust is ambiguous.
    #[error("duplicate parameter in DPS response topic")]
    DuplicateParameter,
    /// `retry-after` is present but not a whole number of seconds.
    #[error("invalid retry-after in DPS response topic")]
    InvalidRetryAfter,
}

/// A parsed `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]` topic.
///
/// Parameters may come in any order. Borrowed from the topic; nothing is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a parsed view of one wire format, field for field; the protocol vectors build it by literal"
)]
pub struct ResponseTopic<'a> {
    /// The HTTP-like status of the response.
    pub status: u16,
    /// The request id, as written in the topic (percent-encoded form).
    pub rid: &'a str,
    /// Seconds the service asks the client to wait before the next request, when given.
    pub retry_after: Option<u32>,
}

impl<'a> ResponseTopic<'a> {
    /// Parses a response topic.
    ///
    /// ```
    /// use dps_core::dps::topic::ResponseTopic;
    /// let t = ResponseTopic::parse("$dps/registrations/res/202/?retry-after=3&$rid=7").unwrap();
    /// assert_eq!((t.status, t.rid, t.retry_after), (202, "7", Some(3)));
    /// ```
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let rest = topic
            .strip_prefix(RESPONSE_PREFIX)
            .ok_or(TopicError::NoMatch)?;
        let (status, query) = match rest.split_once('/') {
            Some((status, tail)) => (status, tail.strip_prefix('?')),
            None => (rest, None),
        };
        let status = parse_status(status)?;
        let query = query.ok_or(TopicError::MissingRid)?;

        let mut rid = None;
        let mut retry_after = None;
        for param in Params::new(query) {
            if is_key(param.key, "$rid") {
                if rid.replace(param.value.unwrap_or("")).is_some() {
                    return Err(TopicError::DuplicateParameter);
                }
            } else if is_key(param.key, "retry-after") {
                let seconds = param
                    .value
                    .and_then(parse_decimal_u32)
                    .ok_or(TopicError::InvalidRetryAfter)?;
                if retry_after.replace(seconds).is_some() {
                    return Err(TopicError::DuplicateParameter);
                }
            }
        }
        Ok(Self {
            status,
            rid: rid.ok_or(TopicError::MissingRid)?,
            retry_after,
        })
    }
}

/// Writes the topic a service sends: `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`.
/// The rid is written as stored (it is the encoded form).
impl fmt::Display for ResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{RESPONSE_PREFIX}{:03}/?$rid={}", self.status, self.rid)?;
        match self.retry_after {
            Some(seconds) => write!(f, "&retry-after={seconds}"),
            None => Ok(()),
        }
    }
}

/// Keys compare case-insensitively (C# reads `Retry-After` too) and `$` may arrive as `%24`.
fn is_key(raw: &str, expected: &str) -> bool {
    if raw.eq_ignore_ascii_case(expected) {
        return true;
    }
    match (raw.strip_prefix("%24"), expected.strip_prefix('$')) {
        (Some(raw), Some(expected)) => raw.eq_ignore_ascii_case(expected),
        _ => false,
    }
}

fn parse_status(text: &str) -> Result<u16, TopicError> {
    if text.len() != 3 {
        return Err(TopicError::InvalidStatus);
    }
    parse_decimal_u32(text)
        .and_then(|v| u16::try_from(v).ok())
        .ok_or(TopicError::InvalidStatus)
}

/// Digits only: `str::parse` would also accept a leading `+`.
fn parse_decimal_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn topics_are_percent_encoded() {
        assert_eq!(
            QueryTopic::new("a/b", "op&x").to_string(),
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=a%2Fb&operationId=op%26x"
        );
    }

    #[test]
    fn parse_errors() {
        use TopicError::*;
        let cases = [
            ("$dps/registrations/unknown", NoMatch),
            ("$iothub/twin/res/200/?$rid=1", NoMatch),
            ("$dps/registrations/res/202", MissingRid),
            ("$dps/registrations/res/202/?retry-after=3", MissingRid),
            ("$dps/registrations/res/2x2/?$rid=1", InvalidStatus),
            ("$dps/registrations/res/+20/?$rid=1", InvalidStatus),
            ("$dps/registrations/res/2000/?$rid=1", InvalidStatus),
            ("$dps/registrations/res//?$rid=1", InvalidStatus),
            (
                "$dps/registrations/res/202/?$rid=1&$rid=2",
                DuplicateParameter,
            ),
            (
                "$dps/registrations/res/202/?$rid=1&retry-after=x",
                InvalidRetryAfter,
            ),
            (
                "$dps/registrations/res/202/?$rid=1&retry-after=-1",
                InvalidRetryAfter,
            ),
            (
                "$dps/registrations/res/202/?$rid=1&retry-after=99999999999",
                InvalidRetryAfter,
            ),
        ];
        for (topic, err) in cases {
            assert_eq!(ResponseTopic::parse(topic), Err(err), "{topic}");
        }
    }

    #[test]
    fn lenient_keys() {
        let t = ResponseTopic::parse("$dps/registrations/res/429/?%24rid=5&Retry-After=10&x=y")
            .unwrap();
        assert_eq!((t.status, t.rid, t.retry_after), (429, "5", Some(10)));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ResponseTopic::parse(&s);
            let _ = ResponseTopic::parse(&format!("{RESPONSE_PREFIX}{s}"));
        }

        #[test]
        fn response_topic_round_trips(status in 100u16..1000, rid in "[0-9A-Za-z._~-]{1,20}", retry in proptest::option::of(0u32..100_000), retry_first: bool) {
            let topic = match (retry, retry_first) {
                (Some(r), true) => format!("{RESPONSE_PREFIX}{status}/?retry-after={r}&$rid={rid}"),
                (Some(r), false) => format!("{RESPONSE_PREFIX}{status}/?$rid={rid}&retry-after={r}"),
                (None, _) => format!("{RESPONSE_PREFIX}{status}/?$rid={rid}"),
            };
            let parsed = ResponseTopic::parse(&topic).unwrap();
            proptest::prop_assert_eq!(parsed, ResponseTopic { status, rid: &rid, retry_after: retry });
            let written = parsed.to_string();
            proptest::prop_assert_eq!(ResponseTopic::parse(&written).unwrap(), parsed);
        }

        #[test]
        fn built_topics_carry_the_rid(rid in ".{0,30}", op in ".{0,60}") {
            let register = RegisterTopic::new(&rid).to_string();
            let query = QueryTopic::new(&rid, &op).to_string();
            // Whatever the ids contain, the built topic never gains an extra parameter or level.
            let q = register.split_once('?').unwrap().1;
            proptest::prop_assert_eq!(Params::new(q).count(), 1);
            let q = query.split_once('?').unwrap().1;
            proptest::prop_assert_eq!(Params::new(q).count(), 2);
            proptest::prop_assert_eq!(query.matches('/').count(), 4);
        }
    }
}
