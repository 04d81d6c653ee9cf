//! # dps-client
//!
//! The async client of the Azure IoT Hub Device Provisioning Service (DPS): a device, or a
//! gateway speaking for thousands of devices, registers and learns which IoT Hub it was assigned
//! to.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_auth::GroupKey;
//! use dps_client::ProvisioningClient;
//!
//! // A device of a symmetric-key enrollment group: its key is derived from the group key.
//! let group = GroupKey::from_base64("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")?;
//! let device_key = group.derive("sensor-0042")?;
//! let assignment = ProvisioningClient::new("0ne00000A0A", "sensor-0042", device_key)
//!     .model_id("dtmi:com:example:Thermostat;1")
//!     .register()
//!     .await?;
//! println!("{} on {}", assignment.device_id(), assignment.assigned_hub());
//! # Ok(()) }
//! ```
//!
//! ## What it does for you
//! The protocol rules live in `dps-core`'s state machine; this crate only moves bytes and tells
//! time. So every rule holds here: `retry-after` honoured on every 202 and clamped, 429 and 5xx
//! retried with backoff and jitter, lost responses re-sent with a new `$rid`, stale and
//! duplicate responses ignored, fresh credentials on every (re)connect, bad credentials never
//! retried, an overall deadline, and a typed [`ProvisioningError`] for every other ending.
//!
//! ## Transports
//! MQTT over TLS on 8883 ([`MqttTransport`], the default) or MQTT over WebSocket on 443 with an
//! optional HTTP proxy (`dps_transport_ws::WebSocketTransport`, feature `websocket`). Both use
//! the [`TlsConfig`] policy: TLS 1.2 minimum, strong suites only, public roots plus any private
//! root you add (the local emulator's CA, for example).
//!
//! ## Fleets
//! [`ProvisioningClient`] is cheap to clone and `register()` can run concurrently: provision a
//! fleet with `futures::stream::iter(ids).map(|id| ...register()).buffer_unordered(500)`. There
//! is no global state and no thread per registration. Configure the endpoint, TLS, transport
//! and timing once in a [`ProvisioningClient::template`], then stamp each device's client with
//! [`for_device`](ProvisioningClient::for_device) (see `examples/provision_fleet.rs`);
//! `hub_client::HubClientBuilder::for_device` does the same for the hub.
//!
//! ## Configuration errors
//! A configuration that cannot work fails `register()` with [`ProvisioningError::Config`]
//! before any connection, listing every [`ConfigProblem`] found, not only the first.
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod app;
mod client;
mod config_error;
mod error;

pub use client::{ProvisioningClient, USER_AGENT};
pub use config_error::{ConfigError, ConfigProblem};
pub use dps_auth::{AuthError, Authenticator, GroupKey, SymmetricKey};
pub use dps_core::dps::registration::{Assignment, RetryReason, Timing};
pub use dps_core::dps::{
    DeviceRegistrationResult, ErrorCode, ResponseError, ServiceError, Substatus,
};
pub use dps_core::mqtt::ConnectFailure;
pub use dps_runtime::{Clock, Entropy, FixedEntropy, OsEntropy, SystemClock};
pub use dps_transport_mqtt::{MqttTransport, TlsConfig, Transport, TransportError};
#[cfg(feature = "websocket")]
pub use dps_transport_ws::{ProxyConfig, WebSocketTransport};
pub use error::{ConnectError, ProvisioningError};
