//! `ProvisioningClient`: configuration and the `register()` entry point.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use dps_auth::Authenticator;
use dps_core::dps::registration::{Assignment, RegistrationConfig, RegistrationError, Timing};
use dps_core::dps::{
    CSR_API_VERSION, DEFAULT_API_VERSION, DpsConnectInfo, GLOBAL_ENDPOINT, Registration,
    RegistrationRequest,
};
use dps_core::sas::SasResource;
use dps_runtime::{Clock, Entropy, Failure, FixedEntropy, Link, OsEntropy, Shared, SystemClock};
use dps_transport_mqtt::{MqttTransport, TlsConfig, Transport};
use serde::Serialize;
use tracing::Instrument as _;

use crate::app::DpsApp;
use crate::config_error::{ConfigError, ConfigProblem};
use crate::error::{ConnectError, ProvisioningError};

/// The credentials of a fleet template, which registers no device: a template's empty
/// registration id is refused before any connection, so these are never asked for.
#[derive(Debug)]
struct NoCredentials;

impl Authenticator for NoCredentials {
    fn credentials(
        &self,
        _resource: &dps_core::sas::SasResource,
        _unix_now: u64,
    ) -> Result<dps_auth::Credentials, dps_auth::AuthError> {
        Err(dps_auth::AuthError::InvalidId(
            dps_core::ids::IdError::Empty {
                kind: dps_core::ids::IdKind::RegistrationId,
            },
        ))
    }
}

/// The user agent announced in the DPS username (`ClientVersion`).
pub const USER_AGENT: &str = concat!("dps-rs/", env!("CARGO_PKG_VERSION"));

/// Registers one device with DPS.
///
/// Cheap to clone; [`register`](Self::register) may be called any number of times and
/// concurrently (each call is an independent registration on its own connection), so a gateway
/// can provision its fleet from one process.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use dps_auth::SymmetricKey;
/// use dps_client::ProvisioningClient;
///
/// let key = SymmetricKey::from_base64("c2VjcmV0LWtleS1vZi10aGUtZW5yb2xsbWVudA==")?;
/// let assignment = ProvisioningClient::new("0ne00000A0A", "my-device", key)
///     .register()
///     .await?;
/// println!("assigned to {} as {}", assignment.assigned_hub(), assignment.device_id());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProvisioningClient {
    pub(crate) endpoint: String,
    pub(crate) id_scope: String,
    pub(crate) registration_id: String,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) tls: TlsConfig,
    pub(crate) api_version: Option<String>,
    pub(crate) request: RegistrationRequest,
    pub(crate) timing: Timing,
    pub(crate) keep_alive: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    /// Problems met while configuring, all reported by `register()`.
    pub(crate) problems: Vec<ConfigProblem>,
    /// Bound on one connection attempt (TCP, TLS, WebSocket, CONNACK); `None`: the request
    /// timeout of [`Timing`].
    pub(crate) connect_timeout: Option<Duration>,
}

