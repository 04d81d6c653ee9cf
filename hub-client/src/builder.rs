//! [`HubClientBuilder`]: the settings of a hub client, and the connect that starts its task.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dps_auth::{Authenticator, SasAuthenticator, SasResource, SymmetricKey};
use dps_core::hub::{
    Backoff, ConnectionState, Features, Heartbeat, HubConnectInfo, HubSession, Renewal,
    SessionConfig, StopReason,
};
use dps_runtime::{Clock, Entropy, Failure, FixedEntropy, Link, OsEntropy, SystemClock};
use dps_transport_mqtt::{MqttTransport, TlsConfig, Transport};
use tracing::Instrument as _;

use crate::app::{HubApp, HubShared, streams};
use crate::client::{Handle, HubClient, USER_AGENT, lock};
use crate::config_error::{ConfigError, ConfigProblem};
use crate::error::HubError;

/// Configures and connects a [`HubClient`]. Defaults suit Azure: MQTT over TLS on 8883, public
/// roots, keep-alive 240 s, tokens of one hour renewed at 70–80 %, every feature subscribed.
///
/// A builder is a fleet template too: configure the endpoint, TLS, transport and timing once,
/// then stamp a builder per device with [`for_device`](Self::for_device) (or `clone` it).
///
/// ```no_run
/// # async fn run(devices: Vec<(String, dps_auth::SymmetricKey)>, key: dps_auth::SymmetricKey)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use hub_client::{HubClient, TlsConfig};
///
/// let template = HubClient::builder("my-hub.azure-devices.net", "template", key)
///     .tls(TlsConfig::default())
///     .keep_alive(Duration::from_secs(120))
///     .deadline(Duration::from_secs(30));
/// let mut clients = Vec::new();
/// for (id, key) in devices {
///     clients.push(template.for_device(id, key).connect().await?);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HubClientBuilder {
    host: String,
    device_id: String,
    module_id: Option<String>,
    endpoint: Option<String>,
    authenticator: Arc<dyn Authenticator>,
    symmetric_key: Option<SymmetricKey>,
    token_lifetime: Option<Duration>,
    transport: Arc<dyn Transport>,
    tls: TlsConfig,
    model_id: Option<String>,
    config: SessionConfig,
    connect_timeout: Duration,
    initial_connect_timeout: Duration,
    /// (#11) Failed first-connection attempts in a row before `connect` gives up.
    max_connect_failures: Option<u32>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    stream_capacity: usize,
    /// Manual completion (#11).
    manual_completion: bool,
    /// File upload (#14): the proxy of a WebSocket transport, for uploads too.
    #[cfg(feature = "file-upload")]
    upload_proxy: Option<dps_transport_ws::ProxyConfig>,
}

