//! [`TransportError`]: why connecting, subscribing or publishing failed, and whether to retry.

use std::fmt;
use std::io;

/// Why a transport operation failed. Messages are lowercase and never contain tokens, keys or
/// proxy credentials.
///
/// [`is_retriable`](Self::is_retriable) tells a reconnect loop whether trying again (after a
/// backoff) can help; [`is_credentials`](Self::is_credentials) singles out refused credentials,
/// which must not be retried with the same credentials forever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The host name could not be resolved (or is not a valid host name). Check the endpoint;
    /// retry later if the network is down.
    #[error("cannot resolve {host}: {message}")]
    Dns {
        /// The host name.
        host: String,
        /// What the resolver said.
        message: String,
    },
    /// A socket operation failed (connection refused, reset, unreachable network). Retry with
    /// backoff.
    #[error("i/o error ({kind}): {message}")]
    Io {
        /// The kind of I/O error.
        kind: io::ErrorKind,
        /// What went wrong.
        message: String,
    },
    /// The TLS handshake failed or the TLS configuration is invalid. [`TlsErrorKind`] says
    /// whether the server certificate is untrusted, expired or for another name, or the server
    /// speaks no allowed TLS version or cipher suite: fix the configuration (trusted roots,
    /// endpoint name, clock), do not retry blindly.
    #[error("tls {kind}: {message}")]
    Tls {
        /// The class of failure.
        kind: TlsErrorKind,
        /// rustls' description.
        message: String,
    },
    /// A stage of the connection did not finish in time (the connect timeout covers TCP, proxy,
    /// TLS, WebSocket and CONNACK together). Retry with backoff.
    #[error("timed out during {stage}")]
    Timeout {
        /// The stage that was running.
        stage: TimeoutStage,
    },
    /// The server refused the MQTT CONNECT with this CONNACK return code: 1 protocol version,
    /// 2 identifier rejected, 3 server unavailable, 4 bad user name or password, 5 not
    /// authorized. See [`is_credentials`](Self::is_credentials) and
    /// [`is_retriable`](Self::is_retriable).
    #[error("connection refused by the server (connack code {code}: {})", connack_meaning(*.code))]
    Refused {
        /// The CONNACK return code.
        code: u8,
    },
    /// The server broke the MQTT protocol (malformed or unexpected packet, oversized packet).
    /// Retry with backoff; report it if it persists.
    #[error("mqtt protocol error: {0}")]
    ProtocolError(String),
    /// The server sent a packet larger than this client accepts (1 MiB; the services send at
    /// most 256 KiB). Retrying brings the same packet: report it to whoever runs the server.
    #[error("the server sent a packet of {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The packet's size (its MQTT remaining length), in bytes.
        size: usize,
        /// The largest packet accepted, in bytes.
        limit: usize,
    },
    /// The WebSocket upgrade failed: the server answered with another HTTP status, or did not
    /// accept the `mqtt` subprotocol. Check the endpoint (path `/$iothub/websocket`).
    #[error("websocket: {message}")]
    WebSocket {
        /// The HTTP status of a refused upgrade, if the server sent one.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// The HTTP proxy refused the `CONNECT` tunnel with this status (407: proxy credentials
    /// missing or wrong). Check the proxy settings.
    #[error("proxy refused the tunnel with http status {status}")]
    Proxy {
        /// The proxy's HTTP status.
        status: u16,
    },
    /// The connection closed (by the peer, the network, a keep-alive timeout or the client)
    /// before the operation completed. [`crate::MqttConnection::close_reason`] says why. Reconnect
    /// and retry.
    #[error("the connection is closed")]
    ConnectionClosed,
    /// The operation is not supported by this client (QoS 2, an `https` proxy). Use a supported
    /// alternative.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A plaintext endpoint (`ws://`, `http://`, `mqtt://`, `tcp://`) was given: this client
    /// never connects without TLS and never downgrades. Use the TLS endpoint.
    #[error("refusing insecure endpoint {0:?}: only TLS connections are allowed")]
    InsecureUrl(String),
}

