//! SAS token formatting and parsing (no cryptography: signing is the caller's).
//!
//! A shared access signature proves possession of a symmetric key without sending it:
//!
//! 1. build the *string to sign*, `{url-encoded resource URI}\n{expiry}` ([`string_to_sign`]);
//! 2. sign it with HMAC-SHA256 under the decoded key and base64 the result (done outside this
//!    crate, e.g. by `dps-auth` or a secure element);
//! 3. format the token, `SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={key
//!    name}]` ([`format_token`]).
//!
//! The official SDKs differ in the encoding of the resource, the field order and the key name;
//! the service verifies the signature over the `sr` text exactly as sent, so all of them work.
//! [`SasStyle`] reproduces each variant byte for byte, and defaults to the documented form.
//! [`ParsedSas`] reads a token in any of these forms, which is what a service (or an emulator)
//! needs to verify one.
//!
//! ```
//! use dps_core::sas::{format_token, string_to_sign, SasResource, SasStyle};
//!
//! let resource = SasResource::dps("0neFEEDC0DE", "myRegistrationId");
//! let style = SasStyle::documented_dps();
//! assert_eq!(
//!     string_to_sign(&resource, &style, 1578941692).to_string(),
//!     "0neFEEDC0DE%2Fregistrations%2FmyRegistrationId\n1578941692"
//! );
//! // The signature is the base64 HMAC-SHA256 of the string to sign (computed elsewhere).
//! let token = format_token(&resource, &style, "c2lnbmF0dXJl/+=", 1578941692);
//! assert_eq!(
//!     token.expose(),
//!     "SharedAccessSignature sr=0neFEEDC0DE%2Fregistrations%2FmyRegistrationId\
//!      &sig=c2lnbmF0dXJl%2F%2B%3D&se=1578941692&skn=registration"
//! );
//! assert_eq!(format!("{token:?}"), "SasToken(<redacted>)");
//! ```

use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt::{self, Write as _};

use crate::encoding::{DecodeError, HexCase, PercentEncoded, percent_decode};
use crate::query::Params;

/// The scheme word every token starts with, followed by one space.
pub const TOKEN_PREFIX: &str = "SharedAccessSignature ";

/// The key name (`skn`) the DPS documentation prescribes for device registration tokens.
pub const DPS_KEY_NAME: &str = "registration";

/// What a token grants access to: the resource URI that is signed and sent as `sr`.
///
/// [`Display`](fmt::Display) writes the URI un-encoded, e.g. `0neFEEDC0DE/registrations/dev1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SasResource {
    /// A DPS registration: `{id_scope}/registrations/{registration_id}`.
    Dps {
        /// The DPS instance's id scope, e.g. `0ne00000A0A`.
        id_scope: String,
        /// The device's registration id.
        registration_id: String,
    },
    /// An IoT Hub device: `{host}/devices/{device_id}`.
    HubDevice {
        /// The hub's host name, e.g. `myhub.azure-devices.net`.
        host: String,
        /// The device id.
        device_id: String,
    },
    /// An IoT Hub module: `{host}/devices/{device_id}/modules/{module_id}`.
    HubModule {
        /// The hub's host name.
        host: String,
        /// The device id.
        device_id: String,
        /// The module id.
        module_id: String,
    },
    /// Any other resource URI, given un-encoded (for example a hub-level policy token's
    /// `myhub.azure-devices.net`).
    Custom(String),
}

impl SasResource {
    /// The DPS registration resource `{id_scope}/registrations/{registration_id}`.
    #[must_use]
    pub fn dps(id_scope: impl Into<String>, registration_id: impl Into<String>) -> Self {
        Self::Dps {
            id_scope: id_scope.into(),
            registration_id: registration_id.into(),
        }
    }

    /// The IoT Hub device resource `{host}/devices/{device_id}`.
    #[must_use]
    pub fn hub_device(host: impl Into<String>, device_id: impl Into<String>) -> Self {
        Self::HubDevice {
            host: host.into(),
            device_id: device_id.into(),
        }
    }

