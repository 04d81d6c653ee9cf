//! Small helpers: service-style timestamps and identifiers, and X.509 certificate inspection.

pub(crate) mod ids;
pub(crate) mod time;
pub(crate) mod x509;
