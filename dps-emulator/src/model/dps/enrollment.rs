//! Individual enrollments and enrollment groups (service API `2021-10-01`).

use serde::{Deserialize, Serialize};

use super::attestation::AttestationMechanism;
use super::registration::DeviceRegistrationState;

/// Whether devices of an enrollment may provision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningStatus {
    /// Devices may provision (the default).
    #[default]
    Enabled,
    /// Devices get status `disabled`.
    Disabled,
}

/// What happens when an already provisioned device registers again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPolicy {
    /// Move the device when the allocation picks another hub (default true). False: never
    /// re-provision; the device stays on its hub.
    pub update_hub_assignment: bool,
    /// Carry the twin over to the new hub (true) or reset it to the initial twin (false).
    pub migrate_device_data: bool,
}

impl Default for ReprovisionPolicy {
    fn default() -> Self {
        Self {
            update_hub_assignment: true,
            migrate_device_data: true,
        }
    }
}

/// How a hub is chosen among the linked hubs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AllocationPolicy {
    /// Evenly over the candidate hubs, by a hash of the registration id (the default).
    #[default]
    Hashed,
    /// Lowest latency; all local hubs are equally close, so this behaves as hashed.
    GeoLatency,
    /// The enrollment's `iotHubHostName` (or its first `iotHubs` entry).
    Static,
    /// Ask a webhook.
    Custom,
}

/// The webhook of a custom allocation policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomAllocationDefinition {
    /// The URL DPS POSTs the allocation request to.
    pub webhook_url: String,
    /// The webhook's api-version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
}

/// Device capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCapabilities {
    /// Whether the device is an IoT Edge device.
    #[serde(default)]
    pub iot_edge: bool,
}

/// The settings shared by individual enrollments and groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentSettings {
    /// How devices attest.
    pub attestation: AttestationMechanism,
    /// Device capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<DeviceCapabilities>,
    /// Single target hub (older field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    /// The twin a newly assigned device starts with: `{tags, properties: {desired}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<serde_json::Value>,
    /// Entity tag, changed on every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Enabled or disabled.
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    /// What to do on re-registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_policy: Option<ReprovisionPolicy>,
    /// Creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    /// Last update time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    /// Allocation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// Candidate hubs (a subset of the linked hubs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    /// Custom allocation webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_allocation_definition: Option<CustomAllocationDefinition>,
}

/// An individual enrollment (`IndividualEnrollment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualEnrollment {
    /// The registration id this enrollment is for.
    pub registration_id: String,
    /// The device id to create in the hub (defaults to the registration id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The current registration state (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<DeviceRegistrationState>,
    /// Free-form device information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_device_information: Option<serde_json::Value>,
    /// Settings shared with groups.
    #[serde(flatten)]
    pub settings: EnrollmentSettings,
}

/// An enrollment group (`EnrollmentGroup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    /// The group id.
    pub enrollment_group_id: String,
    /// Settings shared with individual enrollments.
    #[serde(flatten)]
    pub settings: EnrollmentSettings,
}
