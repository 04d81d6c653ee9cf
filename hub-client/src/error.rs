//! Why a client could not be built or connected.

use dps_auth::AuthError;
use dps_transport_mqtt::TransportError;

use dps_core::hub::StopReason;

use crate::config_error::ConfigError;

/// A client that could not be built or connected. Messages never contain keys or tokens.
///
/// Runtime failures after the first connection are not errors: the client reconnects by itself
/// and reports them as [`ConnectionState`](crate::ConnectionState) changes; operations fail with
/// [`SendError`](crate::SendError) or [`TwinError`](crate::TwinError).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The hub refused the connection: CONNACK 5 (not authorized: wrong, expired or unknown key
    /// or certificate, unknown or **disabled** device), 4 (bad user name or password), 2 or 1.
    /// Retrying will not help: check the key, the device id and the hub name, and that the
    /// device is enabled (or provision it again).
    #[error(
        "the hub refused the connection (connack {code}): check the credentials, the device id and that the device is enabled"
    )]
    Refused {
        /// The CONNACK return code.
        code: u8,
    },
    /// The connection cannot work as configured (untrusted or expired server certificate, wrong
    /// host name, insecure URL, proxy refusal). Fix the endpoint or the trusted roots.
    #[error("transport: {0}")]
    Transport(#[source] TransportError),
    /// The authenticator could not produce credentials (a signer failed, an unusable id).
    #[error("credentials: {0}")]
    Credentials(#[source] AuthError),
    /// The first connection did not come up in time; `last` is the last failure (network down,
    /// DNS, timeouts). Try again later.
    #[error("could not connect in time{}", last.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// The last connection failure, if there was one.
        last: Option<TransportError>,
    },
    /// The client stopped before its first connection for another reason (for example the
    /// configured maximum number of attempts was reached, or it was closed).
    #[error("the client stopped before connecting: {0}")]
    Stopped(StopReason),
    /// A connection string could not be used. The message names the problem, never the key.
    #[error("invalid connection string: {0}")]
    ConnectionString(String),
    /// The configuration cannot work (an empty host, an invalid device or module id): every
    /// problem found, not only the first.
    #[error("invalid configuration: {0}")]
    Config(#[source] ConfigError),
}

impl HubError {
    /// True when trying again later, unchanged, may succeed.
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Transport(e) => e.is_retriable(),
            Self::Credentials(e) => e.is_retriable(),
            Self::Stopped(StopReason::RetriesExhausted { .. }) => true,
            _ => false,
        }
    }
}

/// A stream of the client was taken a second time. Each stream can be taken once: keep the
/// [`Subscription`](crate::Subscription) the first call returned (and share what it yields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {stream} stream was already taken: each stream of a client can be taken once")]
#[non_exhaustive]
pub struct StreamTaken {
    /// Which stream: "cloud-to-device message", "input message", "desired-property",
    /// "method request" or "connection state".
    pub stream: &'static str,
}

/// The receiver of a stream, or [`StreamTaken`] when an earlier call took it.
pub(crate) fn take_stream<R>(receiver: Option<R>, stream: &'static str) -> Result<R, StreamTaken> {
    receiver.ok_or(StreamTaken { stream })
}
