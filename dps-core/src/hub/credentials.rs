//! Certificate renewal through IoT Hub (preview, api-version `2025-08-01-preview`).
//!
//! The device publishes a certificate signing request to
//! `$iothub/credentials/POST/issueCertificate/?$rid={rid}` and listens on
//! `$iothub/credentials/res/#`: a `202` ([`CertificateAccepted`]) says the request is being
//! processed, then a `200` brings the issued chain ([`IssuedCertificates`]); a status of 400 or
//! above carries a [`CredentialErrorBody`]. The device must connect with
//! [`CREDENTIALS_API_VERSION`].

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use super::topic::{RID, TopicError, required_param, status_and_params};
use crate::encoding::{DecodeError, PercentEncoded, percent_decode};

/// The api-version that enables certificate renewal (set it with
/// [`HubConnectInfo::api_version`](super::HubConnectInfo::api_version)).
pub const CREDENTIALS_API_VERSION: &str = "2025-08-01-preview";

/// The filter for certificate renewal responses.
pub const CREDENTIALS_RESPONSE_SUBSCRIPTION: &str = "$iothub/credentials/res/#";

/// The `replace` value that replaces whatever certificate request is in progress.
pub const REPLACE_ANY: &str = "*";

/// The topic to publish an [`IssueCertificateRequest`] to:
/// `$iothub/credentials/POST/issueCertificate/?$rid={rid}` (the id is percent-encoded).
///
/// ```
/// use dps_core::hub::IssueCertificateTopic;
/// assert_eq!(
///     IssueCertificateTopic::new("req-001").to_string(),
///     "$iothub/credentials/POST/issueCertificate/?$rid=req-001"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueCertificateTopic<'a> {
    rid: &'a str,
}

impl<'a> IssueCertificateTopic<'a> {
    /// The request topic with request id `rid`.
    #[must_use]
    pub const fn new(rid: &'a str) -> Self {
        Self { rid }
    }
}

impl fmt::Display for IssueCertificateTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$iothub/credentials/POST/issueCertificate/?$rid={}",
            PercentEncoded::new(self.rid)
        )
    }
}

/// Parses an issue-certificate request topic published by a device (the service side of
/// [`IssueCertificateTopic`]) and returns the raw request id.
pub fn parse_issue_certificate_topic(topic: &str) -> Result<&str, TopicError> {
    let rest = topic
        .strip_prefix("$iothub/credentials/POST/issueCertificate")
        .ok_or(TopicError::NoMatch)?;
    let params = match rest {
        "" | "/" => return Err(TopicError::UnexpectedEnd),
        _ => rest.strip_prefix("/?").ok_or(TopicError::NoMatch)?,
    };
    required_param(params, RID)
}

/// The body of an issue-certificate request: `{"id":..,"csr":..[,"replace":..]}`.
///
/// Write it with its [`Display`](fmt::Display) implementation (compact JSON, byte-identical to
/// `serde_json::to_string`), or serialize it with serde. An emulator can deserialize it; strings
/// borrow from the body unless they contain escapes.
///
/// ```
/// use dps_core::hub::IssueCertificateRequest;
///
/// let body = IssueCertificateRequest::new("my_device", "MIICYTCCAUkCAQAwHDEaMBgGA1wR").replace_any();
/// assert_eq!(
///     body.to_string(),
///     r#"{"id":"my_device","csr":"MIICYTCCAUkCAQAwHDEaMBgGA1wR","replace":"*"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueCertificateRequest<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    csr: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    replace: Option<Cow<'a, str>>,
}

impl<'a> IssueCertificateRequest<'a> {
    /// A request for a certificate for device `device_id` from `csr`, the base64 of a DER
    /// PKCS#10 certificate signing request.
    #[must_use]
    pub const fn new(device_id: &'a str, csr: &'a str) -> Self {
        Self {
            id: Cow::Borrowed(device_id),
            csr: Cow::Borrowed(csr),
            replace: None,
        }
    }

    /// Replaces the in-progress request whose request id is `rid` (or any one, with
    /// [`REPLACE_ANY`]) instead of failing with "already active".
    #[must_use]
    pub fn replace(mut self, rid: &'a str) -> Self {
        self.replace = Some(Cow::Borrowed(rid));
        self
    }

    /// Replaces any in-progress request (`"replace":"*"`).
    #[must_use]
    pub fn replace_any(self) -> Self {
        self.replace(REPLACE_ANY)
    }