impl fmt::Debug for ProvisioningClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisioningClient")
            .field("endpoint", &self.endpoint)
            .field("id_scope", &self.id_scope)
            .field("registration_id", &self.registration_id)
            .field("authenticator", &self.authenticator)
            .field("transport", &self.transport.name())
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl ProvisioningClient {
    /// A client for `registration_id` in the DPS instance `id_scope`, authenticating with
    /// `authenticator` (a [`SymmetricKey`](dps_auth::SymmetricKey), a key derived from a
    /// [`GroupKey`](dps_auth::GroupKey), an [`X509Identity`](dps_auth::X509Identity), or any
    /// [`Authenticator`]).
    ///
    /// Defaults are right for Azure: the global endpoint, MQTT over TLS on 8883, the public
    /// roots, api-version `2019-03-31`, and the [`Timing`] defaults.
    pub fn new(
        id_scope: impl Into<String>,
        registration_id: impl Into<String>,
        authenticator: impl Authenticator + 'static,
    ) -> Self {
        let registration_id = registration_id.into();
        Self {
            endpoint: GLOBAL_ENDPOINT.to_owned(),
            id_scope: id_scope.into(),
            request: RegistrationRequest::new(registration_id.clone()),
            registration_id,
            authenticator: Arc::new(authenticator),
            transport: Arc::new(MqttTransport::new()),
            tls: TlsConfig::default(),
            api_version: None,
            timing: Timing::default(),
            keep_alive: Duration::from_secs(240),
            clock: Arc::new(SystemClock::new()),
            entropy: Arc::new(OsEntropy),
            problems: Vec::new(),
            connect_timeout: None,
        }
    }

    /// The DPS endpoint, `host` or `host:port` (default `global.azure-devices-provisioning.net`
    /// on the transport's port).
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The transport: [`MqttTransport`] (the default) or `dps_transport_ws::WebSocketTransport`
    /// for port 443 and HTTP proxies.
    #[must_use]
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// The TLS policy (add a private root such as the emulator's CA here).
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Sends a custom payload (any serializable value) for custom allocation policies.
    #[must_use]
    pub fn payload<T: Serialize + ?Sized>(mut self, payload: &T) -> Self {
        match self.request.clone().payload(payload) {
            Ok(request) => self.request = request,
            Err(e) => self.problems.push(ConfigProblem::Payload {
                reason: e.to_string(),
            }),
        }
        self
    }

    /// Sends a custom payload given as JSON text (validated, then sent verbatim).
    #[must_use]
    pub fn payload_json(mut self, json: &str) -> Self {
        match self.request.clone().payload_json(json) {
            Ok(request) => self.request = request,
            Err(e) => self.problems.push(ConfigProblem::Payload {
                reason: e.to_string(),
            }),
        }
        self
    }

    /// Announces an IoT Plug and Play model: the payload `{"modelId": model_id}`.
    #[must_use]
    pub fn model_id(self, model_id: impl Into<String>) -> Self {
        self.payload(&serde_json::json!({ "modelId": model_id.into() }))
    }

    /// Asks DPS to issue a client certificate: `csr_der` is a DER PKCS#10 request whose CN is the
    /// registration id. Switches to api-version `2025-07-01-preview` unless a later one is set.
    #[must_use]
    pub fn csr(mut self, csr_der: &[u8]) -> Self {
        self.request = self
            .request
            .clone()
            .csr(base64::engine::general_purpose::STANDARD.encode(csr_der));
        self
    }

    /// Overrides the api-version in the username.
    #[must_use]
    pub fn api_version(mut self, api_version: impl Into<String>) -> Self {
        self.api_version = Some(api_version.into());
        self
    }

    /// Replaces the timers and retry limits (`retry-after` floor and ceiling, backoff, request
    /// timeout, overall deadline).
    #[must_use]
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The overall deadline of one `register()` call (default 5 minutes).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.timing = self.timing.deadline(deadline);
        self
    }

    /// Bound on one connection attempt: TCP, TLS, WebSocket and CONNACK (default: the request
    /// timeout of [`Timing`], 60 s). Same word and meaning as `HubClientBuilder::connect_timeout`.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// MQTT keep-alive (default 240 s).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Seeds the backoff jitter (default: random per call, from [`entropy`](Self::entropy)).
    /// Fixed seeds make tests replayable.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.entropy = Arc::new(FixedEntropy(seed));
        self
    }

    /// Where the jitter seeds come from (default [`OsEntropy`]: the operating system).
    #[must_use]
    pub fn entropy(mut self, entropy: impl Entropy + 'static) -> Self {
        self.entropy = Arc::new(entropy);
        self
    }

    /// The clock timers and token expiry run on (default [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A client for another device with this one's settings: endpoint, id scope, TLS,
    /// transport, timing, keep-alive, clock, entropy, api-version and custom payload (a fleet
    /// announces one model id). Only the registration id and the credentials change. The
    /// stamped client is independent: configuring it does not change this one.
    ///
    /// Configure a fleet once, then stamp a client per device:
    ///
    /// ```no_run
    /// # async fn run(devices: Vec<(String, dps_auth::SymmetricKey)>) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use dps_client::{ProvisioningClient, TlsConfig};
    ///
    /// let template = ProvisioningClient::template("0ne00000A0A")
    ///     .endpoint("dps.example.net:8883")
    ///     .tls(TlsConfig::default())
    ///     .deadline(Duration::from_secs(600))
    ///     .model_id("dtmi:com:example:Thermostat;1");
    /// for (id, key) in devices {
    ///     let assignment = template.for_device(id, key).register().await?;
    ///     println!("{} on {}", assignment.device_id(), assignment.assigned_hub());
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn for_device(
        &self,
        registration_id: impl Into<String>,
        authenticator: impl Authenticator + 'static,
    ) -> Self {
        let registration_id = registration_id.into();
        let mut client = self.clone();
        client.request.registration_id = Some(registration_id.clone());
        client.registration_id = registration_id;
        client.authenticator = Arc::new(authenticator);
        client
    }

    /// A fleet template for the DPS instance `id_scope`: configure it like a client, then
    /// stamp a client per device with [`for_device`](Self::for_device). Registering the
    /// template itself fails: it has no registration id and no credentials.
    #[must_use]
    pub fn template(id_scope: impl Into<String>) -> Self {
        Self::new(id_scope, "", NoCredentials)
    }

    /// The registration id.
    #[must_use]
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }

    /// Registers the device and returns its assignment.
    ///
    /// Cancellation-safe: dropping the future closes the connection.
    ///
    /// # Errors
    /// A [`ProvisioningError`] saying what went wrong and what to do.
    pub async fn register(&self) -> Result<Assignment, ProvisioningError> {
        if let Some(error) = self.config_errors() {
            return Err(ProvisioningError::Config(error));
        }
        let api_version = match (&self.api_version, self.request.csr.is_some()) {
            (Some(version), _) => version.clone(),
            (None, true) => CSR_API_VERSION.to_owned(),
            (None, false) => DEFAULT_API_VERSION.to_owned(),
        };
        let config = RegistrationConfig::new(&self.registration_id)
            .request(self.request.clone())
            .timing(self.timing);
        let registration = Registration::new(config, self.clock.now(), self.entropy.seed());
        let shared = Arc::new(Shared::new(
            registration,
            DpsApp::default(),
            Arc::clone(&self.clock),
        ));
        // Built in a block that ends before the wait: what the driver took (the link, the
        // connect information) is then not kept a second time in this future (#16).
        {
            let connect = DpsConnectInfo::new(&self.id_scope, &self.registration_id)
                .api_version(api_version)
                .client_version(USER_AGENT);
            let mut link = Link::new(
                Arc::clone(&self.transport),
                Arc::clone(&self.authenticator),
                SasResource::dps(connect.id_scope(), connect.registration_id()),
                self.endpoint.clone(),
                connect.client_id().to_owned(),
                connect.username().to_string(),
            );
            link.keep_alive = self.keep_alive;
            link.tls = self.tls.clone();
            link.connect_timeout = self.connect_timeout.unwrap_or(self.timing.request_timeout);
            link.subscribe_timeout = self.timing.request_timeout;
            let span = tracing::info_span!(
                "dps_register",
                registration_id = %self.registration_id,
                id_scope = %self.id_scope,
                transport = self.transport.name(),
            );
            dps_runtime::run(Arc::clone(&shared), link).instrument(span)
        }
        .await;
        let mut inner = shared.lock();
        let failure = inner.last_failure.take();
        match inner.app.outcome.take() {
            Some(Ok(assignment)) => Ok(assignment),
            // The machine ends this way only after the driver reported such a failure.
            Some(Err(RegistrationError::Unrecoverable)) => Err(match failure {
                Some(Failure::Transport(error)) => ProvisioningError::Transport(error),
                Some(Failure::Credentials(error)) => ProvisioningError::Credentials(error),
                _ => RegistrationError::Unrecoverable.into(),
            }),
            // (#11) Unreachable endpoints and timeouts name the last failed attempt.
            Some(Err(error)) => {
                let last = match failure {
                    Some(Failure::Transport(error)) => Some(ConnectError::new(
                        &self.endpoint,
                        self.transport.default_port(),
                        error,
                    )),
                    _ => None,
                };
                Err(ProvisioningError::from(error).with_connect_error(last))
            }
            // `run` returns only once the registration finished, with its outcome.
            None => Err(ProvisioningError::Unrecoverable),
        }
    }

    /// Every problem with this configuration: those the setters met, then the ids.
    fn config_errors(&self) -> Option<ConfigError> {
        let mut problems = self.problems.clone();
        if self.endpoint.is_empty() {
            problems.push(ConfigProblem::EmptyEndpoint);
        }
        if self.id_scope.is_empty() {
            problems.push(ConfigProblem::EmptyIdScope);
        }
        if let Err(e) = dps_core::ids::validate_registration_id(&self.registration_id) {
            problems.push(ConfigProblem::RegistrationId {
                reason: e.to_string(),
            });
        }
        ConfigError::from_problems(problems)
    }
}
