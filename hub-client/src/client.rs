//! [`HubClient`]: the async handle, its builder, and the items its streams carry.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use dps_auth::{Authenticator, SasAuthenticator, SasResource, SymmetricKey};
use dps_core::dps::registration::Assignment;
use dps_core::hub::{
    Backoff, ConnectionState, Features, Heartbeat, HubConnectInfo, HubSession, Message, MessageId,
    ReceivedMessage, Renewal, SendError, SessionConfig, StopReason, Twin, TwinError,
};
use dps_runtime::{Clock, Entropy, Failure, FixedEntropy, Link, OsEntropy, SystemClock};
use dps_transport_mqtt::{MqttTransport, TlsConfig, Transport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::app::{HubApp, HubShared, Receivers, streams};
use crate::config_error::{ConfigError, ConfigProblem};
use crate::connection_string::ConnectionString;
use crate::desired::DesiredUpdate;
use crate::error::{HubError, StreamTaken, take_stream};
use crate::host::Core;
use crate::method::MethodRequest;
use crate::streams::Subscription;

/// The user agent announced in the user name (`DeviceClientType`).
pub const USER_AGENT: &str = concat!("hub-client/", env!("CARGO_PKG_VERSION"));

/// Resolves when the hub acknowledged the message (`Ok`), or with why it never will. Dropping
/// it does not withdraw the message.
#[derive(Debug)]
#[must_use = "a receipt does nothing unless awaited; dropping it keeps the message queued"]
pub struct SendReceipt {
    id: MessageId,
    receiver: oneshot::Receiver<Result<(), SendError>>,
}

impl SendReceipt {
    /// The message's id in this client.
    #[must_use]
    pub const fn id(&self) -> MessageId {
        self.id
    }
}

impl Future for SendReceipt {
    type Output = Result<(), SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(SendError::Closed)))
    }
}

/// Closes the session when the last [`HubClient`] clone is dropped.
pub(crate) struct CloseOnDrop(pub(crate) Arc<dyn Core>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.call(|host, _, now| host.close(now));
    }
}

/// The streams not yet taken and the driver task.
pub(crate) struct Handle {
    pub(crate) receivers: Mutex<Receivers>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An IoT Hub device (or module) client: telemetry, cloud-to-device messages, twin, direct
/// methods, module inputs and outputs, over one connection that it keeps alive, renews and
/// re-establishes by itself.
///
/// Cheap to clone; every clone drives the same connection. One tokio task per client does all
/// the I/O. Dropping the last clone closes the connection.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct HubClient {
    core: Arc<dyn Core>,
    handle: Arc<Handle>,
    _close: Arc<CloseOnDrop>,
    device_id: Arc<str>,
    module_id: Option<Arc<str>>,
    /// File upload (#14): the uploader's settings, taken from this client's (for a device,
    /// from its current assignment).
    #[cfg(feature = "file-upload")]
    file_upload: UploadSettings,
}

/// Makes the file uploader's builder of a client.
#[cfg(feature = "file-upload")]
pub(crate) type UploadSettings = Arc<dyn Fn() -> crate::upload::FileUploaderBuilder + Send + Sync>;

impl fmt::Debug for HubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubClient")
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("state", &self.connection_state())
            .finish_non_exhaustive()
    }
}

impl HubClient {
    /// A builder for `device_id` on the hub `host` (`{name}.azure-devices.net`), authenticating
    /// with `authenticator`: a [`SymmetricKey`], an [`X509Identity`](dps_auth::X509Identity), a
    /// [`SasAuthenticator`] around a hardware signer, or any [`Authenticator`].
    pub fn builder(
        host: impl Into<String>,
        device_id: impl Into<String>,
        authenticator: impl Authenticator + 'static,
    ) -> HubClientBuilder {
        HubClientBuilder::new(host.into(), device_id.into(), authenticator)
    }

    /// A builder for the device DPS assigned: its hub and device id, with the same
    /// authenticator that registered it.
    ///
    /// ```no_run
    /// # async fn run(assignment: dps_core::dps::registration::Assignment, key: dps_auth::SymmetricKey)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// use hub_client::{HubClient, Message};
    ///
    /// let hub = HubClient::from_registration(&assignment, key).connect().await?;
    /// hub.send(Message::new("hello")).await?;
    /// # Ok(()) }
    /// ```
    pub fn from_registration(
        assignment: &Assignment,
        authenticator: impl Authenticator + 'static,
    ) -> HubClientBuilder {
        Self::builder(
            assignment.assigned_hub(),
            assignment.device_id(),
            authenticator,
        )
    }

