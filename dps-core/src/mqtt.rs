//! The MQTT-level vocabulary both state machines speak: what goes out ([`Transmit`]), what
//! comes in (the [`Machine`] inputs), and the typed reasons of a failed or lost connection.
//!
//! One driver, generic over [`Machine`], runs the DPS [`Registration`](crate::dps::Registration)
//! and the IoT Hub [`HubSession`](crate::hub::HubSession) alike; see the
//! [crate docs](crate#the-driving-contract) for the contract.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

use crate::time::Timestamp;

/// MQTT quality of service. There is no QoS 2: IoT Hub closes the connection of a device that
/// uses it and DPS does not offer it, so this API cannot express it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a closed set: MQTT 3.1.1 defines these QoS levels and no other"
)]
pub enum QoS {
    /// At most once (0): no acknowledgement.
    AtMostOnce,
    /// At least once (1): acknowledged with PUBACK.
    AtLeastOnce,
}

/// Names one [`Transmit::Publish`] until its PUBACK ([`Machine::handle_puback`]) or its failure
/// ([`Machine::handle_publish_failed`]). A message published again after a reconnect gets a new
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublishId(u64);

impl PublishId {
    /// A publish id with the number `id` (machines number their publishes themselves; drivers
    /// only hand the id back).
    #[must_use]
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PublishId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An action for the driver. Perform it on the MQTT connection, then report what happened with
/// the matching [`Machine`] input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transmit {
    /// Open a connection: TLS, then MQTT CONNECT with `clean_session` and **fresh** credentials
    /// (ask the authenticator again on every connect: a token never outlives a reconnect).
    /// Report with [`Machine::handle_connected`] or [`Machine::handle_connect_failed`].
    Connect {
        /// The CONNECT clean-session flag: `true` for DPS, `false` for IoT Hub (the hub keeps
        /// cloud-to-device messages and subscriptions for a persistent session).
        clean_session: bool,
    },
    /// Subscribe to every filter at QoS 1, in one SUBSCRIBE. Report the SUBACK with
    /// [`Machine::handle_subscribed`] (`granted` false when any filter was refused).
    Subscribe {
        /// The topic filters.
        filters: Vec<String>,
    },
    /// Publish; report the PUBACK with [`Machine::handle_puback`] or a failure with
    /// [`Machine::handle_publish_failed`]. Several publishes may be outstanding at once.
    Publish {
        /// Correlates the PUBACK.
        id: PublishId,
        /// The topic.
        topic: String,
        /// The payload.
        payload: Bytes,
        /// The quality of service.
        qos: QoS,
    },
    /// Acknowledge (PUBACK) the incoming QoS 1 publish `packet_id` of the current connection.
    /// The transport never acknowledges on its own: the machine decides when a message counts
    /// as delivered (MQTT 3.1.1 §4.3.2: the receiver owns the message once it sent PUBACK).
    Ack {
        /// The packet id of the incoming PUBLISH.
        packet_id: u16,
    },
    /// Close the connection (DISCONNECT), or abandon the connection attempt in progress. No
    /// report is expected: the machine already counts the connection as gone.
    Disconnect,
}

/// The connection is up: what the CONNACK and the credentials said. Built with
/// [`Connected::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Connected {
    /// The CONNACK session-present flag.
    pub session_present: bool,
    /// The Unix expiry (seconds) of the credentials this connection presented; `None` when they
    /// do not expire (X.509).
    pub credentials_expire_at: Option<u64>,
    /// The wall clock at the connect, in Unix seconds: with `credentials_expire_at` it places
    /// the token renewal on the monotonic clock.
    pub unix_now: u64,
}

impl Connected {
    /// A connection with the CONNACK flag `session_present`, credentials expiring at
    /// `credentials_expire_at` (Unix seconds, `None` for X.509), accepted at `unix_now`.
    #[must_use]
    pub const fn new(
        session_present: bool,
        credentials_expire_at: Option<u64>,
        unix_now: u64,
    ) -> Self {
        Self {
            session_present,
            credentials_expire_at,
            unix_now,
        }
    }
}

/// A PUBLISH that came in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingPublish {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// The packet id (QoS 1), to acknowledge with [`Transmit::Ack`]; `None` at QoS 0.
    pub packet_id: Option<u16>,
    /// The quality of service it came with.
    pub qos: QoS,
}

