//! The MQTT interfaces the application implements, and the [`Outbox`] it sends with.
//!
//! The frame (this crate's `net` module) owns the MQTT 3.1.1 protocol mechanics: it reads CONNECT
//! first, answers CONNACK, PINGREQ, PUBACK/PUBREC/PUBCOMP, SUBACK and UNSUBACK, assigns packet ids
//! to outgoing QoS 1 messages, enforces keep-alive and packet-size limits, and closes the
//! connection on any protocol violation. The application sees only what matters to DPS or IoT Hub:
//! a [`ConnectRequest`] to accept or refuse, then, per accepted connection, one [`MqttSession`]
//! whose methods are called in the order the packets arrive.
//!
//! The same handler serves MQTT over TLS (port 8883) and MQTT over WebSocket (`/$iothub/websocket`
//! on the HTTPS port); [`ConnectRequest::transport`] tells them apart.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tokio::sync::mpsc;

pub use rumqttc::mqttbytes::QoS;
pub use rumqttc::mqttbytes::v4::ConnectReturnCode;

/// How the client reached the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerTransport {
    /// MQTT over TLS over TCP (the MQTT port, 8883 in production).
    Tcp,
    /// MQTT over WebSocket over TLS (`/$iothub/websocket` on the HTTPS port, 443 in production).
    WebSocket,
}

/// A client's CONNECT, with what the TLS layer knows about it.
#[derive(Clone)]
pub struct ConnectRequest {
    /// The MQTT client identifier (the registration id for DPS, the device id for IoT Hub).
    pub client_id: String,
    /// The user name, if the client sent one.
    pub username: Option<String>,
    /// The password (a SAS token for symmetric-key devices), if the client sent one. Never log it.
    pub password: Option<Vec<u8>>,
    /// The CONNECT's clean-session flag.
    pub clean_session: bool,
    /// The keep-alive interval in seconds the client asked for (0 = none). The frame enforces it.
    pub keep_alive: u16,
    /// The certificate chain the client presented in the TLS handshake, leaf first (empty when it
    /// presented none). Only possession of the leaf's key has been verified, not the chain.
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The transport the client used.
    pub transport: ListenerTransport,
    /// The client's address.
    pub peer_addr: SocketAddr,
}

impl fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            // Passwords are SAS tokens: credentials must never reach a log.
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("peer_certificates", &self.peer_certificates.len())
            .field("transport", &self.transport)
            .field("peer_addr", &self.peer_addr)
            .finish()
    }
}

/// The answer to one SUBSCRIBE filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// Subscribed, with this maximum QoS.
    Granted(QoS),
    /// Refused (SUBACK return code 0x80).
    Failure,
}

/// Returned by a session to make the frame drop the connection (without any further answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the session asked to close the connection")]
pub struct Close;

/// Why a connection ended, as reported to [`MqttSession::closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    ClientDisconnect,
    /// The connection was lost (EOF, reset, WebSocket close without DISCONNECT, write timeout).
    Network,
    /// Nothing arrived for 1.5 × the keep-alive interval.
    KeepAliveTimeout,
    /// The client broke the protocol (malformed or oversized packet, unexpected packet type).
    ProtocolError,
    /// The application closed it: [`Outbox::close`], or a session method returned [`Close`].
    ClosedByServer,
    /// The servers are shutting down.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientDisconnect => "the client disconnected",
            Self::Network => "the connection was lost",
            Self::KeepAliveTimeout => "nothing arrived within 1.5 times the keep-alive",
            Self::ProtocolError => "the client broke the protocol",
            Self::ClosedByServer => "closed by the emulator",
            Self::Shutdown => "the emulator is shutting down",
        })
    }
}