    /// A builder from a device or module connection string
    /// (`HostName=..;DeviceId=..;SharedAccessKey=..[;ModuleId=..][;GatewayHostName=..]`). With
    /// `GatewayHostName` the client connects to the gateway; the user name and the token still
    /// name `HostName`.
    ///
    /// # Errors
    /// [`HubError::ConnectionString`] naming what is missing or wrong (never the key).
    pub fn from_connection_string(connection_string: &str) -> Result<HubClientBuilder, HubError> {
        let cs: ConnectionString = connection_string.parse()?;
        let mut builder = Self::builder(cs.host_name(), cs.device_id(), cs.key().clone());
        if let Some(module) = cs.module_id() {
            builder = builder.module(module);
        }
        if let Some(gateway) = cs.gateway_host_name() {
            builder = builder.endpoint(gateway);
        }
        Ok(builder)
    }

    pub(crate) fn from_parts(
        core: Arc<dyn Core>,
        handle: Arc<Handle>,
        device_id: Arc<str>,
        module_id: Option<Arc<str>>,
        #[cfg(feature = "file-upload")] file_upload: UploadSettings,
    ) -> Self {
        Self {
            _close: Arc::new(CloseOnDrop(Arc::clone(&core))),
            core,
            handle,
            device_id,
            module_id,
            #[cfg(feature = "file-upload")]
            file_upload,
        }
    }