impl TransportError {
    /// True for a refused CONNECT whose code (4 bad user name or password, 5 not authorized)
    /// means the credentials were refused: get fresh credentials (or fix them) rather than
    /// retrying the same ones.
    #[must_use]
    pub fn is_credentials(&self) -> bool {
        matches!(self, Self::Refused { code: 4 | 5 })
    }

    /// Whether trying again later, unchanged, can succeed: network failures, timeouts, closed
    /// connections, protocol hiccups and "server unavailable" are; refused credentials, TLS
    /// certificate and policy failures, insecure or unsupported settings and 4xx answers are
    /// not.
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Dns { .. }
            | Self::Io { .. }
            | Self::Timeout { .. }
            | Self::ProtocolError(_)
            | Self::ConnectionClosed => true,
            Self::Tls { kind, .. } => kind.is_transient(),
            Self::Refused { code } => *code == 3,
            Self::WebSocket { status, .. } => !matches!(status, Some(400..=499)),
            Self::Proxy { status } => !(400..=499).contains(status),
            Self::Unsupported(_) | Self::InsecureUrl(_) | Self::TooLarge { .. } => false,
        }
    }

    /// Maps an I/O error, recognising TLS failures wrapped in it by tokio-rustls.
    pub(crate) fn from_io(error: &io::Error) -> Self {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return crate::tls::classify(tls);
        }
        Self::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

impl From<io::Error> for TransportError {
    fn from(error: io::Error) -> Self {
        Self::from_io(&error)
    }
}

fn connack_meaning(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown code",
    }
}

/// The stage a [`TransportError::Timeout`] happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutStage {
    /// Resolving the host and opening the TCP connection.
    Tcp,
    /// The HTTP `CONNECT` exchange with a proxy.
    Proxy,
    /// The TLS handshake.
    Tls,
    /// The WebSocket upgrade.
    WebSocket,
    /// Waiting for CONNACK.
    Connack,
    /// Waiting for SUBACK.
    Subscribe,
}

impl fmt::Display for TimeoutStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp connect",
            Self::Proxy => "proxy connect",
            Self::Tls => "tls handshake",
            Self::WebSocket => "websocket upgrade",
            Self::Connack => "mqtt connect",
            Self::Subscribe => "mqtt subscribe",
        })
    }
}

/// The class of a [`TransportError::Tls`] failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The server certificate does not chain to a trusted root. Trust the right root
    /// ([`crate::TlsConfig::add_root`]); never disable verification.
    UnknownIssuer,
    /// The server certificate (or one of its issuers) has expired, or the local clock is wrong.
    Expired,
    /// The server certificate is not valid yet, or the local clock is wrong.
    NotYetValid,
    /// The server certificate is for another host name: check the endpoint.
    WrongName,
    /// The server certificate is otherwise unacceptable (bad signature, encoding, usage,
    /// revoked).
    BadCertificate,
    /// The server speaks no TLS version this client allows (TLS 1.2 and 1.3).
    UnsupportedVersion,
    /// No cipher suite or other handshake parameter both sides accept (the server offered or
    /// required a suite outside the policy).
    Negotiation,
    /// The server aborted the handshake with an alert (for example because it refused the
    /// client certificate).
    AlertReceived,
    /// The server sent something TLS does not allow.
    PeerMisbehaved,
    /// The local TLS configuration is invalid (a root or client key that does not parse, an
    /// out-of-range fragment size).
    Configuration,
    /// Any other TLS failure.
    Other,
}

impl TlsErrorKind {
    /// Failures that may go away on their own (alerts, misbehaving peers).
    fn is_transient(self) -> bool {
        matches!(
            self,
            Self::AlertReceived | Self::PeerMisbehaved | Self::Other
        )
    }
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownIssuer => "untrusted server certificate",
            Self::Expired => "expired server certificate",
            Self::NotYetValid => "server certificate not yet valid",
            Self::WrongName => "server certificate for another name",
            Self::BadCertificate => "bad server certificate",
            Self::UnsupportedVersion => "unsupported protocol version",
            Self::Negotiation => "negotiation failure",
            Self::AlertReceived => "alert from the server",
            Self::PeerMisbehaved => "peer misbehaved",
            Self::Configuration => "configuration error",
            Self::Other => "failure",
        })
    }
}
