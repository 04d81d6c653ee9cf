//! What the two service REST APIs (DPS and IoT Hub) share: the shared access token check and
//! the failure type with the service's error body.

pub(crate) mod auth;
mod failure;

pub use failure::ServiceFailure;