    /// The device id.
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The module id, for a module client.
    #[must_use]
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }

    /// File upload through this device's hub: a [`FileUploaderBuilder`](crate::upload::FileUploaderBuilder)
    /// with this client's hub, device id, credentials, TLS policy and proxy. Set its
    /// `endpoint` when the hub's HTTPS port is not 443 (an emulator), then `build()` it.
    /// The hub offers file upload to devices, not to modules.
    #[cfg(feature = "file-upload")]
    #[must_use]
    pub fn file_upload(&self) -> crate::upload::FileUploaderBuilder {
        (self.file_upload)()
    }

    /// Queues `message` and waits until the hub acknowledged it (QoS 1). While disconnected the
    /// message waits in the queue and goes out after the reconnect; one whose PUBACK was lost
    /// to a dropped connection is sent again (at least once).
    ///
    /// Cancellation-safe in the sense that matters: dropping the future does not withdraw the
    /// message, it is still sent.
    ///
    /// # Errors
    /// At once: [`SendError::QueueFull`], [`SendError::TooLarge`], [`SendError::Closed`]. Later:
    /// [`SendError::Expired`] (its time to live ran out), [`SendError::Closed`] (the client
    /// stopped before the PUBACK).
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        self.try_send(message)?.await
    }

    /// Queues `message` without waiting, and returns a receipt that resolves on PUBACK. Never
    /// blocks: a full queue is an immediate [`SendError::QueueFull`].
    ///
    /// # Errors
    /// [`SendError::QueueFull`], [`SendError::TooLarge`], [`SendError::Closed`].
    pub fn try_send(&self, message: Message) -> Result<SendReceipt, SendError> {
        let (tx, receiver) = oneshot::channel();
        let id = self.core.call(|host, app, now| {
            let id = host.send_telemetry(now, message)?;
            app.sends.insert(id, tx);
            Ok::<_, SendError>(id)
        })?;
        Ok(SendReceipt { id, receiver })
    }

    /// Telemetry accepted and not yet acknowledged (queued plus in flight).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.core.read(|host, _| host.pending_telemetry())
    }

    /// Reads the whole twin.
    ///
    /// # Errors
    /// A [`TwinError`]: timeout, an error status from the hub, or a closed client.
    pub async fn get_twin(&self) -> Result<Twin, TwinError> {
        let (tx, rx) = oneshot::channel();
        self.core.call(|host, app, now| {
            let session = host.session().ok_or(TwinError::Closed)?;
            let id = session.get_twin(now).map_err(twin_error)?;
            app.twin_gets.insert(id, tx);
            Ok::<_, TwinError>(())
        })?;
        rx.await.unwrap_or(Err(TwinError::Closed))
    }

    /// Patches the reported properties (`null` members delete) and returns the new reported
    /// version.
    ///
    /// # Errors
    /// A [`TwinError`]: [`InvalidPatch`](TwinError::InvalidPatch) when `patch` is not a JSON
    /// object, [`TooLarge`](TwinError::TooLarge) over 32 KiB, a status (400 bad patch, 429
    /// throttled), a timeout, or a closed client.
    pub async fn update_reported<T: serde::Serialize + ?Sized>(
        &self,
        patch: &T,
    ) -> Result<u64, TwinError> {
        let patch = serde_json::to_value(patch).map_err(|_| TwinError::InvalidPatch)?;
        if !patch.is_object() {
            return Err(TwinError::InvalidPatch);
        }
        let (tx, rx) = oneshot::channel();
        self.core.call(|host, app, now| {
            let session = host.session().ok_or(TwinError::Closed)?;
            let id = session.update_reported(now, &patch).map_err(twin_error)?;
            app.reported.insert(id, tx);
            Ok::<_, TwinError>(())
        })?;
        rx.await.unwrap_or(Err(TwinError::Closed))
    }

    /// Cloud-to-device messages (devices). Each stream can be taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn c2d_messages(&self) -> Result<Subscription<ReceivedMessage>, StreamTaken> {
        let receiver = take_stream(
            lock(&self.handle.receivers).c2d.take(),
            "cloud-to-device message",
        )?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// Module input messages (modules). Each stream can be taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn inputs(&self) -> Result<Subscription<ReceivedMessage>, StreamTaken> {
        let receiver = take_stream(lock(&self.handle.receivers).inputs.take(), "input message")?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// Desired-property patches, and the full twin after every (re)connect. Each stream can be
    /// taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn desired_patches(&self) -> Result<Subscription<DesiredUpdate>, StreamTaken> {
        let receiver = take_stream(
            lock(&self.handle.receivers).desired.take(),
            "desired-property",
        )?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// Direct method invocations. Each stream can be taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn method_requests(&self) -> Result<Subscription<MethodRequest>, StreamTaken> {
        let receiver = take_stream(
            lock(&self.handle.receivers).methods.take(),
            "method request",
        )?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// Connection state changes, from the first connect on. Each stream can be taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn connection_states(&self) -> Result<Subscription<ConnectionState>, StreamTaken> {
        let receiver = take_stream(
            lock(&self.handle.receivers).states.take(),
            "connection state",
        )?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// The current connection state.
    #[must_use]
    pub fn connection_state(&self) -> Option<ConnectionState> {
        self.core.read(|_, app| *app.state.borrow())
    }

    /// Closes the client: new work is refused, what is queued is still sent (for up to the
    /// drain timeout, 5 s by default), then the connection is closed and every stream ends.
    pub async fn close(&self) {
        self.core.call(|host, _, now| host.close(now));
        let task = lock(&self.handle.task).take();
        if let Some(task) = task {
            let _ = task.await;
            return;
        }
        let mut state = self.core.read(|_, app| app.state.subscribe());
        let _ = state.wait_for(|s| s.is_some_and(|s| s.is_stopped())).await;
    }
}

fn twin_error(error: SendError) -> TwinError {
    match error {
        SendError::NotSubscribed => TwinError::NotSubscribed,
        SendError::TooLarge { size, limit } => TwinError::TooLarge { size, limit },
        _ => TwinError::Closed,
    }
}

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
    fn new(host: String, device_id: String, authenticator: impl Authenticator + 'static) -> Self {
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
    /// [`Subscription::recv_delivery`] and call [`Delivered::complete`](crate::Delivered::complete) once the item is
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
        let mut link = Link::new(
            self.transport,
            authenticator,
            resource,
            endpoint,
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

        let outcome = tokio::time::timeout(
            self.initial_connect_timeout,
            state.wait_for(|s| s.is_some_and(|s| s.is_connected() || s.is_stopped())),
        )
        .await;
        let stopped = match outcome {
            Ok(Ok(s)) => match *s {
                Some(ConnectionState::Stopped(reason)) => Some(reason),
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
