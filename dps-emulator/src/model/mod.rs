//! The emulator's data model: what the store persists and both sides of DPS and of the hub see
//! (enrollments, registration records, hub identities, queued cloud-to-device messages), with
//! the service APIs' JSON shapes.

mod dps;
mod hub;

pub use dps::attestation::{
    AttestationMechanism, AttestationType, SymmetricKeyAttestation, X509Attestation,
    X509CertificateWithInfo, X509Certificates,
};
pub use dps::enrollment::{
    AllocationPolicy, CustomAllocationDefinition, DeviceCapabilities, EnrollmentGroup,
    EnrollmentSettings, IndividualEnrollment, ProvisioningStatus, ReprovisionPolicy,
};
pub use dps::registration::DeviceRegistrationState;
pub use hub::c2d::{CloudToDeviceMessage, MAX_C2D_SIZE, MAX_QUEUED_C2D};
pub(crate) use hub::c2d::{MessageRequest, QueuedC2d};
pub use hub::identity::{DeviceStatus, HubAuthType, HubAuthentication, X509Thumbprint};
pub use hub::identity::{HubDevice, HubModule, TwinMeta};
pub(crate) use hub::job::Job;
