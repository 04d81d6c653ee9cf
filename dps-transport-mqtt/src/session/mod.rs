//! [`MqttConnection`]: one MQTT 3.1.1 session over any byte stream, shared by every transport.
//!
//! The session owns the stream: it reads and writes packets (rumqttc's codec), sends
//! PINGREQ when the connection is idle for the keep-alive, closes the connection when nothing
//! arrives for 1.5 × the keep-alive, acknowledges QoS 1 messages when the receiver asks, and
//! ends (sending DISCONNECT) when the [`MqttConnection`] is dropped. It runs on a task of its
//! own, or, with [`ConnectOptions::inline_session`](crate::ConnectOptions::inline_session),
//! as a [`Session`] future the caller polls next to its own work (the SDK's driver does).
//!
//! Received messages wait in a queue of 32. When the receiver lets it fill, the task keeps
//! what it has already read (one read buffer at most), handles the acknowledgements among it,
//! and stops reading the stream: the server's writes stall on TCP instead of the
//! messages piling up here. Sending, PINGREQs and PUBACKs go on; what the server sent behind
//! the unread messages (PUBACKs, SUBACKs, PINGRESPs) waits with them, since TCP keeps order,
//! and the dead-server check is suspended until reading resumes.

mod driver;
mod handshake;
mod shared;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::mqttbytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::shared::{Command, Shared, Tagged};
use crate::error::{TimeoutStage, TransportError};

/// How long [`MqttConnection::disconnect`] (or a drop) waits for DISCONNECT to be written and
/// the stream to shut down.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a closed set: MQTT 3.1.1 defines these QoS levels and no other"
)]
pub enum QoS {
    /// At most once (0).
    AtMostOnce,
    /// At least once (1).
    AtLeastOnce,
    /// Exactly once (2): not supported by IoT Hub or DPS, refused by this client.
    ExactlyOnce,
}

impl QoS {
    fn to_wire(self) -> mqttbytes::QoS {
        match self {
            Self::AtMostOnce => mqttbytes::QoS::AtMostOnce,
            Self::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
            Self::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
        }
    }

    fn from_wire(qos: mqttbytes::QoS) -> Self {
        match qos {
            mqttbytes::QoS::AtMostOnce => Self::AtMostOnce,
            mqttbytes::QoS::AtLeastOnce => Self::AtLeastOnce,
            mqttbytes::QoS::ExactlyOnce => Self::ExactlyOnce,
        }
    }
}

/// Something the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// An application message. The session never acknowledges it on its own: acknowledge a
    /// QoS 1 message with [`MqttSender::ack`]`(packet_id)` once it counts as delivered (MQTT
    /// 3.1.1 §4.3.2); one left unacknowledged is redelivered by the server on a later
    /// connection.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Bytes,
        /// The packet id to acknowledge (QoS 1); `None` at QoS 0.
        packet_id: Option<u16>,
        /// The QoS it was delivered with.
        qos: QoS,
        /// The retain flag.
        retain: bool,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The server closed the connection.
    ClosedByPeer,
    /// The network failed.
    Network {
        /// The kind of I/O error.
        kind: io::ErrorKind,
        /// What went wrong.
        message: String,
    },
    /// Nothing arrived from the server for 1.5 × the keep-alive.
    KeepAliveTimeout,
    /// The server broke the protocol.
    ProtocolError(String),
    /// This client disconnected (or dropped the connection).
    ClosedByClient,
    /// The server sent a packet larger than this client accepts; the connection was closed as
    /// soon as the packet's header announced it, before buffering its body.
    TooLarge {
        /// The packet's size (its MQTT remaining length), in bytes.
        size: usize,
        /// The largest packet accepted, in bytes.
        limit: usize,
    },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClosedByPeer => f.write_str("closed by the server"),
            Self::Network { kind, message } => write!(f, "network error ({kind}): {message}"),
            Self::KeepAliveTimeout => f.write_str("keep-alive timeout"),
            Self::ProtocolError(message) => write!(f, "protocol error: {message}"),
            Self::ClosedByClient => f.write_str("closed by the client"),
            Self::TooLarge { size, limit } => write!(
                f,
                "the server sent a packet of {size} bytes, over the limit of {limit} bytes"
            ),
        }
    }
}

