//! Device twin: GET the whole twin, PATCH reported properties, receive desired-property patches.
//!
//! Desired-property patches are only sent while the device is connected, so a device should GET
//! the twin again after every reconnect and reconcile.

use alloc::borrow::Cow;
use core::fmt;

use super::topic::{
    RID, TopicError, VERSION, bag_after, optional_param, required_param, status_and_params,
    take_segment,
};
use crate::encoding::{DecodeError, PercentEncoded, percent_decode};

/// The filter for twin responses (GET results, reported-patch acknowledgements and errors).
pub const TWIN_RESPONSE_SUBSCRIPTION: &str = "$iothub/twin/res/#";

/// The filter for desired-property patches.
pub const TWIN_DESIRED_SUBSCRIPTION: &str = "$iothub/twin/PATCH/properties/desired/#";

/// The topic to publish an empty payload to for the whole twin: `$iothub/twin/GET/?$rid={rid}`.
///
/// `rid` is the device's own correlation id (any text; it is percent-encoded). The response
/// arrives as a [`TwinMessage::GetResponse`] carrying the same id.
///
/// ```
/// use dps_core::hub::TwinGetTopic;
/// assert_eq!(TwinGetTopic::new("42").to_string(), "$iothub/twin/GET/?$rid=42");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinGetTopic<'a> {
    rid: &'a str,
}

impl<'a> TwinGetTopic<'a> {
    /// The GET topic with request id `rid`.
    #[must_use]
    pub const fn new(rid: &'a str) -> Self {
        Self { rid }
    }
}

impl fmt::Display for TwinGetTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$iothub/twin/GET/?$rid={}",
            PercentEncoded::new(self.rid)
        )
    }
}

/// The topic to publish a reported-properties patch (a JSON object; `null` members delete) to:
/// `$iothub/twin/PATCH/properties/reported/?$rid={rid}`.
///
/// The hub acknowledges with [`TwinMessage::ReportedAck`] and the new reported version.
///
/// ```
/// use dps_core::hub::TwinReportedTopic;
/// assert_eq!(
///     TwinReportedTopic::new("43").to_string(),
///     "$iothub/twin/PATCH/properties/reported/?$rid=43"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinReportedTopic<'a> {
    rid: &'a str,
}

impl<'a> TwinReportedTopic<'a> {
    /// The reported-patch topic with request id `rid` (percent-encoded when written).
    #[must_use]
    pub const fn new(rid: &'a str) -> Self {
        Self { rid }
    }
}

impl fmt::Display for TwinReportedTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$iothub/twin/PATCH/properties/reported/?$rid={}",
            PercentEncoded::new(self.rid)
        )
    }
}

/// A twin topic received by a device.
///
/// Request ids and versions are the raw topic text; versions are decimal numbers in practice
/// (parse them with `str::parse::<u64>()`), but the twin body's `$version` is authoritative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TwinMessage<'a> {
    /// The answer to a GET (status 200, or any status below 400 other than 204): the body is the
    /// twin, `{"desired":{..},"reported":{..}}`.
    GetResponse {
        /// The response status.
        status: u16,
        /// The request id of the GET.
        rid: &'a str,
        /// `$version`, when the hub sent one.
        version: Option<&'a str>,
    },
    /// The acknowledgement of a reported-properties patch (status 204).
    ReportedAck {
        /// The request id of the patch.
        rid: &'a str,
        /// The new reported-properties version, when the hub sent one.
        version: Option<&'a str>,
    },
    /// A GET or PATCH failed (status 400 or above): 400 for a bad patch, 429 when throttled (retry
    /// later), 5xx for a service error (retry with back-off).
    RequestError {
        /// The error status.
        status: u16,
        /// The request id of the failed request.
        rid: &'a str,
    },
    /// A desired-properties patch pushed by the service; the body is the patch with `$version`.
    DesiredPatch {
        /// `$version` from the topic, when present.
        version: Option<&'a str>,
    },
}