    /// The device id.
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.id
    }

    /// The base64 certificate signing request.
    #[must_use]
    pub fn csr(&self) -> &str {
        &self.csr
    }

    /// The request to replace, if any.
    #[must_use]
    pub fn replaces(&self) -> Option<&str> {
        self.replace.as_deref()
    }
}

impl fmt::Display for IssueCertificateRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{\"id\":")?;
        write_json_string(f, &self.id)?;
        f.write_str(",\"csr\":")?;
        write_json_string(f, &self.csr)?;
        if let Some(replace) = &self.replace {
            f.write_str(",\"replace\":")?;
            write_json_string(f, replace)?;
        }
        f.write_str("}")
    }
}

/// Writes `text` as a JSON string, escaping exactly as `serde_json` does.
fn write_json_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let short = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if u32::from(c) < 0x20 => "",
            _ => continue,
        };
        f.write_str(text.get(start..i).ok_or(fmt::Error)?)?;
        if short.is_empty() {
            write!(f, "\\u{:04x}", u32::from(c))?;
        } else {
            f.write_str(short)?;
        }
        start = i + c.len_utf8();
    }
    f.write_str(text.get(start..).ok_or(fmt::Error)?)?;
    f.write_str("\"")
}

/// What a certificate renewal response status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialResponseKind {
    /// `202`: the request is being processed; the body is [`CertificateAccepted`]. Wait for the
    /// `200`.
    Accepted,
    /// `200`: the certificate was issued; the body is [`IssuedCertificates`].
    Completed,
    /// 400 or above: the body is a [`CredentialErrorBody`]. 429 and 5xx are worth retrying after
    /// its `retryAfter`.
    Error,
    /// Any other status, which the preview does not define.
    Other,
}

/// A certificate renewal response topic received by a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a parsed view of one wire format, field for field; the protocol vectors build it by literal"
)]
pub struct CredentialResponse<'a> {
    /// The response status.
    pub status: u16,
    /// The raw request id.
    pub rid: &'a str,
}

impl<'a> CredentialResponse<'a> {
    /// What the status means.
    #[must_use]
    pub const fn kind(&self) -> CredentialResponseKind {
        match self.status {
            202 => CredentialResponseKind::Accepted,
            200 => CredentialResponseKind::Completed,
            400.. => CredentialResponseKind::Error,
            _ => CredentialResponseKind::Other,
        }
    }

    /// The request id percent-decoded, to compare with the id given to
    /// [`IssueCertificateTopic`].
    pub fn decoded_rid(&self) -> Result<Cow<'a, str>, DecodeError> {
        percent_decode(self.rid)
    }
}

/// Parses a certificate renewal response topic, `$iothub/credentials/res/{status}/?$rid={rid}`.
///
/// A response without its `/?$rid=` part is [`TopicError::UnexpectedEnd`]; a topic of another
/// feature is [`TopicError::NoMatch`].
///
/// ```
/// use dps_core::hub::{CredentialResponseKind, parse_credentials_topic};
///
/// let res = parse_credentials_topic("$iothub/credentials/res/202/?$rid=req-001").unwrap();
/// assert_eq!((res.kind(), res.rid), (CredentialResponseKind::Accepted, "req-001"));
/// ```
pub fn parse_credentials_topic(topic: &str) -> Result<CredentialResponse<'_>, TopicError> {
    let rest = topic
        .strip_prefix("$iothub/credentials/res/")
        .ok_or(TopicError::NoMatch)?;
    let (status, params) = status_and_params(rest)?;
    let rid = required_param(params, RID)?;
    Ok(CredentialResponse { status, rid })
}

/// The topic of a certificate renewal response, for an emulator of the hub to publish:
/// `$iothub/credentials/res/{status}/?$rid={rid}`, with `rid` echoed verbatim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialResponseTopic<'a> {
    status: u16,
    rid: &'a str,
}

impl<'a> CredentialResponseTopic<'a> {
    /// A response with `status` to the request `rid` (raw, as received).
    #[must_use]
    pub const fn new(status: u16, rid: &'a str) -> Self {
        Self { status, rid }
    }
}

impl fmt::Display for CredentialResponseTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$iothub/credentials/res/{}/?$rid={}",
            self.status, self.rid
        )
    }
}

