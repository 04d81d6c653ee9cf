//! Device and module identities in the emulated hubs, as the identity registry stores them.
//!
//! These are the persisted records. The service API's JSON shapes (with the computed
//! `connectionState` and `cloudToDeviceMessageCount`) are built from them by `crate::hub`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::dps::attestation::SymmetricKeyAttestation;
use crate::model::dps::enrollment::DeviceCapabilities;

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
    /// The mechanism (`sas` when absent).
    #[serde(rename = "type", default)]
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
///
/// Fields added after the first release are `#[serde(default)]` so that older state files load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Why the status was set (free text, up to 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_updated_time: Option<String>,
    /// When the device last connected or disconnected (the live state is kept in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state_updated_time: Option<String>,
    /// The last time the device connected, sent or received a message, as of its last
    /// disconnection (while connected, the live value is kept in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Device capabilities (`iotEdge`).
    #[serde(default)]
    pub capabilities: DeviceCapabilities,
    /// Versions and update times of the twin.
    #[serde(default)]
    pub twin_meta: TwinMeta,
    /// The device's module identities, by module id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, HubModule>,
}

/// A module identity of a hub device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubModule {
    /// The module id.
    pub module_id: String,
    /// Distinguishes identities re-created with the same id.
    pub generation_id: String,
    /// Entity tag.
    pub etag: String,
    /// How it authenticates.
    #[serde(default)]
    pub authentication: HubAuthentication,
    /// Who manages the module (`managedBy`, free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// The module twin (`{tags, properties: {desired, reported}}`).
    #[serde(default)]
    pub twin: serde_json::Value,
    /// Versions and update times of the module twin.
    #[serde(default)]
    pub twin_meta: TwinMeta,
    /// When the module last connected or disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state_updated_time: Option<String>,
    /// The last activity as of its last disconnection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_date_time_utc: String,
}

/// Twin versions and update times.
///
/// Kept beside the twin document rather than inside it, so that DPS may replace the document
/// (initial twin, reprovisioning) while versions keep increasing, as devices expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TwinMeta {
    /// The twin's version: bumped by every change to tags, desired or reported properties.
    pub version: u64,
    /// `$version` of the desired properties.
    pub desired_version: u64,
    /// `$version` of the reported properties.
    pub reported_version: u64,
    /// When the desired properties last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_updated: Option<String>,
    /// When the reported properties last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_updated: Option<String>,
}

impl Default for TwinMeta {
    /// A new twin: every version is 1, as the service starts them.
    fn default() -> Self {
        Self {
            version: 1,
            desired_version: 1,
            reported_version: 1,
            desired_updated: None,
            reported_updated: None,
        }
    }
}