/// A cloneable handle that publishes and subscribes on a connection, so one task can
/// [`recv`](MqttConnection::recv) while others send. It does not keep the connection open:
/// once the [`MqttConnection`] is dropped or the connection dies, every call fails with
/// [`TransportError::ConnectionClosed`].
#[derive(Clone)]
pub struct MqttSender {
    shared: Arc<Shared>,
    subscribe_timeout: Duration,
}

impl fmt::Debug for MqttSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSender")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl MqttSender {
    /// Publishes `payload` on `topic`. QoS 0 resolves once the packet is written; QoS 1 when
    /// the server's PUBACK arrives. Several publishes may be in flight at once.
    ///
    /// # Errors
    /// [`TransportError::Unsupported`] for QoS 2 (nothing is sent) or an empty topic;
    /// [`TransportError::ConnectionClosed`] when the connection ends first;
    /// [`TransportError::ProtocolError`] when the packet cannot be encoded (too large).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
    ) -> Result<(), TransportError> {
        if qos == QoS::ExactlyOnce {
            return Err(TransportError::Unsupported("qos 2"));
        }
        if topic.is_empty() {
            return Err(TransportError::Unsupported("an empty topic"));
        }
        let (done, reply) = oneshot::channel();
        self.send(Command::Publish {
            topic: topic.to_owned(),
            payload: payload.into(),
            qos,
            done,
        })?;
        reply.await.unwrap_or(Err(TransportError::ConnectionClosed))
    }

    /// Subscribes to `filters` and waits for SUBACK: one entry per filter, the granted QoS or
    /// `None` when the server refused that filter.
    ///
    /// # Errors
    /// [`TransportError::Unsupported`] when a filter asks for QoS 2;
    /// [`TransportError::Timeout`] (stage `Subscribe`) when no SUBACK arrives within the
    /// subscribe timeout; [`TransportError::ConnectionClosed`] when the connection ends first.
    pub async fn subscribe(
        &self,
        filters: &[(&str, QoS)],
    ) -> Result<Vec<Option<QoS>>, TransportError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        if filters.iter().any(|(_, qos)| *qos == QoS::ExactlyOnce) {
            return Err(TransportError::Unsupported("qos 2"));
        }
        let (done, reply) = oneshot::channel();
        self.send(Command::Subscribe {
            filters: filters
                .iter()
                .map(|(filter, qos)| ((*filter).to_owned(), *qos))
                .collect(),
            done,
        })?;
        self.await_ack(reply).await
    }

    /// Unsubscribes from `filters` and waits for UNSUBACK (bounded by the subscribe timeout).
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    pub async fn unsubscribe(&self, filters: &[&str]) -> Result<(), TransportError> {
        if filters.is_empty() {
            return Ok(());
        }
        let (done, reply) = oneshot::channel();
        self.send(Command::Unsubscribe {
            filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            done,
        })?;
        self.await_ack(reply).await
    }

    /// Acknowledges (PUBACK) the incoming QoS 1 publish `packet_id` of this connection. Returns
    /// once the PUBACK is queued for writing.
    ///
    /// # Errors
    /// [`TransportError::ConnectionClosed`] when the connection has ended (the server then
    /// redelivers the message on a later connection).
    pub fn ack(&self, packet_id: u16) -> Result<(), TransportError> {
        self.send(Command::Ack { packet_id })
    }

    /// Whether the connection has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.is_outbox_closed()
    }

    fn send(&self, command: Command) -> Result<(), TransportError> {
        self.shared.send(command)
    }

    async fn await_ack<T>(
        &self,
        reply: oneshot::Receiver<Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        match tokio::time::timeout(self.subscribe_timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(TransportError::ConnectionClosed),
            Err(_) => Err(TransportError::Timeout {
                stage: TimeoutStage::Subscribe,
            }),
        }
    }
}