/// What the [`Outbox`] carries to the connection's writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Send a PUBLISH.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Bytes,
        /// The QoS it is sent with (QoS 2 is sent as QoS 1; see [`Outbox::publish`]).
        qos: QoS,
        /// The packet id (QoS 1), or `None` (QoS 0).
        pkid: Option<u16>,
    },
    /// Close the connection after everything queued before it has been written.
    Close,
}

/// The outbox is closed: the connection has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The connection has ended; nothing more can be sent on it.
    #[error("the MQTT connection is closed")]
    Closed,
    /// All 65 535 packet ids are waiting for a PUBACK.
    #[error("no free packet id: 65535 messages are waiting for PUBACK")]
    NoPacketId,
}

/// Sends to one client: a cheap, cloneable handle on the connection's write queue.
///
/// Messages are written in the order they are queued, after the CONNACK (so a handler may queue
/// messages from within [`MqttHandler::connect`]). The queue is unbounded: the emulator's
/// sessions produce messages in response to the client, so the client paces them.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    ids: Arc<Mutex<PacketIds>>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Outbox {
    /// A detached outbox and the receiving end of its queue: for unit tests of [`MqttSession`]
    /// implementations without a network connection. (The frame creates its own.)
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Self {
            tx,
            ids: Arc::new(Mutex::new(PacketIds::default())),
        };
        (outbox, rx)
    }

    /// Queues a PUBLISH and returns its packet id (`Some` for QoS 1, `None` for QoS 0).
    ///
    /// QoS 2 is sent as QoS 1: neither DPS nor IoT Hub sends QoS 2. The client's PUBACK reaches
    /// [`MqttSession::puback`] with the returned id. Unacknowledged messages are not resent.
    pub fn publish(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: QoS,
    ) -> Result<Option<u16>, OutboxError> {
        if self.tx.is_closed() {
            return Err(OutboxError::Closed);
        }
        let (qos, pkid) = match qos {
            QoS::AtMostOnce => (QoS::AtMostOnce, None),
            QoS::AtLeastOnce | QoS::ExactlyOnce => {
                let id = self.lock_ids().allocate().ok_or(OutboxError::NoPacketId)?;
                (QoS::AtLeastOnce, Some(id))
            }
        };
        let message = Outgoing::Publish {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            pkid,
        };
        if self.tx.send(message).is_err() {
            if let Some(id) = pkid {
                self.lock_ids().release(id);
            }
            return Err(OutboxError::Closed);
        }
        Ok(pkid)
    }

    /// Asks the frame to close the connection once everything queued so far has been written.
    /// The session's [`MqttSession::closed`] then gets [`CloseReason::ClosedByServer`].
    pub fn close(&self) {
        // Already closed is fine: the goal is reached either way.
        let _ = self.tx.send(Outgoing::Close);
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Frees a packet id when its PUBACK arrives; false if it was not in flight.
    pub(crate) fn acknowledge(&self, pkid: u16) -> bool {
        self.lock_ids().release(pkid)
    }

    fn lock_ids(&self) -> std::sync::MutexGuard<'_, PacketIds> {
        // The critical sections cannot panic halfway, so a poisoned lock still holds valid data.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Packet ids of outgoing QoS 1 messages still waiting for their PUBACK.
#[derive(Debug, Default)]
struct PacketIds {
    last: u16,
    in_flight: HashSet<u16>,
}

impl PacketIds {
    fn allocate(&mut self) -> Option<u16> {
        if self.in_flight.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            // Ids run 1..=65535 and wrap; 0 is not a valid packet id.
            self.last = self.last.checked_add(1).unwrap_or(1);
            if self.in_flight.insert(self.last) {
                return Some(self.last);
            }
        }
    }

    fn release(&mut self, pkid: u16) -> bool {
        self.in_flight.remove(&pkid)
    }
}