impl<'a> TwinMessage<'a> {
    /// The status: as received for responses, 200 for a desired patch (as the Embedded C SDK
    /// reports it).
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            Self::GetResponse { status, .. } | Self::RequestError { status, .. } => *status,
            Self::ReportedAck { .. } => 204,
            Self::DesiredPatch { .. } => 200,
        }
    }

    /// The raw request id of a response; `None` for a desired patch.
    #[must_use]
    pub const fn rid(&self) -> Option<&'a str> {
        match self {
            Self::GetResponse { rid, .. }
            | Self::ReportedAck { rid, .. }
            | Self::RequestError { rid, .. } => Some(rid),
            Self::DesiredPatch { .. } => None,
        }
    }

    /// The request id percent-decoded, to compare with the id given to [`TwinGetTopic`] or
    /// [`TwinReportedTopic`].
    pub fn decoded_rid(&self) -> Result<Option<Cow<'a, str>>, DecodeError> {
        self.rid().map(percent_decode).transpose()
    }

    /// The raw `$version`, if the topic carries one.
    #[must_use]
    pub const fn version(&self) -> Option<&'a str> {
        match self {
            Self::GetResponse { version, .. }
            | Self::ReportedAck { version, .. }
            | Self::DesiredPatch { version } => *version,
            Self::RequestError { .. } => None,
        }
    }
}

/// The text after `$iothub/twin/`, also accepting the `devices/{id}/$iothub/twin/` form.
fn twin_rest(topic: &str) -> Option<&str> {
    const PREFIX: &str = "$iothub/twin/";
    if let Some(rest) = topic.strip_prefix(PREFIX) {
        return Some(rest);
    }
    let (_device_id, rest) = take_segment(topic.strip_prefix("devices/")?)?;
    rest.strip_prefix(PREFIX)
}

/// Parses a twin topic received by a device.
///
/// Responses are classified by status: 400 or above is [`TwinMessage::RequestError`], 204 is
/// [`TwinMessage::ReportedAck`], anything else is [`TwinMessage::GetResponse`]. A response
/// without its `/?$rid=` part is [`TopicError::UnexpectedEnd`]; a non-numeric status is
/// [`TopicError::InvalidStatus`]; a topic of another feature is [`TopicError::NoMatch`].
///
/// ```
/// use dps_core::hub::{TopicError, TwinMessage, parse_twin_topic};
///
/// assert_eq!(
///     parse_twin_topic("$iothub/twin/res/204/?$rid=43&$version=7"),
///     Ok(TwinMessage::ReportedAck { rid: "43", version: Some("7") })
/// );
/// assert_eq!(
///     parse_twin_topic("$iothub/twin/PATCH/properties/desired/?$version=8"),
///     Ok(TwinMessage::DesiredPatch { version: Some("8") })
/// );
/// assert_eq!(parse_twin_topic("$iothub/twin/res/200"), Err(TopicError::UnexpectedEnd));
/// assert_eq!(parse_twin_topic("$iothub/methods/POST/m/?$rid=1"), Err(TopicError::NoMatch));
/// ```
pub fn parse_twin_topic(topic: &str) -> Result<TwinMessage<'_>, TopicError> {
    let rest = twin_rest(topic).ok_or(TopicError::NoMatch)?;
    if let Some(response) = rest.strip_prefix("res/") {
        let (status, params) = status_and_params(response)?;
        let rid = required_param(params, RID)?;
        let version = optional_param(params, VERSION);
        return Ok(match status {
            400.. => TwinMessage::RequestError { status, rid },
            204 => TwinMessage::ReportedAck { rid, version },
            _ => TwinMessage::GetResponse {
                status,
                rid,
                version,
            },
        });
    }
    if rest == "res" {
        return Err(TopicError::UnexpectedEnd);
    }
    let tail = bag_after(rest, "PATCH/properties/desired").ok_or(TopicError::NoMatch)?;
    let version = match tail.strip_prefix('?') {
        Some(params) => optional_param(params, VERSION),
        None if tail.is_empty() => None,
        None => return Err(TopicError::Malformed),
    };
    Ok(TwinMessage::DesiredPatch { version })
}

