//! The hub's device side: CONNECT against the identity registry, the MQTT session (telemetry,
//! twin, direct methods, cloud-to-device messages, module inputs).

pub(crate) mod accept;
pub(crate) mod connect;
// Certificate renewal over `$iothub/credentials` (#12).
pub(crate) mod credentials;
// File upload (#14): the device-facing REST endpoints.
pub(crate) mod files;
pub(crate) mod session;
pub(crate) mod telemetry;
