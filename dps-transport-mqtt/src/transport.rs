//! The [`Transport`] trait: how the provisioning and hub clients open connections.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::TransportError;
use crate::options::ConnectOptions;
use crate::session::MqttConnection;

/// Opens MQTT connections: [`MqttTransport`](crate::MqttTransport) (TLS on 8883) or
/// `dps_transport_ws::WebSocketTransport` (WebSocket over TLS on 443, optionally through a
/// proxy). Both produce the same [`MqttConnection`].
///
/// Each call is one attempt, bounded by [`ConnectOptions::connect_timeout`]; reconnecting and
/// backing off are the caller's job (with fresh credentials every time).
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Opens a connection: TCP, TLS (with the options' policy and client certificate),
    /// whatever framing the transport adds, then MQTT CONNECT/CONNACK.
    ///
    /// # Errors
    /// A [`TransportError`]; see [`TransportError::is_retriable`].
    async fn connect(&self, options: &ConnectOptions) -> Result<MqttConnection, TransportError>;

    /// The port used when [`ConnectOptions::host`] has none.
    fn default_port(&self) -> u16;

    /// A short name for logs and errors (`"mqtt"`, `"websocket"`).
    fn name(&self) -> &'static str;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn connect(&self, options: &ConnectOptions) -> Result<MqttConnection, TransportError> {
        (**self).connect(options).await
    }

    fn default_port(&self) -> u16 {
        (**self).default_port()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Box<T> {
    async fn connect(&self, options: &ConnectOptions) -> Result<MqttConnection, TransportError> {
        (**self).connect(options).await
    }

    fn default_port(&self) -> u16 {
        (**self).default_port()
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}