/// The topic of a twin response, for an emulator of the hub to publish:
/// `$iothub/twin/res/{status}/?$rid={rid}[&$version={version}]`.
///
/// `rid` is echoed verbatim: pass the raw id from [`TwinRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinResponseTopic<'a> {
    status: u16,
    rid: &'a str,
    version: Option<u64>,
}

impl<'a> TwinResponseTopic<'a> {
    /// A response with `status` to the request `rid` (raw, as received).
    #[must_use]
    pub const fn new(status: u16, rid: &'a str) -> Self {
        Self {
            status,
            rid,
            version: None,
        }
    }

    /// Adds `$version` (the new reported version, on a 204).
    #[must_use]
    pub const fn version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl fmt::Display for TwinResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "$iothub/twin/res/{}/?$rid={}", self.status, self.rid)?;
        if let Some(version) = self.version {
            write!(f, "&$version={version}")?;
        }
        Ok(())
    }
}

/// The topic of a desired-properties patch, for an emulator of the hub to publish:
/// `$iothub/twin/PATCH/properties/desired/?$version={version}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinDesiredTopic {
    version: u64,
}

impl TwinDesiredTopic {
    /// The patch topic for desired version `version`.
    #[must_use]
    pub const fn new(version: u64) -> Self {
        Self { version }
    }
}

impl fmt::Display for TwinDesiredTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$iothub/twin/PATCH/properties/desired/?$version={}",
            self.version
        )
    }
}

/// A twin request published by a device, as the hub (or an emulator) receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TwinRequest<'a> {
    /// A GET of the whole twin.
    Get {
        /// The raw request id, to echo in the response.
        rid: &'a str,
    },
    /// A reported-properties patch (the body is the JSON patch).
    ReportedPatch {
        /// The raw request id, to echo in the response.
        rid: &'a str,
    },
}

impl<'a> TwinRequest<'a> {
    /// The raw request id.
    #[must_use]
    pub const fn rid(&self) -> &'a str {
        match self {
            Self::Get { rid } | Self::ReportedPatch { rid } => rid,
        }
    }
}