/// The body of a `202` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CertificateAccepted {
    /// The service's id for the operation, to quote in support requests.
    #[serde(default)]
    pub correlation_id: String,
    /// When the operation expires (ISO 8601); no `200` will come after it.
    #[serde(default)]
    pub operation_expires: String,
}

/// The body of a `200` response: the issued certificates, each base64 DER, in the order the
/// service sent them (do not assume leaf first).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
#[non_exhaustive]
pub struct IssuedCertificates {
    /// The base64 DER certificates.
    pub certificates: Vec<String>,
}

/// The body of an error response (status 400 or above).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CredentialErrorBody {
    /// The service error code, for example `400040` (bad CSR), `409005` (a request is already
    /// active: retry with `replace`) or `429002` (throttled).
    #[serde(default)]
    pub error_code: u32,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// The service's tracking id, to quote in support requests.
    #[serde(default)]
    pub tracking_id: String,
    /// When the error happened (ISO 8601).
    #[serde(default)]
    pub timestamp_utc: String,
    /// Seconds to wait before retrying, when the service says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// Details of a failed certificate operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<CredentialErrorInfo>,
}

impl CredentialErrorBody {
    /// [`retry_after`](Self::retry_after) as a duration.
    #[must_use]
    pub fn retry_after_duration(&self) -> Option<Duration> {
        self.retry_after
            .map(|secs| Duration::from_secs(secs.into()))
    }
}

/// The `info` member of a [`CredentialErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CredentialErrorInfo {
    /// The id of the operation that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// A machine-readable reason, for example `FailedToDecodeCsr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_error: Option<String>,
    /// A human-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_message: Option<String>,
    /// The request id of the request already in progress (on a 409), to pass to
    /// [`IssueCertificateRequest::replace`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the operation in progress expires (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_expires: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn json_escapes_match_serde_json() {
        let request =
            IssueCertificateRequest::new("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é", "x")
                .replace("r");
        assert_eq!(
            request.to_string(),
            serde_json::to_string(&request).unwrap()
        );
        assert_eq!(
            request.to_string(),
            "{\"id\":\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é\",\"csr\":\"x\",\"replace\":\"r\"}"
        );
    }

    #[test]
    fn request_accessors_and_deserialize() {
        let body = r#"{"id":"d\/1","csr":"abc","replace":"*"}"#;
        let request: IssueCertificateRequest<'_> = serde_json::from_str(body).unwrap();
        assert_eq!(request.device_id(), "d/1");
        assert_eq!(request.csr(), "abc");
        assert_eq!(request.replaces(), Some("*"));
        assert!(matches!(request.csr, Cow::Borrowed(_)));
        assert_eq!(IssueCertificateRequest::new("d", "c").replaces(), None);
    }

    #[test]
    fn kinds() {
        let kind = |status| CredentialResponse { status, rid: "" }.kind();
        assert_eq!(kind(202), CredentialResponseKind::Accepted);
        assert_eq!(kind(200), CredentialResponseKind::Completed);
        assert_eq!(kind(400), CredentialResponseKind::Error);
        assert_eq!(kind(204), CredentialResponseKind::Other);
    }

    #[test]
    fn service_side() {
        let topic = IssueCertificateTopic::new("a/b").to_string();
        assert_eq!(parse_issue_certificate_topic(&topic), Ok("a%2Fb"));
        assert_eq!(
            parse_issue_certificate_topic("$iothub/credentials/POST/issueCertificate"),
            Err(TopicError::UnexpectedEnd)
        );
        assert_eq!(
            parse_issue_certificate_topic("$iothub/credentials/POST/issueCertificateX/?$rid=1"),
            Err(TopicError::NoMatch)
        );
        assert_eq!(
            CredentialResponseTopic::new(202, "a%2Fb").to_string(),
            "$iothub/credentials/res/202/?$rid=a%2Fb"
        );
        let res = parse_credentials_topic("$iothub/credentials/res/202/?$rid=a%2Fb").unwrap();
        assert_eq!(res.decoded_rid().unwrap(), "a/b");
    }

    #[test]
    fn retry_after() {
        let body = CredentialErrorBody {
            retry_after: Some(5),
            ..CredentialErrorBody::default()
        };
        assert_eq!(body.retry_after_duration(), Some(Duration::from_secs(5)));
        assert_eq!(CredentialErrorBody::default().retry_after_duration(), None);
    }
}
