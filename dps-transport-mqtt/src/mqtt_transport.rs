//! [`MqttTransport`]: MQTT over TLS on port 8883.

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::error::{TimeoutStage, TransportError};
use crate::net::{Endpoint, tcp_connect_with, within};
use crate::options::ConnectOptions;
use crate::session::MqttConnection;
use crate::transport::Transport;

/// MQTT 3.1.1 over TLS, port 8883 unless the host names another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttTransport {
    _private: (),
}

impl MqttTransport {
    /// The IANA port of MQTT over TLS.
    pub const DEFAULT_PORT: u16 = 8883;

    /// The transport.
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

#[async_trait]
impl Transport for MqttTransport {
    async fn connect(&self, options: &ConnectOptions) -> Result<MqttConnection, TransportError> {
        let deadline = Instant::now() + options.connect_timeout;
        let endpoint = Endpoint::parse(&options.host, Self::DEFAULT_PORT)?;
        let span = tracing::debug_span!(
            "mqtt_connect",
            host = %endpoint.host,
            port = endpoint.port,
            client_id = %options.client_id
        );
        async {
            // Each stage is boxed while it runs: a fleet's devices wait in one stage or
            // another (for the address, for TCP, for the service's TLS and CONNACK), and each
            // then holds that stage's state only, not room for the largest (#16).
            let tcp = Box::pin(within(
                deadline,
                TimeoutStage::Tcp,
                tcp_connect_with(&options.tls, &endpoint.host, endpoint.port),
            ))
            .await?;
            let tls = Box::pin(within(
                deadline,
                TimeoutStage::Tls,
                options
                    .tls
                    .handshake(&endpoint.host, tcp, options.identity()),
            ))
            .await?;
            Box::pin(within(
                deadline,
                TimeoutStage::Connack,
                MqttConnection::handshake(tls, options),
            ))
            .await
        }
        .instrument(span)
        .await
    }

    fn default_port(&self) -> u16 {
        Self::DEFAULT_PORT
    }

    fn name(&self) -> &'static str {
        "mqtt"
    }
}
