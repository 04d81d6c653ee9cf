//! Individual enrollments and enrollment groups (service API `2021-10-01`).

use serde::{Deserialize, Serialize};

use super::attestation::{
    AttestationMechanism, AttestationType, SymmetricKeyAttestation, X509Attestation,
    X509CertificateWithInfo, X509Certificates,
};
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

// Constructors for the common cases (#15 item 6): a test or a config builder writes
// `IndividualEnrollment::symmetric_key("dev-1")` instead of a nested struct literal.

impl AttestationMechanism {
    /// Symmetric-key attestation whose keys the emulator (or the service) generates on create.
    pub fn symmetric_key() -> Self {
        Self {
            kind: AttestationType::SymmetricKey,
            symmetric_key: Some(SymmetricKeyAttestation::default()),
            ..Self::default()
        }
    }

    /// Symmetric-key attestation with the given base64 keys.
    pub fn symmetric_key_with(primary: impl Into<String>, secondary: impl Into<String>) -> Self {
        Self {
            kind: AttestationType::SymmetricKey,
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: Some(primary.into()),
                secondary_key: Some(secondary.into()),
            }),
            ..Self::default()
        }
    }

    /// X.509 attestation of an individual enrollment: the device's own certificate (PEM or
    /// base64 DER).
    pub fn x509_client_certificate(certificate: impl Into<String>) -> Self {
        Self::x509(X509Attestation {
            client_certificates: Some(X509Certificates::primary(certificate)),
            ..X509Attestation::default()
        })
    }

    /// X.509 attestation of an enrollment group: the root or intermediate certificate (PEM or
    /// base64 DER) that signs the devices' chains.
    pub fn x509_signing_certificate(certificate: impl Into<String>) -> Self {
        Self::x509(X509Attestation {
            signing_certificates: Some(X509Certificates::primary(certificate)),
            ..X509Attestation::default()
        })
    }

    fn x509(x509: X509Attestation) -> Self {
        Self {
            kind: AttestationType::X509,
            x509: Some(x509),
            ..Self::default()
        }
    }

    /// The primary symmetric key (base64), if this is symmetric-key attestation with keys.
    pub fn primary_key(&self) -> Option<&str> {
        self.symmetric_key.as_ref()?.primary_key.as_deref()
    }

    /// The secondary symmetric key (base64), if any.
    pub fn secondary_key(&self) -> Option<&str> {
        self.symmetric_key.as_ref()?.secondary_key.as_deref()
    }
}

impl X509Certificates {
    /// Just a primary certificate.
    pub fn primary(certificate: impl Into<String>) -> Self {
        Self {
            primary: Some(X509CertificateWithInfo {
                certificate: Some(certificate.into()),
                info: None,
            }),
            secondary: None,
        }
    }
}

impl EnrollmentSettings {
    /// Settings with `attestation` and everything else at the service's defaults.
    pub fn new(attestation: AttestationMechanism) -> Self {
        Self {
            attestation,
            ..Self::default()
        }
    }
}

impl IndividualEnrollment {
    /// An enrollment for `registration_id` attesting with `attestation`.
    pub fn new(registration_id: impl Into<String>, attestation: AttestationMechanism) -> Self {
        Self {
            registration_id: registration_id.into(),
            device_id: None,
            registration_state: None,
            optional_device_information: None,
            settings: EnrollmentSettings::new(attestation),
        }
    }

    /// A symmetric-key enrollment; the keys are generated when it is created (read them from
    /// the stored enrollment with [`IndividualEnrollment::primary_key`]).
    pub fn symmetric_key(registration_id: impl Into<String>) -> Self {
        Self::new(registration_id, AttestationMechanism::symmetric_key())
    }

    /// An X.509 enrollment: the device presents `certificate` (PEM or base64 DER), whose
    /// common name is the registration id.
    pub fn x509(registration_id: impl Into<String>, certificate: impl Into<String>) -> Self {
        Self::new(
            registration_id,
            AttestationMechanism::x509_client_certificate(certificate),
        )
    }

    /// Sets the hubs devices may be assigned to (a subset of the linked hubs).
    #[must_use]
    pub fn with_iot_hubs(mut self, hubs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.settings.iot_hubs = Some(hubs.into_iter().map(Into::into).collect());
        self
    }

    /// The primary symmetric key (base64), once generated.
    pub fn primary_key(&self) -> Option<&str> {
        self.settings.attestation.primary_key()
    }
}

impl EnrollmentGroup {
    /// A group with `enrollment_group_id` attesting with `attestation`.
    pub fn new(enrollment_group_id: impl Into<String>, attestation: AttestationMechanism) -> Self {
        Self {
            enrollment_group_id: enrollment_group_id.into(),
            settings: EnrollmentSettings::new(attestation),
        }
    }

    /// A symmetric-key group; the group keys are generated when it is created. Each device's
    /// key is derived from the group key ([`EnrollmentGroup::device_key`]).
    pub fn symmetric_key(enrollment_group_id: impl Into<String>) -> Self {
        Self::new(enrollment_group_id, AttestationMechanism::symmetric_key())
    }

    /// An X.509 group: devices present chains signed by `signing_certificate` (PEM or base64
    /// DER).
    pub fn x509(
        enrollment_group_id: impl Into<String>,
        signing_certificate: impl Into<String>,
    ) -> Self {
        Self::new(
            enrollment_group_id,
            AttestationMechanism::x509_signing_certificate(signing_certificate),
        )
    }

    /// Sets the hubs devices may be assigned to (a subset of the linked hubs).
    #[must_use]
    pub fn with_iot_hubs(mut self, hubs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.settings.iot_hubs = Some(hubs.into_iter().map(Into::into).collect());
        self
    }

    /// The primary group key (base64), once generated.
    pub fn primary_key(&self) -> Option<&str> {
        self.settings.attestation.primary_key()
    }

    /// The key of device `registration_id` in this symmetric-key group (base64): the HMAC of
    /// the registration id under the primary group key, as devices derive it
    /// (dps-device-protocol §2). `None` when the group has no symmetric key or the key or id is
    /// invalid.
    pub fn device_key(&self, registration_id: &str) -> Option<String> {
        let group = dps_auth::GroupKey::from_base64(self.primary_key()?).ok()?;
        let key = group.derive(registration_id).ok()?;
        Some(key.to_base64().to_string())
    }
}
