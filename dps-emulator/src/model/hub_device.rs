//! Device identities in the emulated hubs (the hub registry, as far as provisioning needs it).

use serde::{Deserialize, Serialize};

use super::attestation::SymmetricKeyAttestation;

/// How a hub device authenticates (`authentication.type` in the registry API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HubAuthType {
    /// SAS tokens from symmetric keys.
    #[default]
    Sas,
    /// A self-signed certificate, by thumbprint.
    SelfSigned,
    /// A certificate issued by a CA the hub trusts.
    CertificateAuthority,
    /// No authentication configured.
    None,
}

/// Primary and secondary certificate thumbprints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Thumbprint {
    /// Primary thumbprint (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_thumbprint: Option<String>,
    /// Secondary thumbprint (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_thumbprint: Option<String>,
}

/// `authentication` of a device identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubAuthentication {
    /// The mechanism.
    #[serde(rename = "type")]
    pub kind: HubAuthType,
    /// Symmetric keys, for SAS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<SymmetricKeyAttestation>,
    /// Thumbprints, for self-signed certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_thumbprint: Option<X509Thumbprint>,
}

/// Enabled or disabled, as in the hub registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceStatus {
    /// The device may connect.
    #[default]
    Enabled,
    /// The device is refused (CONNACK 5).
    Disabled,
}

/// A device identity in one of the emulated hubs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubDevice {
    /// The hub host name.
    pub hub: String,
    /// The device id.
    pub device_id: String,
    /// Distinguishes identities re-created with the same id.
    pub generation_id: String,
    /// Entity tag.
    pub etag: String,
    /// Enabled or disabled.
    pub status: DeviceStatus,
    /// How it authenticates.
    pub authentication: HubAuthentication,
    /// The twin (`{tags, properties: {desired, reported}}`).
    #[serde(default)]
    pub twin: serde_json::Value,
    /// The registration that created it, if DPS did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_id: Option<String>,
    /// Creation time.
    pub created_date_time_utc: String,
}
