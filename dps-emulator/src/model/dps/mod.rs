//! What DPS keeps: enrollments, enrollment groups, attestation mechanisms and registration
//! records, with the service API's JSON shapes.

pub(crate) mod attestation;
pub(crate) mod enrollment;
pub(crate) mod registration;
