//! [`WebSocketTransport`]: MQTT over WebSocket over TLS, optionally through a proxy.

use async_trait::async_trait;
use dps_transport_mqtt::net::{Endpoint, tcp_connect, tcp_connect_with, within};
use dps_transport_mqtt::{ConnectOptions, MqttConnection, TimeoutStage, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::client_async_with_config;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, handshake::client::Response};
use tracing::Instrument as _;

use crate::proxy::ProxyConfig;
use crate::ws_io::WsIo;

/// The path on which DPS and IoT Hub accept MQTT over WebSocket.
pub const WEBSOCKET_PATH: &str = "/$iothub/websocket";
/// The only WebSocket subprotocol requested and accepted.
pub const MQTT_SUBPROTOCOL: &str = "mqtt";
/// The largest WebSocket message accepted (two maximal IoT Hub packets and then some).
const MAX_MESSAGE: usize = 2 << 20;

/// MQTT over WebSocket over TLS: port 443 unless the host names another, path
/// [`WEBSOCKET_PATH`], subprotocol [`MQTT_SUBPROTOCOL`] (requested, and required in the
/// answer). The TLS policy and client certificate come from the [`ConnectOptions`], as for
/// MQTT over TCP, and the same MQTT session runs inside.
///
/// Plaintext is never used: a `ws://` or `http://` host is refused with
/// [`TransportError::InsecureUrl`].
#[derive(Debug, Clone, Default)]
pub struct WebSocketTransport {
    proxy: Option<ProxyConfig>,
}

impl WebSocketTransport {
    /// The HTTPS port.
    pub const DEFAULT_PORT: u16 = 443;

    /// Connects directly.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects through an HTTP proxy with `CONNECT`; TLS runs end to end inside the tunnel.
    #[must_use]
    pub fn via_proxy(proxy: ProxyConfig) -> Self {
        Self { proxy: Some(proxy) }
    }

    /// The proxy, if any.
    #[must_use]
    pub fn proxy(&self) -> Option<&ProxyConfig> {
        self.proxy.as_ref()
    }

    async fn open_tcp(
        &self,
        target: &Endpoint,
        deadline: Instant,
        tls: &dps_transport_mqtt::TlsConfig,
    ) -> Result<tokio::net::TcpStream, TransportError> {
        let Some(proxy) = &self.proxy else {
            return within(
                deadline,
                TimeoutStage::Tcp,
                tcp_connect_with(tls, &target.host, target.port),
            )
            .await;
        };
        let at = proxy.endpoint()?;
        let mut tcp = within(deadline, TimeoutStage::Tcp, tcp_connect(&at.host, at.port)).await?;
        within(
            deadline,
            TimeoutStage::Proxy,
            proxy.open_tunnel(&mut tcp, target),
        )
        .await?;
        Ok(tcp)
    }
}

#[async_trait]
impl Transport for WebSocketTransport {
    async fn connect(&self, options: &ConnectOptions) -> Result<MqttConnection, TransportError> {
        let deadline = Instant::now() + options.connect_timeout;
        let target = Endpoint::parse(&options.host, Self::DEFAULT_PORT)?;
        let span = tracing::debug_span!(
            "websocket_connect",
            host = %target.host,
            port = target.port,
            proxy = self.proxy.is_some(),
            client_id = %options.client_id
        );
        async {
            // Each stage is boxed while it runs, and owns the stream while it does: a fleet's
            // devices wait in one stage or another, and each then holds that stage's state
            // only, not room for the largest or a second copy of the TLS stream (#16).
            let tcp = Box::pin(self.open_tcp(&target, deadline, &options.tls)).await?;
            let tls = Box::pin(within(
                deadline,
                TimeoutStage::Tls,
                options.tls.handshake(&target.host, tcp, options.identity()),
            ))
            .await?;
            let tls = Box::pin(within(
                deadline,
                TimeoutStage::WebSocket,
                upgraded(&target, tls),
            ))
            .await?;
            Box::pin(within(
                deadline,
                TimeoutStage::Connack,
                MqttConnection::handshake(WsIo::new(tls, MAX_MESSAGE), options),
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
        "websocket"
    }
}

/// [`upgrade`] over a stream it owns and hands back: the stage's box holds the stream, not the
/// attempt's future. Not an `async fn`, which would keep the stream twice.
fn upgraded<'a, S>(
    target: &'a Endpoint,
    stream: S,
) -> impl Future<Output = Result<S, TransportError>> + Send + use<'a, S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'a,
{
    let mut stream = stream;
    async move {
        upgrade(target, &mut stream).await?;
        Ok(stream)
    }
}

/// The WebSocket upgrade over an established TLS stream, performed and checked by tungstenite
/// (the request and response carry no secret). The frames that follow are this crate's own
/// ([`WsIo`]): tungstenite would trace their payloads, and the first one holds the SAS token.
///
/// The server sends nothing after its `101` until the client's MQTT CONNECT, so tungstenite has
/// read no frame bytes that the stream would lose when its wrapper is dropped here.
async fn upgrade<S>(target: &Endpoint, stream: &mut S) -> Result<(), TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let path = target.path.as_deref().unwrap_or(WEBSOCKET_PATH);
    let url = format!("wss://{}{path}", target.authority());
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| websocket(None, format!("invalid websocket url: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(MQTT_SUBPROTOCOL),
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (ws, response) = client_async_with_config(request, stream, Some(config))
        .await
        .map_err(upgrade_error)?;
    check_subprotocol(&response)?;
    // Dropping the wrapper sends nothing: the stream is handed to `WsIo` as it is.
    drop(ws);
    tracing::debug!(%path, "websocket upgraded");
    Ok(())
}

/// Requires the answer to select the `mqtt` subprotocol (tungstenite checks it too).
fn check_subprotocol(response: &Response) -> Result<(), TransportError> {
    let selected = response
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    if selected.len() == 1 && selected[0].trim().eq_ignore_ascii_case(MQTT_SUBPROTOCOL) {
        Ok(())
    } else {
        Err(websocket(
            None,
            "the server did not accept the mqtt subprotocol",
        ))
    }
}

fn websocket(status: Option<u16>, message: impl Into<String>) -> TransportError {
    TransportError::WebSocket {
        status,
        message: message.into(),
    }
}

fn upgrade_error(error: WsError) -> TransportError {
    match error {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            websocket(
                Some(status),
                format!("upgrade refused with http status {status}"),
            )
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(_)) => {
            websocket(None, "the server did not accept the mqtt subprotocol")
        }
        WsError::Io(e) => TransportError::from(e),
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::ConnectionClosed,
        other => websocket(None, other.to_string()),
    }
}
