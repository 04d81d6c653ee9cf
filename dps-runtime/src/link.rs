//! How to open a connection, and why the last attempt failed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dps_auth::{AuthError, Authenticator, Credentials, SasResource};
use dps_transport_mqtt::{ConnectOptions, TlsConfig, Transport, TransportError};

/// Everything the driver needs to open a connection: the transport, the endpoint, the MQTT
/// identity, and the authenticator that mints fresh credentials for every connect.
#[derive(Clone)]
#[non_exhaustive]
pub struct Link {
    /// MQTT over TLS, MQTT over WebSocket, ...
    pub transport: Arc<dyn Transport>,
    /// Mints the credentials of each connection.
    pub authenticator: Arc<dyn Authenticator>,
    /// What the SAS tokens are scoped to.
    pub resource: SasResource,
    /// `host` or `host:port`.
    pub endpoint: String,
    /// The MQTT client id.
    pub client_id: String,
    /// The MQTT user name.
    pub username: String,
    /// The MQTT keep-alive.
    pub keep_alive: Duration,
    /// The TLS policy and trusted roots.
    pub tls: TlsConfig,
    /// Bound on one connection attempt (TCP, TLS, WebSocket, CONNACK).
    pub connect_timeout: Duration,
    /// Bound on the SUBACK wait.
    pub subscribe_timeout: Duration,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("transport", &self.transport.name())
            .field("authenticator", &self.authenticator)
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `endpoint` over `transport` as `client_id` / `username`, authenticating with
    /// `authenticator` for `resource`; keep-alive 240 s, connect and subscribe timeouts 30 s,
    /// the default TLS policy.
    pub fn new(
        transport: Arc<dyn Transport>,
        authenticator: Arc<dyn Authenticator>,
        resource: SasResource,
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        username: impl Into<String>,
    ) -> Self {
        Self {
            transport,
            authenticator,
            resource,
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            username: username.into(),
            keep_alive: Duration::from_secs(240),
            tls: TlsConfig::default(),
            connect_timeout: Duration::from_secs(30),
            subscribe_timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn options(&self, credentials: Credentials, clean_session: bool) -> ConnectOptions {
        let mut options = ConnectOptions::new(
            self.endpoint.clone(),
            self.client_id.clone(),
            self.username.clone(),
            credentials,
        );
        options.keep_alive = self.keep_alive;
        options.clean_session = clean_session;
        options.connect_timeout = self.connect_timeout;
        options.subscribe_timeout = self.subscribe_timeout;
        options.tls = self.tls.clone();
        // The driver polls the session itself (`driver.rs`).
        options.inline_session = true;
        options
    }
}

/// Where each connection goes: asked before every connect, with the machine that wants it.
///
/// A [`Link`] is a connector that always answers itself (a DPS registration, a hub session).
/// A machine whose connections go to different places (the device lifecycle: DPS, then the
/// assigned hub, with one credential after another) gets a connector that reads the machine's
/// target and answers the matching link.
pub trait Connector<M>: Send + 'static {
    /// The link for the connection `machine` asks for now; `None` when there is nowhere to
    /// connect to (the attempt fails as unrecoverable).
    fn link(&mut self, machine: &M) -> Option<&Link>;
}

impl<M> Connector<M> for Link {
    fn link(&mut self, _machine: &M) -> Option<&Link> {
        Some(self)
    }
}

/// Why the last connection attempt failed, kept for the clients' error messages.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// The transport failed (TCP, TLS, WebSocket, proxy, CONNACK).
    Transport(TransportError),
    /// The authenticator could not produce credentials.
    Credentials(AuthError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(error) => write!(f, "transport: {error}"),
            Self::Credentials(error) => write!(f, "credentials: {error}"),
        }
    }
}