    /// The IoT Hub module resource `{host}/devices/{device_id}/modules/{module_id}`.
    #[must_use]
    pub fn hub_module(
        host: impl Into<String>,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> Self {
        Self::HubModule {
            host: host.into(),
            device_id: device_id.into(),
            module_id: module_id.into(),
        }
    }

    /// A resource given as its un-encoded URI.
    #[must_use]
    pub fn custom(uri: impl Into<String>) -> Self {
        Self::Custom(uri.into())
    }

    /// True for [`SasResource::Dps`].
    #[must_use]
    pub const fn is_dps(&self) -> bool {
        matches!(self, Self::Dps { .. })
    }

    /// Calls `write` with each `/`-separated segment of the URI, in order.
    fn for_each_segment(&self, mut write: impl FnMut(usize, &str) -> fmt::Result) -> fmt::Result {
        match self {
            Self::Dps {
                id_scope,
                registration_id,
            } => [id_scope.as_str(), "registrations", registration_id.as_str()]
                .iter()
                .enumerate()
                .try_for_each(|(i, s)| write(i, s)),
            Self::HubDevice { host, device_id } => [host.as_str(), "devices", device_id.as_str()]
                .iter()
                .enumerate()
                .try_for_each(|(i, s)| write(i, s)),
            Self::HubModule {
                host,
                device_id,
                module_id,
            } => [
                host.as_str(),
                "devices",
                device_id.as_str(),
                "modules",
                module_id.as_str(),
            ]
            .iter()
            .enumerate()
            .try_for_each(|(i, s)| write(i, s)),
            Self::Custom(uri) => uri
                .split('/')
                .enumerate()
                .try_for_each(|(i, s)| write(i, s)),
        }
    }

    /// The resource as it appears in `sr=` and in the string to sign, for the given encoding.
    #[must_use]
    pub const fn encoded(&self, encoding: ResourceEncoding) -> EncodedResource<'_> {
        EncodedResource {
            resource: self,
            encoding,
        }
    }
}

impl fmt::Display for SasResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.for_each_segment(|i, segment| {
            if i > 0 {
                f.write_char('/')?;
            }
            f.write_str(segment)
        })
    }
}

/// How the resource URI is written into `sr=` and into the string to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ResourceEncoding {
    /// Percent-encoded with upper-case hex (`%2F`): the documented form, used by the C, C# and
    /// Python SDKs and by Embedded C for hub tokens.
    #[default]
    Upper,
    /// Percent-encoded with lower-case hex (`%2f`, `%3a`).
    Lower,
    /// Segments percent-encoded with upper-case hex, the `/` between them written `%2f`: exactly
    /// what the Embedded C SDK produces for DPS (`0neFEEDC0DE%2fregistrations%2fmyRegistrationId`).
    LowerSeparators,
    /// Not encoded at all, as the Node SDK does for DPS. Only safe when the URI contains none of
    /// `% & =`; prefer an encoded form.
    Raw,
}

/// The order of the fields after `sig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FieldOrder {
    /// `sr, sig, se[, skn]`: the documented order, used by every SDK but Node.
    #[default]
    SigSeSkn,
    /// `sr, sig[, skn], se`: the Node SDK's order.
    SigSknSe,
}

/// How a token is written: resource encoding, field order and key name.
///
/// The service accepts every variant, because it verifies the signature over the `sr` text as
/// sent. Use the documented forms ([`SasStyle::documented_dps`], [`SasStyle::hub`], or
/// [`SasStyle::for_resource`] to pick between them); the others exist for byte-exact
/// compatibility tests against the official SDKs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SasStyle {
    encoding: ResourceEncoding,
    order: FieldOrder,
    key_name: Option<Cow<'static, str>>,
}

impl SasStyle {
    /// The form the DPS documentation prescribes, also used by the C and C# SDKs: upper-case
    /// encoding, `skn=registration`, order `sr, sig, se, skn`.
    #[must_use]
    pub const fn documented_dps() -> Self {
        Self {
            encoding: ResourceEncoding::Upper,
            order: FieldOrder::SigSeSkn,
            key_name: Some(Cow::Borrowed(DPS_KEY_NAME)),
        }
    }

    /// The documented form for IoT Hub device and module keys (and Embedded C's hub tokens):
    /// upper-case encoding, no key name.
    #[must_use]
    pub const fn hub() -> Self {
        Self {
            encoding: ResourceEncoding::Upper,
            order: FieldOrder::SigSeSkn,
            key_name: None,
        }
    }

