//! JSON bodies of the DPS device API: the registration request, the operation status with its
//! registration result, and the service error body.
//!
//! Field names are the service's (camelCase). Unknown fields are ignored so that new service
//! versions do not break old devices; custom payloads are kept as raw JSON text, byte for byte.
//! The types also serialize, so a service implementation (the emulator) can reuse them.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Why a body could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The text is not valid JSON, or a field has the wrong type or an unknown enum value.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A field the protocol requires is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
}

impl ModelError {
    pub(crate) fn json(err: &serde_json::Error) -> Self {
        Self::InvalidJson(alloc::format!("{err}"))
    }
}

/// The body published on the register topic (`DeviceRegistration` in the service API).
///
/// ```
/// use dps_core::dps::RegistrationRequest;
/// let body = RegistrationRequest::new("myRegistrationId")
///     .payload_json(r#"{"modelId":"dtmi:com:example:Thermostat;1"}"#)?;
/// assert_eq!(
///     body.to_json(),
///     r#"{"registrationId":"myRegistrationId","payload":{"modelId":"dtmi:com:example:Thermostat;1"}}"#
/// );
/// # Ok::<(), dps_core::dps::ModelError>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RegistrationRequest {
    /// The registration id. The C# SDK omits it (the service takes it from CONNECT), so it is
    /// optional when reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// Custom data for custom allocation policies, as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// A base64 DER PKCS#10 certificate signing request (api-version `2025-07-01-preview`+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
}

impl RegistrationRequest {
    /// A request for `registration_id` with no payload and no CSR.
    #[must_use]
    pub fn new(registration_id: impl Into<String>) -> Self {
        Self {
            registration_id: Some(registration_id.into()),
            payload: None,
            csr: None,
        }
    }

    /// Attaches a custom payload given as JSON text; it is validated and then sent verbatim,
    /// whitespace included.
    pub fn payload_json(mut self, json: &str) -> Result<Self, ModelError> {
        let raw = RawValue::from_string(json.to_owned()).map_err(|e| ModelError::json(&e))?;
        self.payload = Some(raw);
        Ok(self)
    }

    /// Attaches a custom payload from any serializable value.
    pub fn payload<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, ModelError> {
        let raw = serde_json::value::to_raw_value(value).map_err(|e| ModelError::json(&e))?;
        self.payload = Some(raw);
        Ok(self)
    }

    /// Attaches a certificate signing request (base64 of the DER PKCS#10, no PEM armour).
    #[must_use]
    pub fn csr(mut self, csr_base64: impl Into<String>) -> Self {
        self.csr = Some(csr_base64.into());
        self
    }

    /// The JSON text to publish.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing strings and already-validated raw JSON into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The state of a registration operation, as reported by the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RegistrationStatus {
    /// The device is not assigned to a hub.
    Unassigned,
    /// The service is still working on it: poll again after `retry-after`.
    Assigning,
    /// The device is assigned to a hub.
    Assigned,
    /// The registration failed; the registration state carries the error.
    Failed,
    /// The enrollment is disabled; the device cannot be provisioned.
    Disabled,
}

impl RegistrationStatus {
    /// Whether the operation has completed, as the Embedded C SDK defines it: `assigned`,
    /// `failed` and `disabled` are complete; `unassigned` and `assigning` are not.
    #[must_use]
    pub const fn is_operation_complete(self) -> bool {
        matches!(self, Self::Assigned | Self::Failed | Self::Disabled)
    }
}

/// How an assignment relates to the device's previous one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Substatus {
    /// First assignment of this device.
    InitialAssignment,
    /// Reprovisioned to another hub with its twin data migrated.
    DeviceDataMigrated,
    /// Reprovisioned with its twin data reset to the enrollment's initial twin.
    DeviceDataReset,
    /// Reprovisioned back to its initial assignment.
    ReprovisionedToInitialAssignment,
    /// A value this version does not know, kept as sent.
    Other(String),
}

impl Substatus {
    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::InitialAssignment => "initialAssignment",
            Self::DeviceDataMigrated => "deviceDataMigrated",
            Self::DeviceDataReset => "deviceDataReset",
            Self::ReprovisionedToInitialAssignment => "reprovisionedToInitialAssignment",
            Self::Other(other) => other,
        }
    }
}

impl fmt::Display for Substatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Substatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Substatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.as_str() {
            "initialAssignment" => Self::InitialAssignment,
            "deviceDataMigrated" => Self::DeviceDataMigrated,
            "deviceDataReset" => Self::DeviceDataReset,
            "reprovisionedToInitialAssignment" => Self::ReprovisionedToInitialAssignment,
            _ => Self::Other(text),
        })
    }
}

