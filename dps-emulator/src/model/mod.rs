//! The emulator's data model: enrollments, registration records and hub devices, with the
//! service API's JSON shapes.

mod attestation;
mod enrollment;
mod hub_device;
mod registration;

pub use attestation::{
    AttestationMechanism, AttestationType, SymmetricKeyAttestation, X509Attestation,
    X509CertificateWithInfo, X509Certificates,
};
pub use enrollment::{
    AllocationPolicy, CustomAllocationDefinition, DeviceCapabilities, EnrollmentGroup,
    EnrollmentSettings, IndividualEnrollment, ProvisioningStatus, ReprovisionPolicy,
};
pub use hub_device::{
    DeviceStatus, HubAuthType, HubAuthentication, HubDevice, HubModule, TwinMeta, X509Thumbprint,
};
pub use registration::DeviceRegistrationState;