    /// The Embedded C SDK's DPS form: separators written `%2f`, no key name.
    #[must_use]
    pub const fn embedded_c() -> Self {
        Self {
            encoding: ResourceEncoding::LowerSeparators,
            order: FieldOrder::SigSeSkn,
            key_name: None,
        }
    }

    /// The Python SDK's DPS form: upper-case encoding, no key name.
    #[must_use]
    pub const fn python_dps() -> Self {
        Self::hub()
    }

    /// The Node SDK's DPS form: resource not encoded, `skn=registration` before `se`.
    #[must_use]
    pub const fn node_dps() -> Self {
        Self {
            encoding: ResourceEncoding::Raw,
            order: FieldOrder::SigSknSe,
            key_name: Some(Cow::Borrowed(DPS_KEY_NAME)),
        }
    }

    /// The documented form for `resource`: [`documented_dps`](Self::documented_dps) for DPS,
    /// [`hub`](Self::hub) for everything else.
    #[must_use]
    pub const fn for_resource(resource: &SasResource) -> Self {
        if resource.is_dps() {
            Self::documented_dps()
        } else {
            Self::hub()
        }
    }

    /// Sets the resource encoding.
    #[must_use]
    pub const fn with_encoding(mut self, encoding: ResourceEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Sets the field order.
    #[must_use]
    pub const fn with_field_order(mut self, order: FieldOrder) -> Self {
        self.order = order;
        self
    }

    /// Adds `skn={key_name}` (percent-encoded; the names in use, such as `registration` or
    /// `iothubowner`, need no encoding).
    #[must_use]
    pub fn with_key_name(mut self, key_name: impl Into<Cow<'static, str>>) -> Self {
        self.key_name = Some(key_name.into());
        self
    }

    /// Leaves `skn` out.
    #[must_use]
    pub fn without_key_name(mut self) -> Self {
        self.key_name = None;
        self
    }

    /// The resource encoding.
    #[must_use]
    pub const fn encoding(&self) -> ResourceEncoding {
        self.encoding
    }

    /// The field order.
    #[must_use]
    pub const fn field_order(&self) -> FieldOrder {
        self.order
    }

    /// The key name written as `skn`, if any.
    #[must_use]
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }
}

/// Displays a resource URI as written in `sr=`; see [`SasResource::encoded`].
#[derive(Debug, Clone, Copy)]
pub struct EncodedResource<'a> {
    resource: &'a SasResource,
    encoding: ResourceEncoding,
}

impl fmt::Display for EncodedResource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (case, separator) = match self.encoding {
            ResourceEncoding::Raw => return fmt::Display::fmt(self.resource, f),
            ResourceEncoding::Upper => (HexCase::Upper, "%2F"),
            ResourceEncoding::Lower => (HexCase::Lower, "%2f"),
            ResourceEncoding::LowerSeparators => (HexCase::Upper, "%2f"),
        };
        self.resource.for_each_segment(|i, segment| {
            if i > 0 {
                f.write_str(separator)?;
            }
            fmt::Display::fmt(&PercentEncoded::with_case(segment, case), f)
        })
    }
}

/// The text to sign, `{encoded resource}\n{expiry}`; see [`string_to_sign`].
#[derive(Debug, Clone, Copy)]
pub struct StringToSign<'a> {
    resource: EncodedResource<'a>,
    expiry: u64,
}

impl fmt::Display for StringToSign<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n{}", self.resource, self.expiry)
    }
}

/// The string to sign for `resource`, expiring at `expiry_unix` (seconds since the Unix epoch):
/// `{encoded resource}\n{expiry}`. Sign its UTF-8 bytes with HMAC-SHA256 and pass the base64
/// result to [`format_token`] with the same style and expiry.
#[must_use]
pub const fn string_to_sign<'a>(
    resource: &'a SasResource,
    style: &SasStyle,
    expiry_unix: u64,
) -> StringToSign<'a> {
    StringToSign {
        resource: resource.encoded(style.encoding),
        expiry: expiry_unix,
    }
}