impl fmt::Debug for HubClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClientBuilder")
            .field("host", &self.host)
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("endpoint", &self.endpoint)
            .field("authenticator", &self.authenticator)
            .field("transport", &self.transport.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HubClientBuilder {
    pub(crate) fn new(
        host: String,
        device_id: String,
        authenticator: impl Authenticator + 'static,
    ) -> Self {
        let symmetric_key = (&authenticator as &dyn Any)
            .downcast_ref::<SymmetricKey>()
            .cloned();
        Self {
            config: SessionConfig::device(device_id.clone()),
            host,
            device_id,
            module_id: None,
            endpoint: None,
            authenticator: Arc::new(authenticator),
            symmetric_key,
            token_lifetime: None,
            transport: Arc::new(MqttTransport::new()),
            tls: TlsConfig::default(),
            model_id: None,
            connect_timeout: Duration::from_secs(30),
            initial_connect_timeout: Duration::from_secs(60),
            max_connect_failures: Some(crate::error::DEFAULT_MAX_CONNECT_FAILURES),
            clock: Arc::new(SystemClock::new()),
            entropy: Arc::new(OsEntropy),
            stream_capacity: 256,
            manual_completion: false,
            #[cfg(feature = "file-upload")]
            upload_proxy: None,
        }
    }

    /// A builder for another device on the same hub with this one's settings (endpoint, TLS,
    /// transport, keep-alive, timing, features, clock, entropy, model id, token lifetime).
    /// The device id and the credentials change; a module id is not carried over. The stamped
    /// builder is independent: configuring it does not change this one.
    #[must_use]
    pub fn for_device(
        &self,
        device_id: impl Into<String>,
        authenticator: impl Authenticator + 'static,
    ) -> Self {
        let device_id = device_id.into();
        let mut builder = self.clone();
        builder.symmetric_key = (&authenticator as &dyn Any)
            .downcast_ref::<SymmetricKey>()
            .cloned();
        builder.authenticator = Arc::new(authenticator);
        builder.config.device_id.clone_from(&device_id);
        builder.config.module_id = None;
        builder.device_id = device_id;
        builder.module_id = None;
        builder
    }

    /// Connects as the module `module_id` of the device.
    #[must_use]
    pub fn module(mut self, module_id: impl Into<String>) -> Self {
        self.module_id = Some(module_id.into());
        self
    }

    /// Connects to `endpoint` (`host` or `host:port`) instead of the hub host: an IoT Edge
    /// gateway, or a local emulator. The user name and the token still name the hub host.
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Announces an IoT Plug and Play model id (a DTMI) in the user name.
    #[must_use]
    pub fn model_id(mut self, dtmi: impl Into<String>) -> Self {
        self.model_id = Some(dtmi.into());
        self
    }

    /// The transport: [`MqttTransport`] (default) or `WebSocketTransport` (port 443, proxies).
    #[must_use]
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        #[cfg(feature = "file-upload")]
        {
            self.upload_proxy = crate::upload::proxy_of(&transport);
        }
        self.transport = Arc::new(transport);
        self
    }

    /// The TLS policy and trusted roots (add a private root, such as an emulator's CA, here).
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// MQTT keep-alive (default 240 s, at most 1177 s).
    #[must_use]
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.config = self.config.keep_alive(keep_alive);
        self
    }

    /// How long each SAS token lives (default one hour); the client renews it at 70–80 % of
    /// that. Applies when the authenticator is a [`SymmetricKey`] (as from a connection
    /// string); configure other authenticators directly
    /// ([`SasAuthenticator::with_token_lifetime`]).
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// Telemetry accepted and not yet acknowledged, at most (default 1000).
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config = self.config.queue_capacity(capacity);
        self
    }

    /// Telemetry publishes awaiting PUBACK, at most (default 16).
    #[must_use]
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.config = self.config.max_in_flight(max);
        self
    }

    /// Time to live of messages that set none (default: unlimited).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config = self.config.default_ttl(Some(ttl));
        self
    }

    /// What to subscribe to (default: everything).
    #[must_use]
    pub fn features(mut self, features: Features) -> Self {
        self.config = self.config.features(features);
        self
    }

    /// Sends a heartbeat telemetry message at a fixed interval while connected.
    #[must_use]
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.config = self.config.heartbeat(Some(heartbeat));
        self
    }

    /// The token renewal policy.
    #[must_use]
    pub fn renewal(mut self, renewal: Renewal) -> Self {
        self.config = self.config.renewal(renewal);
        self
    }

    /// The reconnect policy.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config = self.config.backoff(backoff);
        self
    }

    /// How long a twin request may wait for its answer (default 30 s).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.request_timeout(timeout);
        self
    }

    /// Any other session setting.
    #[must_use]
    pub fn session_config(
        mut self,
        configure: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Self {
        self.config = configure(self.config);
        self
    }

    /// Bound on one connection attempt: TCP, TLS, WebSocket and CONNACK (default 30 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) keeps trying before it gives up (default 60 s): the
    /// same word and meaning as `ProvisioningClient::deadline` for one `register()` call.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.initial_connect_timeout = deadline;
        self
    }

    /// The same as [`deadline`](Self::deadline), under its former name.
    #[must_use]
    pub fn initial_connect_timeout(mut self, timeout: Duration) -> Self {
        self.initial_connect_timeout = timeout;
        self
    }

    /// How many first-connection attempts may fail in a row (refused with CONNACK 3, a
    /// closed port, DNS, TLS or timeouts) before [`connect`](Self::connect) gives up with
    /// [`HubError::Unreachable`] (default 3, as `ProvisioningClient`'s `Timing`), so an
    /// unreachable hub fails in seconds rather than at the [deadline](Self::deadline). `None`
    /// retries until the deadline; 0 counts as 1. Once connected, the client reconnects
    /// without such a bound (only [`Backoff::max_attempts`](crate::Backoff) limits it).
    #[must_use]
    pub fn max_connect_failures(mut self, failures: Option<u32>) -> Self {
        self.max_connect_failures = failures;
        self
    }

    /// Seeds the backoff and renewal jitter (default: random, from [`entropy`](Self::entropy)).
    /// Fixed seeds make runs replayable.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.entropy = Arc::new(FixedEntropy(seed));
        self
    }

    /// Where the jitter seed comes from (default [`OsEntropy`]: the operating system).
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

    /// How many items each stream buffers (default 256); a full stream holds the next delivery
    /// unacknowledged and pauses reading from the hub until there is room.
    #[must_use]
    pub fn stream_capacity(mut self, capacity: usize) -> Self {
        self.stream_capacity = capacity.max(1);
        self
    }

    /// Manual completion (#11): nothing the hub delivers (messages, inputs, desired patches,
    /// method requests) is acknowledged before the application completes it; read with
    /// [`Subscription::recv_delivery`](crate::Subscription::recv_delivery) and call [`Delivered::complete`](crate::Delivered::complete) once the item is
    /// processed (for example in the application's own store). Default: automatic, each
    /// delivery acknowledged once its stream took it.
    #[must_use]
    pub fn manual_completion(mut self, manual: bool) -> Self {
        self.manual_completion = manual;
        self
    }

    /// Every problem with this configuration, in one error.
    fn config_errors(&self) -> Option<ConfigError> {
        let mut problems = Vec::new();
        if self.host.is_empty() {
            problems.push(ConfigProblem::EmptyHost);
        }
        if let Err(e) = dps_core::ids::validate_device_id(&self.device_id) {
            problems.push(ConfigProblem::DeviceId(e));
        }
        if let Some(Err(e)) = self
            .module_id
            .as_deref()
            .map(dps_core::ids::validate_module_id)
        {
            problems.push(ConfigProblem::ModuleId(e));
        }
        ConfigError::from_problems(problems)
    }

    /// Connects, and returns once the client is connected and subscribed. Retriable failures
    /// (network, timeouts, CONNACK 3) are retried with backoff for up to the initial connect
    /// timeout; refusals and configuration errors return at once. After this, the client
    /// reconnects by itself for as long as it lives.
    ///
    /// Must be called within a tokio runtime (it spawns the client's one task).
    ///
    /// # Errors
    /// A [`HubError`] saying what to fix, or [`HubError::Timeout`].
    pub async fn connect(self) -> Result<HubClient, HubError> {
        if let Some(error) = self.config_errors() {
            return Err(HubError::Config(error));
        }
        let mut config = self.config;
        config.device_id.clone_from(&self.device_id);
        config.module_id.clone_from(&self.module_id);

        let authenticator: Arc<dyn Authenticator> = match (self.symmetric_key, self.token_lifetime)
        {
            (Some(key), Some(lifetime)) => {
                Arc::new(SasAuthenticator::new(key).with_token_lifetime(lifetime))
            }
            _ => self.authenticator,
        };
        let mut info =
            HubConnectInfo::new(&self.host, &self.device_id).device_client_type(USER_AGENT);
        if let Some(module) = &self.module_id {
            info = info.module(module);
        }
        if let Some(model) = &self.model_id {
            info = info.model_id(model);
        }
        let resource = match &self.module_id {
            Some(module) => SasResource::hub_module(&self.host, &self.device_id, module),
            None => SasResource::hub_device(&self.host, &self.device_id),
        };
        #[cfg(feature = "file-upload")]
        let file_upload = crate::upload::FileUploader::builder_shared(
            &self.host,
            &self.device_id,
            Arc::clone(&authenticator),
        )
        .tls(self.tls.clone())
        .proxy_opt(self.upload_proxy.clone());
        let endpoint = self.endpoint.unwrap_or_else(|| self.host.clone());
        let default_port = self.transport.default_port();
        let mut link = Link::new(
            self.transport,
            authenticator,
            resource,
            endpoint.clone(),
            info.client_id().to_string(),
            info.username().to_string(),
        );
        link.keep_alive = config.keep_alive;
        link.tls = self.tls;
        link.connect_timeout = self.connect_timeout;
        link.subscribe_timeout = config.subscribe_timeout;

        let span = tracing::info_span!(
            "hub_client",
            device_id = %self.device_id,
            module_id = self.module_id.as_deref().unwrap_or(""),
            hub = %self.host,
            transport = link.transport.name(),
        );
        let seed = self.entropy.seed();
        let session = HubSession::new(config, self.clock.now(), seed);
        let (outlets, receivers) = streams(self.stream_capacity);
        let app = HubApp::new(outlets).manual_completion(self.manual_completion);
        let mut state = app.state.subscribe();
        let shared = Arc::new(HubShared::new(session, app, self.clock));
        let task = tokio::spawn(dps_runtime::run(Arc::clone(&shared), link).instrument(span));
        let handle = Arc::new(Handle {
            receivers: Mutex::new(receivers),
            task: Mutex::new(Some(task)),
        });

        let bound = self.max_connect_failures;
        let outcome = tokio::time::timeout(
            self.initial_connect_timeout,
            state.wait_for(|s| match s {
                Some(ConnectionState::Disconnected { attempt, .. }) => {
                    bound.is_some_and(|bound| *attempt >= bound)
                }
                Some(s) => s.is_connected() || s.is_stopped(),
                None => false,
            }),
        )
        .await;
        // Copied out: the watch's read guard must be gone before the machine is closed (its
        // state change writes to the watch).
        let outcome = outcome.map(|seen| seen.map(|s| *s));
        let stopped = match outcome {
            Ok(Ok(s)) => match s {
                Some(ConnectionState::Stopped(reason)) => Some(reason),
                Some(ConnectionState::Disconnected { attempt, .. }) => {
                    // (#11) Too many failures in a row: stop trying and say where it went.
                    shared.with(|inner, now| inner.machine.close(now));
                    let task = lock(&handle.task).take();
                    if let Some(task) = task {
                        let _ = task.await;
                    }
                    let last = shared.lock().last_failure.take();
                    return Err(HubError::unreachable(
                        attempt,
                        &endpoint,
                        default_port,
                        last,
                    ));
                }
                _ => None,
            },
            Ok(Err(_)) => Some(StopReason::Closed),
            Err(_) => {
                shared.with(|inner, now| inner.machine.close(now));
                let task = lock(&handle.task).take();
                if let Some(task) = task {
                    let _ = task.await;
                }
                let last = shared.lock().last_failure.take();
                return Err(match last {
                    Some(Failure::Transport(e)) => HubError::Timeout { last: Some(e) },
                    Some(Failure::Credentials(e)) => HubError::Credentials(e),
                    _ => HubError::Timeout { last: None },
                });
            }
        };
        if let Some(reason) = stopped {
            let task = lock(&handle.task).take();
            if let Some(task) = task {
                let _ = task.await;
            }
            let failure = shared.lock().last_failure.take();
            return Err(match (reason, failure) {
                (StopReason::Refused { code }, _) => HubError::Refused { code },
                (StopReason::Unrecoverable, Some(Failure::Transport(e))) => HubError::Transport(e),
                (StopReason::Unrecoverable, Some(Failure::Credentials(e))) => {
                    HubError::Credentials(e)
                }
                (reason, _) => HubError::Stopped(reason),
            });
        }
        Ok(HubClient::from_parts(
            shared,
            handle,
            Arc::from(self.device_id),
            self.module_id.map(Arc::from),
            #[cfg(feature = "file-upload")]
            Arc::new(move || file_upload.clone()),
        ))
    }
}