/// Accepts or refuses connections. One instance serves every connection of every listener.
#[async_trait]
pub trait MqttHandler: Send + Sync + 'static {
    /// Called once per connection with its CONNECT.
    ///
    /// `Ok(session)` answers CONNACK 0 (accepted) and the session then receives the connection's
    /// packets; `Err(code)` answers CONNACK with that code and closes the connection (an
    /// `Err(ConnectReturnCode::Success)` is sent as "server unavailable"). The client's
    /// [`Outbox`] may be kept and used at any time; messages queued here follow the CONNACK.
    ///
    /// The frame has already refused protocol levels other than MQTT 3.1.1 (CONNACK 1).
    async fn connect(
        &self,
        request: ConnectRequest,
        outbox: Outbox,
    ) -> Result<Box<dyn MqttSession>, ConnectReturnCode>;
}

/// One accepted connection. Its methods are called one at a time, in packet order; while one runs
/// the connection reads nothing more, so long work should be spawned and answered through the
/// [`Outbox`].
#[async_trait]
pub trait MqttSession: Send {
    /// The CONNACK's session-present flag (false unless overridden).
    fn session_present(&self) -> bool {
        false
    }

    /// SUBSCRIBE: one outcome per filter, in order (missing outcomes are sent as failures, extra
    /// ones dropped). `Err(Close)` drops the connection without a SUBACK.
    async fn subscribe(
        &mut self,
        filters: Vec<(String, QoS)>,
    ) -> Result<Vec<SubscribeOutcome>, Close>;

    /// UNSUBSCRIBE; the frame answers UNSUBACK after `Ok`.
    async fn unsubscribe(&mut self, filters: Vec<String>) -> Result<(), Close>;

    /// PUBLISH from the client, with the QoS it was sent with. After `Ok` the frame answers PUBACK
    /// (QoS 1) or PUBREC (QoS 2, then PUBCOMP on PUBREL; a retransmitted QoS 2 message is not
    /// delivered twice). `Err(Close)` drops the connection without an acknowledgement.
    async fn publish(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    ) -> Result<(), Close>;

    /// The client acknowledged the QoS 1 message that [`Outbox::publish`] numbered `pkid`.
    async fn puback(&mut self, _pkid: u16) {}

    /// The connection has ended; called exactly once, last.
    async fn closed(&mut self, reason: CloseReason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut ids = PacketIds {
            last: u16::MAX - 1,
            ..PacketIds::default()
        };
        assert_eq!(ids.allocate(), Some(u16::MAX));
        assert_eq!(ids.allocate(), Some(1));
        ids.last = 0;
        assert_eq!(ids.allocate(), Some(2), "1 is still in flight");
        assert!(ids.release(1));
        assert!(!ids.release(1));
    }

    #[test]
    fn outbox_numbers_qos1_and_downgrades_qos2() {
        let (outbox, mut rx) = Outbox::channel();
        assert_eq!(outbox.publish("a", "x", QoS::AtMostOnce), Ok(None));
        assert_eq!(outbox.publish("b", "y", QoS::ExactlyOnce), Ok(Some(1)));
        assert!(matches!(
            rx.try_recv(),
            Ok(Outgoing::Publish { pkid: None, .. })
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(Outgoing::Publish {
                qos: QoS::AtLeastOnce,
                pkid: Some(1),
                ..
            })
        ));
        assert!(outbox.acknowledge(1));
        drop(rx);
        assert!(outbox.is_closed());
        assert_eq!(
            outbox.publish("c", "z", QoS::AtLeastOnce),
            Err(OutboxError::Closed)
        );
    }

    #[test]
    fn debug_redacts_the_password() {
        let request = ConnectRequest {
            client_id: "dev".into(),
            username: None,
            password: Some(b"SharedAccessSignature sr=x&sig=SECRET".to_vec()),
            clean_session: true,
            keep_alive: 60,
            peer_certificates: Vec::new(),
            transport: ListenerTransport::Tcp,
            peer_addr: "127.0.0.1:1".parse().unwrap(),
        };
        assert!(!format!("{request:?}").contains("SECRET"));
    }
}
