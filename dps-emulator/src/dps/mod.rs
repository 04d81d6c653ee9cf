//! The emulated Device Provisioning Service.
//!
//! - [`device`]: the device side, on MQTT (over TLS and over WebSocket): CONNECT
//!   authentication, the registration flow, allocation, certificate issuance and fault
//!   injection.
//! - [`service`]: the service side, on HTTPS: the DPS service REST API (enrollments, enrollment
//!   groups, registration records, queries) and the emulator-only fault and timing endpoints.

pub(crate) mod device;
pub(crate) mod service;
