//! [`HubClient`]: the async handle and the receipt of a message (its builder is in
//! `builder.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use dps_auth::Authenticator;
use dps_core::dps::registration::Assignment;
use dps_core::hub::{
    ConnectionState, Message, MessageId, ReceivedMessage, SendError, Twin, TwinError,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::Receivers;
use crate::builder::HubClientBuilder;
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

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
    /// with `authenticator`: a [`SymmetricKey`](dps_auth::SymmetricKey), an [`X509Identity`](dps_auth::X509Identity), a
    /// [`SasAuthenticator`](dps_auth::SasAuthenticator) around a hardware signer, or any [`Authenticator`].
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
            lock(&self.handle.receivers).c2d.take_receiver(),
            "cloud-to-device message",
        )?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// Module input messages (modules). Each stream can be taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn inputs(&self) -> Result<Subscription<ReceivedMessage>, StreamTaken> {
        let receiver = take_stream(
            lock(&self.handle.receivers).inputs.take_receiver(),
            "input message",
        )?;
        Ok(Subscription::new(Some(receiver)))
    }

    /// Desired-property patches, and the full twin after every (re)connect. Each stream can be
    /// taken once.
    ///
    /// # Errors
    /// [`StreamTaken`] when an earlier call took this stream.
    pub fn desired_patches(&self) -> Result<Subscription<DesiredUpdate>, StreamTaken> {
        let receiver = take_stream(
            lock(&self.handle.receivers).desired.take_receiver(),
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
            lock(&self.handle.receivers).methods.take_receiver(),
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
            lock(&self.handle.receivers).states.take_receiver(),
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
