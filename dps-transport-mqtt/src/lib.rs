//! # dps-transport-mqtt
//!
//! MQTT 3.1.1 over TLS (port 8883) for Azure IoT Device Provisioning Service (DPS) and IoT Hub
//! devices, and what every transport of the family shares:
//!
//! - [`Transport`]: opens one connection per call; implemented by [`MqttTransport`] here and by
//!   `WebSocketTransport` in `dps-transport-ws` (port 443, optionally through an HTTP proxy).
//! - [`ConnectOptions`]: host, client id, user name, [`Credentials`](dps_auth::Credentials)
//!   (a SAS token becomes the MQTT password; an X.509 identity is presented in the TLS handshake
//!   with its full chain), keep-alive, clean session, connect and subscribe timeouts, TLS.
//! - [`TlsConfig`]: the TLS policy of Azure IoT (TLS 1.2+, strong suites only, webpki roots,
//!   private roots, ECC-only, maximum fragment size) on rustls with the *ring* provider.
//! - [`MqttConnection`]: the MQTT session (keep-alive, QoS 0 and 1, subscriptions) over any
//!   byte stream, with [`MqttSender`] handles for concurrent publishing. An incoming QoS 1
//!   publish is never acknowledged on its own: [`MqttSender::ack`] sends its PUBACK when the
//!   receiver says it was delivered (the state machines of `dps-core` decide). Dropping it closes the
//!   connection cleanly; outstanding operations then fail with
//!   [`TransportError::ConnectionClosed`], so nothing waits forever.
//! - [`TransportError`]: typed failures with [`is_retriable`](TransportError::is_retriable) and
//!   [`is_credentials`](TransportError::is_credentials).
//!
//! The packets are encoded and decoded by rumqttc's codec (`mqttbytes::v4`); rumqttc's client
//! and its TLS stack are not used. No aws-lc-rs, no OpenSSL.
//!
//! ## Example: register with DPS over MQTT
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_auth::{Authenticator, SasResource, SymmetricKey};
//! use dps_transport_mqtt::{ConnectOptions, Incoming, MqttTransport, QoS, Transport};
//!
//! let (scope, registration_id) = ("0ne00000A0A", "my-device");
//! let key = SymmetricKey::from_base64("a2V5MQ==")?;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let credentials = key.credentials(&SasResource::dps(scope, registration_id), now)?;
//!
//! let options = ConnectOptions::new(
//!     "global.azure-devices-provisioning.net",
//!     registration_id,
//!     format!("{scope}/registrations/{registration_id}/api-version=2019-03-31"),
//!     credentials,
//! );
//! let mut connection = MqttTransport::new().connect(&options).await?;
//! connection
//!     .subscribe(&[("$dps/registrations/res/#", QoS::AtLeastOnce)])
//!     .await?;
//! connection
//!     .publish(
//!         "$dps/registrations/PUT/iotdps-register/?$rid=1",
//!         format!(r#"{{"registrationId":"{registration_id}"}}"#),
//!         QoS::AtLeastOnce,
//!     )
//!     .await?;
//! if let Some(Incoming::Publish { topic, payload, packet_id, .. }) = connection.recv().await {
//!     println!("{topic}: {}", String::from_utf8_lossy(&payload));
//!     // Nothing is acknowledged behind your back: PUBACK once the message is yours.
//!     if let Some(packet_id) = packet_id {
//!         connection.ack(packet_id)?;
//!     }
//! }
//! connection.disconnect().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alarm;
mod error;
mod external_key;
mod mqtt_transport;
pub mod net;
mod options;
mod resolve;
mod session;
mod signal;
mod tls;
mod transport;

pub use alarm::Alarm;
pub use error::{TimeoutStage, TlsErrorKind, TransportError};
pub use mqtt_transport::MqttTransport;
pub use options::ConnectOptions;
pub use session::{
    CloseReason, Incoming, MqttConnection, MqttSender, PublishOutcomes, QoS, Session,
};
pub use signal::Signal;
pub use tls::TlsConfig;
pub use transport::Transport;

/// The byte buffer type of payloads.
pub use bytes::Bytes;
/// The TLS crates this crate's API exposes ([`TlsConfig::client_config`],
/// [`TlsConfig::handshake`]).
pub use {rustls, tokio_rustls};
