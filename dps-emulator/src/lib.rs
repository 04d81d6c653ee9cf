//! A local Azure IoT Hub Device Provisioning Service (DPS) and IoT Hub emulator that speaks the
//! real wire protocol, so the official device and service SDKs run against it unmodified.
//!
//! In a test, start an [`EmulatorFixture`]: an emulator on ephemeral loopback ports whose data
//! lives in a temporary directory the fixture owns. Enroll a device and hand its credentials to
//! a client:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_emulator::EmulatorFixture;
//!
//! let emulator = EmulatorFixture::start().await?;
//! let device = emulator.enroll_symmetric_key("my-device").await?;   // the key is generated
//! let fleet_member = emulator.enroll_group_device("my-fleet", "sensor-7").await?;
//!
//! // What a provisioning client needs: endpoint, id scope, registration id, key, CA to trust.
//! let endpoints = &device.endpoints;
//! assert!(endpoints.mqtt_endpoint.starts_with("localhost:"));
//! assert!(!device.symmetric_key.is_empty() && !fleet_member.symmetric_key.is_empty());
//! // With `dps-client` (not a dependency of this crate), for instance:
//! //   let tls = TlsConfig::default().webpki_roots(false).add_root(endpoints.ca_der.clone());
//! //   let key = SymmetricKey::from_base64(&device.symmetric_key)?;
//! //   let assignment = ProvisioningClient::new(&endpoints.id_scope, "my-device", key)
//! //       .endpoint(&endpoints.mqtt_endpoint)
//! //       .tls(tls)
//! //       .register()
//! //       .await?;                       // assigned to the emulator's hub, `localhost`
//!
//! emulator.shutdown().await;              // stops it, then removes its data directory
//! # Ok(()) }
//! ```
//!
//! Enrollments are built with constructors ([`model::IndividualEnrollment::symmetric_key`],
//! [`model::IndividualEnrollment::x509`], [`model::EnrollmentGroup::symmetric_key`],
//! [`model::EnrollmentGroup::x509`]) and read back with key helpers
//! ([`model::IndividualEnrollment::primary_key`], [`model::EnrollmentGroup::device_key`]).
//! Outside tests, [`Emulator::start`] takes an [`EmulatorConfig`] (a data directory, ports, a
//! [`ConfigFile`]; `emulator.sample.toml` in this crate documents every setting).
//!
//! The same emulator is the IoT Hub its devices are assigned to, on the same ports; manage it
//! through [`Emulator`] (`create_device`, `update_twin`, `invoke_method`, `send_c2d`,
//! `hub_events`, ...) or through the service REST APIs with the official service SDKs.
//!
//! Logs go through `tracing`; the emulator never logs a key, token or signature. Its WebSocket
//! layer (tungstenite) traces frame payloads, which carry devices' SAS tokens: a program that
//! embeds the emulator and logs at `trace` should filter with [`cli::log_filter`], which turns
//! those targets off (the `dps-emulator` binary and `dps emulator` do).
//!
//! Layout: DPS and the hub are each split into a device side (the MQTT protocol the
//! devices speak) and a service side (the REST API the official service SDKs call); [`model`]
//! holds what the store persists and both sides see. The network frame, the TLS material and
//! the store are internal.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod azurite;
pub mod blob;
pub mod cli;
pub mod config;
mod dps;
mod emulator;
mod fixture;
mod hub;
pub mod model;
mod net;
mod persist;
mod rest;
mod store;
#[doc(hidden)]
pub mod testing;
mod tls;
mod util;

pub use blob::{FileUploadConfig, StorageAccount};
pub use config::{Behaviour, ConfigError, ConfigFile, DEFAULT_ID_SCOPE, EmulatorConfig, Limits};
pub use dps::device::faults::{Faults, InjectStatus, RateLimit};
pub use emulator::{Emulator, EmulatorError, EmulatorInfo};
pub use fixture::{ClientEndpoints, DeviceCredentials, EmulatorFixture, FixtureError};
pub use hub::{
    DeviceConnectionState, DeviceIdentity, DeviceTwin, EVENT_FEED_CAPACITY, FileUploadNotification,
    HubEvent, HubEventKind, MethodInvocation, MethodResult, ModuleIdentity, TwinProperties,
};
pub use model::CloudToDeviceMessage;
pub use rest::ServiceFailure;
pub use store::StoreError;
pub use tls::TlsError;