impl IncomingPublish {
    /// A publish on `topic` with `payload`, at QoS 1 with `packet_id` when one is given and at
    /// QoS 0 otherwise.
    #[must_use]
    pub fn new(
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        packet_id: Option<u16>,
    ) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            packet_id,
            qos: if packet_id.is_some() {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            },
        }
    }
}

/// Why a connection attempt failed, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// CONNACK with a non-zero return code (MQTT 3.1.1 §3.2.2.3): 1 protocol version, 2
    /// identifier rejected, 3 server unavailable (retried), 4 bad user name or password, 5 not
    /// authorized (bad, expired or unknown credentials, or a disabled device).
    Refused {
        /// The CONNACK return code.
        code: u8,
    },
    /// TCP, TLS, WebSocket or the CONNACK wait failed in a way worth retrying.
    Network,
    /// A failure retrying cannot fix (an untrusted server certificate, an insecure URL,
    /// credentials the authenticator cannot produce). The machine ends.
    Unrecoverable,
}

/// The meaning of a CONNACK return code (MQTT 3.1.1 §3.2.2.3), for messages.
#[must_use]
pub const fn connack_meaning(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown return code",
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { code } => write!(
                f,
                "the server refused the connection (CONNACK return code {code}: {})",
                connack_meaning(*code)
            ),
            Self::Network => f.write_str("the connection attempt failed on the network"),
            Self::Unrecoverable => {
                f.write_str("the connection attempt failed in a way retrying cannot fix")
            }
        }
    }
}

/// How an established connection ended, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionLoss {
    /// The network failed, the keep-alive timed out, or the server broke the protocol.
    Network,
    /// The server closed the connection (for example when the token expired, the device was
    /// disabled, or another connection used the same identity).
    ClosedByService,
}

impl fmt::Display for ConnectionLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Network => "the connection failed on the network",
            Self::ClosedByService => "the service closed the connection",
        })
    }
}

/// A sans-IO MQTT client state machine: the contract both the DPS
/// [`Registration`](crate::dps::Registration) and the [`HubSession`](crate::hub::HubSession)
/// follow, so one driver runs either.
///
/// After creating the machine and after **every** input (a `handle_*` call or an application
/// call that takes `now`), drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event) until `None`, then wait for the next input or the instant
/// [`poll_timeout`](Self::poll_timeout) returned. Inputs that do not fit the machine's state
/// (a late report from an abandoned connection) are ignored.
pub trait Machine {
    /// What the machine reports to the application; its last one carries the outcome.
    type Event;

    /// The connection asked for by [`Transmit::Connect`] is up (CONNACK 0).
    fn handle_connected(&mut self, now: Timestamp, connected: Connected);
    /// The connection attempt failed.
    fn handle_connect_failed(&mut self, now: Timestamp, failure: ConnectFailure);
    /// The SUBACK for [`Transmit::Subscribe`] came in; `granted` is false when any filter was
    /// refused (the machine then drops the connection).
    fn handle_subscribed(&mut self, now: Timestamp, granted: bool);
    /// A PUBLISH came in. The machine acknowledges it with [`Transmit::Ack`] when it counts as
    /// delivered.
    fn handle_publish(&mut self, now: Timestamp, publish: IncomingPublish);
    /// The PUBACK of the publish `id` came in.
    fn handle_puback(&mut self, now: Timestamp, id: PublishId);
    /// The publish `id` could not be sent (the connection broke under it). The machine counts
    /// the connection as lost.
    fn handle_publish_failed(&mut self, now: Timestamp, id: PublishId);
    /// The established connection ended.
    fn handle_disconnected(&mut self, now: Timestamp, loss: ConnectionLoss);
    /// The instant from [`poll_timeout`](Self::poll_timeout) has come. Calling it early or
    /// twice is harmless.
    fn handle_timeout(&mut self, now: Timestamp);
    /// The next action for the driver, in order.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next event, in order.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When to call [`handle_timeout`](Self::handle_timeout) at the latest. `None` only once
    /// the machine has finished, or while nothing at all is scheduled (waiting for the report of
    /// a [`Transmit::Connect`] with no other timer running): then wait for the next input. Only
    /// an input moves it, never the passing of time alone.
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// True once the machine has ended (its final event is queued or was drained).
    fn is_finished(&self) -> bool;
}