/// Parses a twin request topic published by a device (the service side of [`TwinGetTopic`] and
/// [`TwinReportedTopic`]). A request without `$rid` is [`TopicError::UnexpectedEnd`] or
/// [`TopicError::MissingParameter`].
pub fn parse_twin_request(topic: &str) -> Result<TwinRequest<'_>, TopicError> {
    let rest = topic
        .strip_prefix("$iothub/twin/")
        .ok_or(TopicError::NoMatch)?;
    let (tail, get) = if let Some(tail) = bag_after(rest, "GET") {
        (tail, true)
    } else if let Some(tail) = bag_after(rest, "PATCH/properties/reported") {
        (tail, false)
    } else {
        return Err(TopicError::NoMatch);
    };
    let params = match tail.strip_prefix('?') {
        Some(params) => params,
        None if tail.is_empty() => return Err(TopicError::UnexpectedEnd),
        None => return Err(TopicError::Malformed),
    };
    let rid = required_param(params, RID)?;
    Ok(if get {
        TwinRequest::Get { rid }
    } else {
        TwinRequest::ReportedPatch { rid }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn request_ids_are_encoded() {
        assert_eq!(
            TwinGetTopic::new("a b/c").to_string(),
            "$iothub/twin/GET/?$rid=a%20b%2Fc"
        );
        let msg = parse_twin_topic("$iothub/twin/res/200/?$rid=a%20b%2Fc").unwrap();
        assert_eq!(msg.decoded_rid().unwrap().as_deref(), Some("a b/c"));
    }

    #[test]
    fn accessors() {
        let get = TwinMessage::GetResponse {
            status: 202,
            rid: "1",
            version: Some("3"),
        };
        assert_eq!(
            (get.status(), get.rid(), get.version()),
            (202, Some("1"), Some("3"))
        );
        let ack = TwinMessage::ReportedAck {
            rid: "2",
            version: None,
        };
        assert_eq!(
            (ack.status(), ack.rid(), ack.version()),
            (204, Some("2"), None)
        );
        let err = TwinMessage::RequestError {
            status: 429,
            rid: "3",
        };
        assert_eq!(
            (err.status(), err.rid(), err.version()),
            (429, Some("3"), None)
        );
        let desired = TwinMessage::DesiredPatch { version: Some("4") };
        assert_eq!(
            (desired.status(), desired.rid(), desired.version()),
            (200, None, Some("4"))
        );
        assert_eq!(desired.decoded_rid(), Ok(None));
    }

    #[test]
    fn parse_edge_cases() {
        assert_eq!(
            parse_twin_topic("$iothub/twin/res/202/?$rid=1"),
            Ok(TwinMessage::GetResponse {
                status: 202,
                rid: "1",
                version: None
            })
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/res"),
            Err(TopicError::UnexpectedEnd)
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/res/"),
            Err(TopicError::UnexpectedEnd)
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/res/2x/?$rid=1"),
            Err(TopicError::InvalidStatus)
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/res/99999/?$rid=1"),
            Err(TopicError::InvalidStatus)
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/res/200/?$version=1"),
            Err(TopicError::MissingParameter { name: "$rid" })
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/res/200/x"),
            Err(TopicError::Malformed)
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/PATCH/properties/desired"),
            Ok(TwinMessage::DesiredPatch { version: None })
        );
        assert_eq!(
            parse_twin_topic("$iothub/twin/PATCH/properties/desired/x"),
            Err(TopicError::Malformed)
        );
        for other in [
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            "$iothub/twin/GET/?$rid=1",
            "devices//$iothub/twin/res/200/?$rid=1",
            "devices/d/messages/devicebound/",
            "x$iothub/twin/res/200/?$rid=1",
        ] {
            assert_eq!(parse_twin_topic(other), Err(TopicError::NoMatch), "{other}");
        }
    }

    #[test]
    fn service_side() {
        assert_eq!(
            TwinResponseTopic::new(200, "1").to_string(),
            "$iothub/twin/res/200/?$rid=1"
        );
        assert_eq!(
            TwinResponseTopic::new(204, "1").version(5).to_string(),
            "$iothub/twin/res/204/?$rid=1&$version=5"
        );
        assert_eq!(
            TwinDesiredTopic::new(9).to_string(),
            "$iothub/twin/PATCH/properties/desired/?$version=9"
        );
        assert_eq!(
            parse_twin_request("$iothub/twin/GET/?$rid=1"),
            Ok(TwinRequest::Get { rid: "1" })
        );
        let patch = parse_twin_request("$iothub/twin/PATCH/properties/reported/?$rid=2").unwrap();
        assert_eq!(patch, TwinRequest::ReportedPatch { rid: "2" });
        assert_eq!(patch.rid(), "2");
        assert_eq!(
            parse_twin_request("$iothub/twin/GET"),
            Err(TopicError::UnexpectedEnd)
        );
        assert_eq!(
            parse_twin_request("$iothub/twin/GET/"),
            Err(TopicError::UnexpectedEnd)
        );
        assert_eq!(
            parse_twin_request("$iothub/twin/GET/x"),
            Err(TopicError::Malformed)
        );
        assert_eq!(
            parse_twin_request("$iothub/twin/GET/?"),
            Err(TopicError::MissingParameter { name: "$rid" })
        );
        assert_eq!(
            parse_twin_request("$iothub/twin/res/200/?$rid=1"),
            Err(TopicError::NoMatch)
        );
    }
}
