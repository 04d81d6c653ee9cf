//! The emulator's network frame (TLS listeners, the MQTT 3.1.1 server over TLS and WebSocket,
//! the HTTPS server) for frame-level tests of this workspace: they plug in their own handlers
//! and speak raw MQTT or WebSocket to it. Not part of the supported API; it changes without
//! notice.

pub use crate::net::{
    Close, CloseReason, ConnectRequest, ConnectReturnCode, DEFAULT_MAX_HTTP_BODY_SIZE,
    DEFAULT_MAX_PACKET_SIZE, DEFAULT_TLS_HANDSHAKE_TIMEOUT, HttpHandler, HttpRequest, HttpResponse,
    ListenerTransport, MqttHandler, MqttSession, Outbox, OutboxError, Outgoing, PublishAck,
    QoS as PublishQoS, ServerOptions, Servers, SubscribeOutcome, WEBSOCKET_PATH, percent_decode,
};
pub use crate::tls::{TlsMaterial, allowed_cipher_suites};