/// A six-digit service error code: the HTTP status followed by three digits (`401002`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a newtype: the number is the whole value"
)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// The HTTP-like status part (`401002` → `401`).
    #[must_use]
    pub const fn status(self) -> u32 {
        self.0 / 1000
    }

    /// The full extended code (`401002`).
    #[must_use]
    pub const fn extended(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The error body DPS sends with 4xx/5xx responses (`ProvisioningServiceErrorDetails`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the service's JSON schema, field for field; the emulator answers with it built by literal"
)]
pub struct ServiceError {
    /// The six-digit error code.
    pub error_code: ErrorCode,
    /// The id to quote to Azure support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the error happened (ISO 8601, as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_utc: Option<String>,
    /// Extra details, as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Box<RawValue>>,
}

impl PartialEq for ServiceError {
    fn eq(&self, other: &Self) -> bool {
        self.error_code == other.error_code
            && self.tracking_id == other.tracking_id
            && self.message == other.message
            && self.timestamp_utc == other.timestamp_utc
            && raw_eq(self.info.as_deref(), other.info.as_deref())
    }
}
impl Eq for ServiceError {}

/// `RegistrationOperationStatus`: the body of 200 and 202 responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the service's JSON schema, field for field; the emulator answers with it built by literal"
)]
pub struct RegistrationOperationStatus {
    /// The operation to poll. May be empty on terminal responses (`disabled`).
    pub operation_id: String,
    /// The operation state.
    pub status: RegistrationStatus,
    /// The registration details; absent on the first `assigning` answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<DeviceRegistrationResult>,
}

/// `DeviceRegistrationResult`: where the device was assigned, or why not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the service's JSON schema, field for field; the emulator answers with it built by literal"
)]
pub struct DeviceRegistrationResult {
    /// The registration id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// When the registration record was created (ISO 8601, 7 fractional digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    /// The host name of the assigned IoT Hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    /// The device id in the assigned hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The registration state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RegistrationStatus>,
    /// How this assignment relates to the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<Substatus>,
    /// The device identity's generation id in the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<String>,
    /// When the registration record last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    /// The error code of a failed registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    /// The error message of a failed registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The registration record's etag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Data returned by a custom allocation function, as raw JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// Issued certificate chain (base64 DER, leaf first), when a CSR was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_certificate_chain: Option<Vec<String>>,
    /// Issued certificate of the older `2021-11-01-preview` API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_client_certificate: Option<String>,
    /// Trust bundle of the older `2021-11-01-preview` API, as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_bundle: Option<Box<RawValue>>,
    /// X.509 attestation details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509RegistrationResult>,
    /// Symmetric-key attestation details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<SymmetricKeyRegistrationResult>,
    /// TPM attestation details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmRegistrationResult>,
}

impl PartialEq for DeviceRegistrationResult {
    fn eq(&self, other: &Self) -> bool {
        self.registration_id == other.registration_id
            && self.created_date_time_utc == other.created_date_time_utc
            && self.assigned_hub == other.assigned_hub
            && self.device_id == other.device_id
            && self.status == other.status
            && self.substatus == other.substatus
            && self.generation_id == other.generation_id
            && self.last_updated_date_time_utc == other.last_updated_date_time_utc
            && self.error_code == other.error_code
            && self.error_message == other.error_message
            && self.etag == other.etag
            && raw_eq(self.payload.as_deref(), other.payload.as_deref())
            && self.issued_certificate_chain == other.issued_certificate_chain
            && self.issued_client_certificate == other.issued_client_certificate
            && raw_eq(self.trust_bundle.as_deref(), other.trust_bundle.as_deref())
            && self.x509 == other.x509
            && self.symmetric_key == other.symmetric_key
            && self.tpm == other.tpm
    }
}
impl Eq for DeviceRegistrationResult {}

fn raw_eq(a: Option<&RawValue>, b: Option<&RawValue>) -> bool {
    a.map(RawValue::get) == b.map(RawValue::get)
}

/// X.509 attestation details of a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the service's JSON schema, field for field; the emulator answers with it built by literal"
)]
pub struct X509RegistrationResult {
    /// The device certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_info: Option<X509CertificateInfo>,
    /// The enrollment group that matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
    /// The enrolled signing certificate that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate_info: Option<X509CertificateInfo>,
}

/// Summary of a certificate as DPS reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the service's JSON schema, field for field; the emulator answers with it built by literal"
)]
pub struct X509CertificateInfo {
    /// Subject distinguished name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
    /// SHA-1 thumbprint (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1_thumbprint: Option<String>,
    /// SHA-256 thumbprint (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_thumbprint: Option<String>,
    /// Issuer distinguished name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_name: Option<String>,
    /// Start of validity (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_utc: Option<String>,
    /// End of validity (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after_utc: Option<String>,
    /// Serial number (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// X.509 version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// Symmetric-key attestation details of a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[expect(
    clippy::exhaustive_structs,
    reason = "the service's JSON schema, field for field; the emulator answers with it built by literal"
)]
pub struct SymmetricKeyRegistrationResult {
    /// The enrollment group that matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_group_id: Option<String>,
}

/// TPM attestation details of a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TpmRegistrationResult {
    /// The encrypted authentication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_key: Option<String>,
}
