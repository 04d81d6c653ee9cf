//! A local Azure IoT Hub Device Provisioning Service (DPS) and IoT Hub emulator that speaks the
//! real wire protocol, so the official device and service SDKs run against it unmodified.
//!
//! Start one in-process on ephemeral ports, with its state in a temporary directory, enroll a
//! device and point a client at it:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_emulator::model::IndividualEnrollment;
//! use dps_emulator::{Emulator, EmulatorConfig};
//!
//! // Loopback, ephemeral ports, state (CA, keys, enrollments) in a temporary directory.
//! let dir = tempfile::tempdir()?;
//! let emulator = Emulator::start(EmulatorConfig::new(dir.path())).await?;
//!
//! // Enroll a device with a symmetric key, as `PUT /enrollments/{id}` takes it; the emulator
//! // generates the keys.
//! let enrollment: IndividualEnrollment = serde_json::from_value(serde_json::json!({
//!     "registrationId": "my-device",
//!     "attestation": { "type": "symmetricKey" }
//! }))?;
//! let stored = emulator.put_enrollment(enrollment, None).await?;
//! let key = stored
//!     .settings
//!     .attestation
//!     .symmetric_key
//!     .and_then(|k| k.primary_key)
//!     .ok_or("the emulator generates keys")?;
//!
//! // What a provisioning client needs: endpoint, id scope, registration id, key, CA to trust.
//! let endpoint = format!("localhost:{}", emulator.mqtt_addr().port());
//! let id_scope = emulator.id_scope().to_owned();
//! let ca_der = emulator.ca_der().clone();
//! assert!(!key.is_empty() && !ca_der.is_empty());
//! # let _ = (&endpoint, &id_scope);
//! // With `dps-client` (not a dependency of this crate), for instance:
//! //   let tls = TlsConfig::default().webpki_roots(false).add_root(ca_der);
//! //   let assignment = ProvisioningClient::new(id_scope, "my-device", SymmetricKey::from_base64(&key)?)
//! //       .endpoint(endpoint)
//! //       .tls(tls)
//! //       .register()
//! //       .await?;                       // assigned to the emulator's hub, `localhost`
//!
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
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
pub use hub::{
    DeviceConnectionState, DeviceIdentity, DeviceTwin, EVENT_FEED_CAPACITY, FileUploadNotification,
    HubEvent, HubEventKind, MethodInvocation, MethodResult, ModuleIdentity, TwinProperties,
};
pub use model::CloudToDeviceMessage;
pub use rest::ServiceFailure;
pub use store::StoreError;
pub use tls::TlsError;
