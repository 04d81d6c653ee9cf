//! Small helpers: service-style timestamps and identifiers.

pub(crate) mod ids;
pub(crate) mod time;
