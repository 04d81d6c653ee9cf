//! # hub-client
//!
//! The Azure IoT Hub device (and module) client: telemetry, cloud-to-device messages, device
//! twin, direct methods, module inputs and outputs, over MQTT/TLS (8883) or MQTT/WebSocket
//! (443, optionally through an HTTP proxy).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_auth::SymmetricKey;
//! use dps_client::ProvisioningClient;
//! use hub_client::{HubClient, Message};
//!
//! // Provision, then connect to the assigned hub with the same key.
//! let key = SymmetricKey::from_base64("c2VjcmV0LWtleS1vZi10aGUtZW5yb2xsbWVudA==")?;
//! let assignment = ProvisioningClient::new("0ne00000A0A", "my-device", key.clone())
//!     .register()
//!     .await?;
//! let hub = HubClient::from_registration(&assignment, key).connect().await?;
//!
//! // Telemetry: resolves when the hub acknowledged it.
//! hub.send(
//!     Message::json(&serde_json::json!({ "temperature": 21.5 }))?.property("alert", "false"),
//! )
//! .await?;
//!
//! // Twin: report, and follow desired changes (the full twin again after every reconnect).
//! let version = hub.update_reported(&serde_json::json!({ "firmware": "1.2.0" })).await?;
//! println!("reported version {version}");
//! let mut desired = hub.desired_patches()?;
//! let mut methods = hub.method_requests()?;
//! tokio::select! {
//!     Some(update) = desired.recv() => println!("desired now at {:?}", update.version()),
//!     Some(request) = methods.recv() => {
//!         let answer = serde_json::json!({ "ok": true });
//!         request.respond(200, answer).await?;
//!     }
//! }
//! hub.close().await;
//! # Ok(()) }
//! ```
//!
//! Or from a connection string:
//! `HubClient::from_connection_string("HostName=..;DeviceId=..;SharedAccessKey=..")?.connect()`.
//!
//! ## What it does for you
//! - **Never loses an accepted message**: QoS 1 with a bounded in-flight window (16); a bounded
//!   offline queue (1000) holds messages while disconnected, with optional per-message expiry;
//!   messages whose PUBACK was lost to a dropped connection go again (at least once: set a
//!   [message id](Message::message_id) to de-duplicate). A full queue is an immediate
//!   [`SendError::QueueFull`]; nothing blocks forever. The 256 KiB limit is checked first.
//! - **Stays connected**: proactive SAS renewal at a jittered 70–80 % of the token lifetime
//!   (no expired-token disconnect loops, no fleet renewing in lockstep); reconnects with
//!   exponential backoff and jitter; a publish without PUBACK for a minute replaces a silent
//!   connection; bad credentials and disabled devices (CONNACK 4/5) stop it with a typed reason
//!   instead of burning quota.
//! - **Acknowledges only what you have**: a cloud-to-device message, input, desired patch or
//!   method request is acknowledged once its stream took it; a full stream holds it and pauses
//!   reading from the hub (the hub keeps it and its queue pushes back), never drops it. With
//!   [`manual_completion`](HubClientBuilder::manual_completion), only when you
//!   [complete](Delivered::complete) it.
//! - **Misses nothing after a reconnect**: every topic is subscribed again when the hub kept no
//!   session, and the twin is read again ([`DesiredUpdate::Resync`], with the number of desired
//!   versions missed).
//! - **Tells you what happens**: a stream of [`ConnectionState`] changes with typed reasons;
//!   `tracing` spans per client; keys and tokens never appear in logs or errors.
//! - **Scales**: one tokio task per client, no thread per device.
//!
//! ## File upload
//! With the default `file-upload` feature, [`upload`] uploads files through the hub as the
//! official SDKs do (a blob SAS URI from the hub, the Blob REST API, the notification), over
//! HTTPS with the same TLS policy, proxy and credentials:
//! `hub.file_upload().build()?.upload_path("logs/today.log", path).await?`.
//!
//! QoS 2, which IoT Hub answers by closing the connection, cannot be expressed:
//!
//! ```compile_fail
//! let qos = dps_core::mqtt::QoS::ExactlyOnce;
//! ```
//!
//! ## Layers
//! - `dps_core::hub::HubSession`: the sans-IO session, every rule above as a deterministic
//!   state machine with injected time and randomness; use it directly with your own network
//!   stack.
//! - `dps-runtime`: the one tokio driver both clients run on, with the [`Clock`] and
//!   [`Entropy`] the builder takes.
//! - [`HubClient`]: the public handle over that driver over `dps-transport-mqtt`'s [`Transport`] (MQTT/TLS) or
//!   `dps-transport-ws`'s `WebSocketTransport`, with `dps-auth` credentials (symmetric keys,
//!   X.509, or any [`Authenticator`]) minted afresh on every connect.
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod app;
mod backlog;
mod builder;
mod client;
mod completion;
mod config_error;
mod connection_string;
mod desired;
pub mod device;
mod error;
mod host;
mod lazy_stream;
mod method;
pub mod pnp;
mod streams;
#[cfg(feature = "file-upload")]
#[cfg_attr(docsrs, doc(cfg(feature = "file-upload")))]
pub mod upload;

pub use builder::HubClientBuilder;
pub use client::{HubClient, SendReceipt, USER_AGENT};
pub use completion::{Completion, Delivered};
pub use config_error::{ConfigError, ConfigProblem};
pub use connection_string::ConnectionString;
pub use desired::DesiredUpdate;
pub use error::{HubError, StreamTaken};
pub use method::MethodRequest;
pub use streams::Subscription;

pub use dps_auth::{AuthError, Authenticator, SasAuthenticator, SymmetricKey};
pub use dps_core::dps::registration::Assignment;
pub use dps_core::hub::{
    Backoff, ConnectionState, DisconnectReason, Features, Heartbeat, Message, MessageId,
    ReceivedMessage, Renewal, SendError, SessionConfig, StopReason, SystemProperty, Twin,
    TwinError,
};
pub use dps_core::ids::{IdError, IdKind};
pub use dps_runtime::{Clock, Entropy, FixedEntropy, OsEntropy, SystemClock};

pub use dps_transport_mqtt::{MqttTransport, TlsConfig, Transport, TransportError};
#[cfg(any(feature = "websocket", feature = "file-upload"))]
pub use dps_transport_ws::ProxyConfig;
#[cfg(feature = "websocket")]
pub use dps_transport_ws::WebSocketTransport;