/// The outcomes of a connection's [tagged publishes](MqttConnection::publish_tagged), in
/// completion order. Once the connection has ended, every publish still outstanding comes
/// back failed with [`TransportError::ConnectionClosed`].
pub struct PublishOutcomes {
    shared: Arc<Shared>,
}

impl fmt::Debug for PublishOutcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishOutcomes").finish_non_exhaustive()
    }
}

impl PublishOutcomes {
    /// The next outcome: the tag and the result. Waits for ever when nothing is outstanding.
    /// Cancel-safe.
    pub async fn next(&self) -> (u64, Result<(), TransportError>) {
        self.shared.next_outcome().await
    }

    /// An outcome already in, if any, without waiting.
    #[must_use]
    pub fn try_next(&self) -> Option<(u64, Result<(), TransportError>)> {
        self.shared.try_next_outcome()
    }

    /// [`next`](Self::next) as a poll, for a driver that polls its sources by hand: the
    /// waker is registered only when no outcome is there.
    pub fn poll_next(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<(u64, Result<(), TransportError>)> {
        self.shared.poll_next_outcome(cx)
    }
}

/// An open MQTT connection: publish, subscribe, receive. Made by a [`Transport`](crate::Transport)
/// or, over a stream you opened yourself, by [`MqttConnection::handshake`].
///
/// Dropping it ends the connection (DISCONNECT, then the stream is shut down) and fails every
/// outstanding operation of its [senders](Self::sender); nothing is left running.
pub struct MqttConnection {
    sender: MqttSender,
    session_present: bool,
    shared: Arc<Shared>,
    /// The spawned session task (`None` with an inline session).
    task: Option<JoinHandle<()>>,
    /// The inline session, until [taken](Self::take_session).
    session: Option<Session>,
    /// The outcomes' one reader, until [`outcomes`](Self::outcomes) hands it out.
    outcomes: Option<PublishOutcomes>,
}

/// The work of a connection whose caller runs it ([`ConnectOptions::inline_session`](crate::ConnectOptions::inline_session)):
/// reading, writing, keep-alive. Poll it next to the rest of the caller's work until it
/// completes, which it does once the connection has closed. Once the [`MqttConnection`] is
/// dropped it sends DISCONNECT and completes within about two seconds; a caller that cannot
/// wait for that can [spawn](Self::spawn) it.
#[must_use = "nothing is read or written on the connection until the session is polled"]
pub struct Session(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl std::future::Future for Session {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl Session {
    /// Runs the rest of the session on its own task (a connection being let go, whose
    /// goodbye nobody waits for). Outside a tokio runtime the session is dropped: the stream
    /// closes without DISCONNECT.
    pub fn spawn(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(self));
        }
    }
}

impl fmt::Debug for MqttConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConnection")
            .field("session_present", &self.session_present)
            .field("close_reason", &self.shared.close_reason())
            .finish_non_exhaustive()
    }
}

impl MqttConnection {
    /// A handle for publishing and subscribing from other tasks.
    #[must_use]
    pub fn sender(&self) -> MqttSender {
        self.sender.clone()
    }

