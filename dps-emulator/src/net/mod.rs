//! The network frame: TLS listeners, the MQTT 3.1.1 server (over TLS and over WebSocket) and the
//! HTTPS server, with the handler traits the application implements.
//!
//! - [`MqttHandler`] / [`MqttSession`]: what happens on CONNECT and on each packet afterwards.
//! - [`HttpHandler`]: every HTTPS request except the WebSocket upgrade on [`WEBSOCKET_PATH`].
//! - [`Servers::start`] binds both ports and runs until [`Servers::shutdown`].

mod gate;
mod http;
mod https_server;
mod listener;
mod mqtt;
mod mqtt_connection;
mod packet_io;
mod read_budget;
mod websocket;
mod write_timeout;

pub use self::http::{HttpHandler, HttpRequest, HttpResponse, percent_decode};
pub use self::listener::{
    DEFAULT_MAX_HTTP_BODY_SIZE, DEFAULT_MAX_PACKET_SIZE, DEFAULT_TLS_HANDSHAKE_TIMEOUT,
    ServerOptions, Servers,
};
pub use self::mqtt::{
    Close, CloseReason, ConnectRequest, ConnectReturnCode, ListenerTransport, MqttHandler,
    MqttSession, Outbox, OutboxError, Outgoing, PublishAck, QoS, SubscribeOutcome,
};
pub use self::websocket::WEBSOCKET_PATH;

/// Resolves when shutdown is signalled, or when its sender is gone (which also means shutdown).
/// Returns `()` so no watch guard is held across an await.
pub(crate) async fn wait_shutdown(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