/// Formats the token for `resource` from the base64 signature of
/// [`string_to_sign`]`(resource, style, expiry_unix)`.
///
/// The signature is percent-encoded (upper case) into `sig=`; the key name, if the style has one,
/// into `skn=`.
#[must_use]
pub fn format_token(
    resource: &SasResource,
    style: &SasStyle,
    signature_base64: &str,
    expiry_unix: u64,
) -> SasToken {
    let mut text =
        String::with_capacity(TOKEN_PREFIX.len() + 3 * signature_base64.len() + 2 * 64 + 48);
    // Writing into a `String` cannot fail, and the encoders only write ASCII.
    let _ = write!(
        text,
        "{TOKEN_PREFIX}sr={}&sig={}",
        resource.encoded(style.encoding),
        PercentEncoded::new(signature_base64)
    );
    let skn = |text: &mut String| match &style.key_name {
        Some(name) => write!(text, "&skn={}", PercentEncoded::new(name)),
        None => Ok(()),
    };
    let _ = match style.order {
        FieldOrder::SigSeSkn => write!(text, "&se={expiry_unix}").and_then(|()| skn(&mut text)),
        FieldOrder::SigSknSe => skn(&mut text).and_then(|()| write!(text, "&se={expiry_unix}")),
    };
    SasToken(text)
}

/// A complete SAS token, `SharedAccessSignature sr=…&sig=…&se=…`: a bearer credential.
///
/// Anyone holding the token can act as the device until it expires, so its
/// [`Debug`](fmt::Debug) output is redacted and it has no `Display`; call
/// [`expose`](Self::expose) where the text is really needed (the MQTT password).
#[derive(Clone)]
pub struct SasToken(String);

impl Drop for SasToken {
    fn drop(&mut self) {
        // The token lets its holder act as the device until it expires: wipe it.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl SasToken {
    /// Wraps token text obtained elsewhere (for example a token minted by a back end).
    #[must_use]
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The token text. Never log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token text; the same as [`expose`](Self::expose).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token text, by value.
    #[must_use]
    pub fn into_string(mut self) -> String {
        core::mem::take(&mut self.0)
    }

    /// Parses the token, e.g. to read its expiry.
    ///
    /// # Errors
    /// A [`SasParseError`] when the text is not a well-formed token.
    pub fn parse(&self) -> Result<ParsedSas<'_>, SasParseError> {
        ParsedSas::parse(&self.0)
    }

    /// The token's expiry (`se`, seconds since the Unix epoch), or `None` when it does not parse.
    /// Schedule renewal (a reconnect with a fresh token) before this time.
    #[must_use]
    pub fn expiry_unix(&self) -> Option<u64> {
        self.parse().ok().map(|parsed| parsed.expiry())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasToken(<redacted>)")
    }
}

impl From<String> for SasToken {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// A field of a SAS token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SasField {
    /// `sr`, the resource URI.
    Resource,
    /// `sig`, the signature.
    Signature,
    /// `se`, the expiry.
    Expiry,
    /// `skn`, the key (policy) name.
    KeyName,
}

impl SasField {
    /// The field's name in the token.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Resource => "sr",
            Self::Signature => "sig",
            Self::Expiry => "se",
            Self::KeyName => "skn",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sr" => Self::Resource,
            "sig" => Self::Signature,
            "se" => Self::Expiry,
            "skn" => Self::KeyName,
            _ => return None,
        })
    }
}

impl fmt::Display for SasField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a text is not a well-formed SAS token. The messages never quote the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasParseError {
    /// The text does not start with `SharedAccessSignature ` (one space). Pass the whole token,
    /// not just its fields.
    #[error("token does not start with \"SharedAccessSignature \"")]
    MissingPrefix,
    /// A required field (`sr`, `sig` or `se`) is absent.
    #[error("token has no {field} field")]
    MissingField {
        /// The absent field.
        field: SasField,
    },
    /// A field appears twice, which makes the token ambiguous; it is refused.
    #[error("token has more than one {field} field")]
    DuplicateField {
        /// The repeated field.
        field: SasField,
    },
    /// `sr`, `sig` or `se` has no value.
    #[error("token field {field} is empty")]
    EmptyField {
        /// The empty field.
        field: SasField,
    },
    /// A field other than `sr`, `sig`, `se` and `skn`.
    #[error("token field number {index} is not one of sr, sig, se, skn")]
    UnknownField {
        /// Position of the field, counted from 0.
        index: usize,
    },
    /// A field's value is not valid percent-encoding (or not UTF-8 once decoded).
    #[error("token field {field} is not valid percent-encoding")]
    InvalidEncoding {
        /// The field.
        field: SasField,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
    /// `se` is not a decimal number of seconds that fits in 64 bits.
    #[error("token expiry (se) is not a decimal number of seconds")]
    InvalidExpiry,
}

/// A SAS token taken apart, fields in any order, with or without `skn`.
///
/// It keeps the `sr` text exactly as sent: the signature covers that text, so verification signs
/// [`signed_text`](Self::signed_text), and compares [`resource`](Self::resource) (decoded) with the
/// expected resource. The signature is secret; [`Debug`](fmt::Debug) leaves it out.
#[derive(Clone)]
pub struct ParsedSas<'a> {
    raw_resource: &'a str,
    resource: Cow<'a, str>,
    signature: Cow<'a, str>,
    raw_expiry: &'a str,
    expiry: u64,
    key_name: Option<Cow<'a, str>>,
}

