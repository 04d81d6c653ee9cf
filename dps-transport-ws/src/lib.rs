//! # dps-transport-ws
//!
//! MQTT over WebSocket over TLS for Azure IoT Device Provisioning Service (DPS) and IoT Hub
//! devices: port 443, path `/$iothub/websocket`, subprotocol `mqtt`, for networks where only
//! HTTPS gets out, optionally through an HTTP `CONNECT` proxy with basic authentication.
//!
//! [`WebSocketTransport`] implements [`Transport`](dps_transport_mqtt::Transport) from
//! `dps-transport-mqtt` and reuses everything there: the TLS policy
//! ([`TlsConfig`](dps_transport_mqtt::TlsConfig): TLS 1.2+, strong suites, webpki roots,
//! client certificates with their chain), done by this crate over the TCP (or tunnelled)
//! stream before the upgrade, and the MQTT session
//! ([`MqttConnection`](dps_transport_mqtt::MqttConnection)), which runs over the WebSocket's
//! binary messages. Code written against the trait works with either transport.
//!
//! The answer to the upgrade must select the `mqtt` subprotocol; `ws://` and `http://`
//! endpoints are refused ([`TransportError::InsecureUrl`](dps_transport_mqtt::TransportError::InsecureUrl)),
//! never downgraded. Proxy credentials never appear in `Debug` output or logs.
//!
//! ## Example: through a corporate proxy
//!
//! ```no_run
//! # async fn example(credentials: dps_auth::Credentials) -> Result<(), Box<dyn std::error::Error>> {
//! use dps_transport_mqtt::{ConnectOptions, QoS, Transport};
//! use dps_transport_ws::{ProxyConfig, WebSocketTransport};
//!
//! let transport = WebSocketTransport::via_proxy(
//!     ProxyConfig::new("http://proxy.corp.example:3128").with_basic_auth("alice", "s3cret"),
//! );
//! let options = ConnectOptions::new(
//!     "global.azure-devices-provisioning.net",
//!     "my-device",
//!     "0ne00000A0A/registrations/my-device/api-version=2019-03-31",
//!     credentials,
//! );
//! let connection = transport.connect(&options).await?;
//! connection
//!     .subscribe(&[("$dps/registrations/res/#", QoS::AtLeastOnce)])
//!     .await?;
//! connection.disconnect().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod frame;
mod proxy;
mod transport;
mod ws_io;

pub use proxy::ProxyConfig;
pub use transport::{MQTT_SUBPROTOCOL, WEBSOCKET_PATH, WebSocketTransport};
