//! A local Azure IoT Hub Device Provisioning Service (DPS) and IoT Hub emulator that speaks the
//! real wire protocol, so the official device and service SDKs run against it unmodified.
//!
//! This crate provides the frame the emulator is built on:
//!
//! - [`tls`]: the emulator's own CA and server certificate, created on first start and persisted
//!   in the data directory ([`TlsMaterial`]), and the rustls configuration (TLS 1.2/1.3, strong
//!   suites only, optional client certificates).
//! - [`net`]: the listeners ([`Servers`]): MQTT 3.1.1 over TLS on the MQTT port, and on the HTTPS
//!   port both REST ([`HttpHandler`]) and MQTT over WebSocket at `/$iothub/websocket`. The DPS and
//!   IoT Hub logic plugs in through [`MqttHandler`]/[`MqttSession`] and [`HttpHandler`].
//! - [`persist`]: atomic, crash-safe state files ([`JsonFile`]).
//! - [`hub`]: the emulated IoT Hub (device side and service API); managed from Rust through
//!   [`Emulator`] (`create_device`, `update_twin`, `invoke_method`, `send_c2d`, `hub_events`).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn example(mqtt: Arc<dyn dps_emulator::MqttHandler>, http: Arc<dyn dps_emulator::HttpHandler>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use dps_emulator::{ServerOptions, Servers, TlsMaterial};
//!
//! let tls = TlsMaterial::load_or_create(std::path::Path::new("./.dps-emulator"), "localhost")?;
//! let servers = Servers::start(ServerOptions::new(tls.server_config(), mqtt, http)).await?;
//! println!("MQTT on {}, HTTPS on {}", servers.mqtt_addr(), servers.https_addr());
//! servers.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod azurite;
pub mod blob;
pub mod cli;
pub mod config;
pub mod dps;
mod emulator;
pub mod hub;
pub mod model;
pub mod net;
pub mod persist;
pub mod service;
mod state;
pub mod tls;
mod util;

pub use net::{
    Close, CloseReason, ConnectRequest, ConnectReturnCode, HttpHandler, HttpRequest, HttpResponse,
    MqttHandler, MqttSession, Outbox, OutboxError, Outgoing, QoS, ServerOptions, Servers,
    SubscribeOutcome, Transport,
};
pub use persist::{JsonFile, PersistError, write_atomic};
pub use tls::{TlsError, TlsMaterial};

pub use blob::{FileUploadConfig, StorageAccount};
pub use config::{Behaviour, ConfigError, ConfigFile, DEFAULT_ID_SCOPE, EmulatorConfig};
pub use dps::faults::{Faults, InjectStatus, RateLimit};
pub use emulator::{Emulator, EmulatorError, EmulatorInfo};
pub use hub::{
    CloudToDeviceMessage, ConnectionState, Device, FileUploadNotification, HubEvent, HubEventKind,
    MethodInvocation, MethodResult, Module, Twin,
};
pub use service::ServiceFailure;
pub use state::StoreError;
