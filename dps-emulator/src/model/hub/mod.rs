//! What the hub keeps: device and module identities with their twins, and queued
//! cloud-to-device messages. Here rather than under `hub/` because the DPS registrar creates
//! hub identities and the store persists both; the store must not depend on the hub's code.

pub(crate) mod c2d;
pub(crate) mod identity;
pub(crate) mod job;