impl<'a> ParsedSas<'a> {
    /// Parses `SharedAccessSignature k=v&k=v…`.
    ///
    /// # Errors
    /// A [`SasParseError`] saying what is malformed; it never quotes the token.
    pub fn parse(token: &'a str) -> Result<Self, SasParseError> {
        let fields = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(SasParseError::MissingPrefix)?;
        let mut sr = None;
        let mut sig = None;
        let mut se = None;
        let mut skn = None;
        for (index, param) in Params::new(fields).enumerate() {
            let field =
                SasField::from_name(param.key).ok_or(SasParseError::UnknownField { index })?;
            let slot = match field {
                SasField::Resource => &mut sr,
                SasField::Signature => &mut sig,
                SasField::Expiry => &mut se,
                SasField::KeyName => &mut skn,
            };
            if slot.is_some() {
                return Err(SasParseError::DuplicateField { field });
            }
            *slot = Some(param.value.unwrap_or(""));
        }
        let required = |value: Option<&'a str>, field| match value {
            None => Err(SasParseError::MissingField { field }),
            Some("") => Err(SasParseError::EmptyField { field }),
            Some(value) => Ok(value),
        };
        let raw_resource = required(sr, SasField::Resource)?;
        let raw_signature = required(sig, SasField::Signature)?;
        let raw_expiry = required(se, SasField::Expiry)?;
        let decode = |text, field| {
            percent_decode(text).map_err(|source| SasParseError::InvalidEncoding { field, source })
        };
        let resource = decode(raw_resource, SasField::Resource)?;
        let signature = decode(raw_signature, SasField::Signature)?;
        let key_name = skn.map(|k| decode(k, SasField::KeyName)).transpose()?;
        if !raw_expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SasParseError::InvalidExpiry);
        }
        let expiry = raw_expiry
            .parse::<u64>()
            .map_err(|_| SasParseError::InvalidExpiry)?;
        Ok(Self {
            raw_resource,
            resource,
            signature,
            raw_expiry,
            expiry,
            key_name,
        })
    }

    /// The `sr` text exactly as sent (still encoded): what the signature covers.
    #[must_use]
    pub const fn raw_resource(&self) -> &'a str {
        self.raw_resource
    }

    /// The resource URI, percent-decoded. Compare it with the expected resource (the service
    /// compares case-insensitively).
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The signature's base64 text, percent-decoded. Secret: never log it.
    #[must_use]
    pub fn signature_base64(&self) -> &str {
        &self.signature
    }

    /// The expiry, in seconds since the Unix epoch.
    #[must_use]
    pub const fn expiry(&self) -> u64 {
        self.expiry
    }

    /// The key name (`skn`), percent-decoded, if present.
    #[must_use]
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// The text the signature must be the HMAC of: `{sr as sent}\n{se as sent}`.
    #[must_use]
    pub fn signed_text(&self) -> String {
        let mut text = String::with_capacity(self.raw_resource.len() + 1 + self.raw_expiry.len());
        text.push_str(self.raw_resource);
        text.push('\n');
        text.push_str(self.raw_expiry);
        text
    }
}

impl fmt::Debug for ParsedSas<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedSas")
            .field("raw_resource", &self.raw_resource)
            .field("resource", &self.resource)
            .field("signature", &"<redacted>")
            .field("expiry", &self.expiry)
            .field("key_name", &self.key_name)
            .finish()
    }
}

#[cfg(test)]
mod tests;