    /// See [`MqttSender::publish`].
    ///
    /// # Errors
    /// As [`MqttSender::publish`].
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
    ) -> Result<(), TransportError> {
        self.sender.publish(topic, payload, qos).await
    }

    /// Queues a publish without waiting for it: its outcome comes back, under `tag`, from
    /// [`outcomes`](Self::outcomes) (QoS 1: once the PUBACK arrives; QoS 0: once written).
    /// Nothing is allocated per message, and publishes queued together go out in one write:
    /// the path for a driver that keeps many messages in flight.
    ///
    /// # Errors
    /// At once: [`TransportError::Unsupported`] for QoS 2 or an empty topic,
    /// [`TransportError::ConnectionClosed`] once the connection has ended. Later, as the
    /// outcome: [`TransportError::ConnectionClosed`] when the connection ends first,
    /// [`TransportError::ProtocolError`] when the packet cannot be encoded (too large).
    pub fn publish_tagged(
        &self,
        tag: u64,
        topic: String,
        payload: Bytes,
        qos: QoS,
    ) -> Result<(), TransportError> {
        if qos == QoS::ExactlyOnce {
            return Err(TransportError::Unsupported("qos 2"));
        }
        if topic.is_empty() {
            return Err(TransportError::Unsupported("an empty topic"));
        }
        self.shared.send_tagged(Tagged {
            tag,
            topic,
            payload,
            qos,
        })
    }

    /// Where the outcomes of [`publish_tagged`](Self::publish_tagged) come back, as a handle of
    /// its own so that it can be awaited while the connection [receives](Self::recv). The
    /// outcomes have one reader: the first call hands the handle out, later ones `None`.
    #[must_use]
    pub fn outcomes(&mut self) -> Option<PublishOutcomes> {
        self.outcomes.take()
    }

    /// See [`MqttSender::subscribe`].
    ///
    /// # Errors
    /// As [`MqttSender::subscribe`].
    pub async fn subscribe(
        &self,
        filters: &[(&str, QoS)],
    ) -> Result<Vec<Option<QoS>>, TransportError> {
        self.sender.subscribe(filters).await
    }

    /// See [`MqttSender::unsubscribe`].
    ///
    /// # Errors
    /// As [`MqttSender::unsubscribe`].
    pub async fn unsubscribe(&self, filters: &[&str]) -> Result<(), TransportError> {
        self.sender.unsubscribe(filters).await
    }

    /// See [`MqttSender::ack`].
    ///
    /// # Errors
    /// As [`MqttSender::ack`].
    pub fn ack(&self, packet_id: u16) -> Result<(), TransportError> {
        self.sender.ack(packet_id)
    }

    /// The next message from the server; `None` once the connection has closed (then
    /// [`close_reason`](Self::close_reason) says why). Up to 32 messages wait here; beyond
    /// that the connection is not read until this is called (the server is pushed back by
    /// TCP), so acknowledgements of this side's publishes and subscribes wait too: keep
    /// receiving while waiting for them.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.shared.recv().await
    }

    /// A message already received, if any, without waiting.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.shared.try_recv()
    }

    /// [`recv`](Self::recv) as a poll, for a driver that polls its sources by hand: the
    /// waker is registered only when no message is there.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Incoming>> {
        self.shared.poll_recv(cx)
    }

    /// Why the connection closed; `None` while it is open.
    #[must_use]
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close_reason()
    }

    /// Whether the connection has closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.close_reason().is_some()
    }

    /// The CONNACK's session-present flag: whether the server kept subscriptions from a
    /// previous session (only possible with `clean_session = false`). When `false`, subscribe
    /// again.
    #[must_use]
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// The inline session to poll ([`ConnectOptions::inline_session`](crate::ConnectOptions::inline_session)),
    /// the first time only; `None` when the session runs on its own task.
    pub fn take_session(&mut self) -> Option<Session> {
        self.session.take()
    }

    /// Sends DISCONNECT, shuts the stream down cleanly and waits (briefly) for that to finish.
    /// An inline session does that while its owner polls it (an inline session never taken
    /// runs here).
    pub async fn disconnect(mut self) {
        self.shared.say_goodbye();
        if let Some(session) = self.session.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), session).await;
            return;
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), task).await;
        }
    }
}

impl Drop for MqttConnection {
    fn drop(&mut self) {
        // The task sends DISCONNECT and closes the stream on its own.
        self.shared.say_goodbye();
        // An inline session nobody took would never run its goodbye: it gets a task for it.
        if let Some(session) = self.session.take() {
            session.spawn();
        }
    }
}
