//! [`ConnectOptions`]: what a transport needs to open one MQTT connection.

use std::fmt;
use std::time::Duration;

use dps_auth::Credentials;

use crate::tls::TlsConfig;

/// Everything one connection attempt needs. Build with [`new`](Self::new) and adjust the public
/// fields or the `with_*` methods; ask the authenticator for fresh
/// [`Credentials`] before every attempt.
///
/// `Debug` shows the kind of credentials, never the token.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The endpoint: the TCP host and the TLS server name, optionally with `:port` (which
    /// overrides the transport's [default port](crate::Transport::default_port)). A
    /// `scheme://` prefix is accepted only for TLS schemes (`mqtts`, `ssl`, `wss`, `https`);
    /// plaintext ones are refused.
    pub host: String,
    /// The MQTT client id (DPS: the registration id; hub: the device id).
    pub client_id: String,
    /// The MQTT user name.
    pub username: String,
    /// `Sas(token)`: the token is the MQTT password. `X509(identity)`: the certificate and its
    /// chain are presented in the TLS handshake and no password is sent.
    pub credentials: Credentials,
    /// The MQTT keep-alive (default 240 s, rounded up to whole seconds, at most
    /// [`MAX_KEEP_ALIVE`](Self::MAX_KEEP_ALIVE)); zero disables keep-alive.
    pub keep_alive: Duration,
    /// MQTT clean session (default `true`).
    pub clean_session: bool,
    /// Bound on the whole connection: TCP, proxy, TLS, WebSocket and CONNACK (default 30 s).
    pub connect_timeout: Duration,
    /// Bound on waiting for SUBACK (default 10 s).
    pub subscribe_timeout: Duration,
    /// The TLS policy and trusted roots.
    pub tls: TlsConfig,
    /// Whether the caller runs the connection's session itself (default `false`: a task is
    /// spawned for it). With `true`, [`MqttConnection::take_session`](crate::MqttConnection::take_session)
    /// hands over the future that reads, writes and keeps the connection alive, and nothing
    /// happens on the connection until it is polled: for a driver that already multiplexes
    /// its work in one task, this saves a task per connection and a cross-task wake-up per
    /// batch of packets.
    pub inline_session: bool,
}

impl ConnectOptions {
    /// The default keep-alive: 240 s, as the Azure SDKs use.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(240);
    /// The largest keep-alive IoT Hub accepts: 1177 s (29.45 minutes).
    pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(1177);
    /// The default connect timeout: 30 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The default subscribe timeout: 10 s.
    pub const DEFAULT_SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

    /// Options with the defaults above and the default [`TlsConfig`].
    pub fn new(
        host: impl Into<String>,
        client_id: impl Into<String>,
        username: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            host: host.into(),
            client_id: client_id.into(),
            username: username.into(),
            credentials,
            keep_alive: Self::DEFAULT_KEEP_ALIVE,
            clean_session: true,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            subscribe_timeout: Self::DEFAULT_SUBSCRIBE_TIMEOUT,
            tls: TlsConfig::default(),
            inline_session: false,
        }
    }

    /// Sets the keep-alive.
    #[must_use]
    pub fn with_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Sets clean session.
    #[must_use]
    pub fn with_clean_session(mut self, clean_session: bool) -> Self {
        self.clean_session = clean_session;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the subscribe timeout.
    #[must_use]
    pub fn with_subscribe_timeout(mut self, timeout: Duration) -> Self {
        self.subscribe_timeout = timeout;
        self
    }

    /// Sets the TLS policy.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// The keep-alive sent in CONNECT, in seconds: rounded up, capped at
    /// [`MAX_KEEP_ALIVE`](Self::MAX_KEEP_ALIVE); 0 when disabled.
    #[must_use]
    pub fn keep_alive_secs(&self) -> u16 {
        let mut secs = self.keep_alive.as_secs();
        if self.keep_alive.subsec_nanos() > 0 {
            secs += 1;
        }
        let capped = secs.min(Self::MAX_KEEP_ALIVE.as_secs());
        u16::try_from(capped).unwrap_or(u16::MAX)
    }

    /// The X.509 identity to present in the TLS handshake, if the credentials are one.
    #[must_use]
    pub fn identity(&self) -> Option<&dps_auth::X509Identity> {
        match &self.credentials {
            Credentials::X509(identity) => Some(identity),
            _ => None,
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials: &dyn fmt::Debug = match &self.credentials {
            Credentials::Sas(_) => &Verbatim("Sas(<redacted>)"),
            Credentials::X509(identity) => identity,
            _ => &Verbatim("<other>"),
        };
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("credentials", credentials)
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("connect_timeout", &self.connect_timeout)
            .field("subscribe_timeout", &self.subscribe_timeout)
            .field("tls", &self.tls)
            .field("inline_session", &self.inline_session)
            .finish()
    }
}

/// Debug-prints its text without quotes.
struct Verbatim(&'static str);

impl fmt::Debug for Verbatim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
