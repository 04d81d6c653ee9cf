//! What a [`Registration`](super::Registration) asks its driver to do, and what it reports.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::dps::response::ResponseError;
use crate::dps::topic::TopicError;

/// An action for the driver: perform it on the MQTT connection, then report the result through
/// the matching `handle_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Open a connection: TLS, then MQTT CONNECT with clean session and *fresh* credentials
    /// (ask the authenticator again on every connect). Report with
    /// [`handle_connected`](super::Registration::handle_connected) or
    /// [`handle_connect_failed`](super::Registration::handle_connect_failed).
    Connect,
    /// Subscribe to `topic_filter` at QoS 1. Report SUBACK with
    /// [`handle_subscribed`](super::Registration::handle_subscribed); a refused subscription is a
    /// broken connection ([`handle_disconnected`](super::Registration::handle_disconnected)).
    Subscribe {
        /// The filter, always [`SUBSCRIBE_TOPIC`](crate::dps::topic::SUBSCRIBE_TOPIC).
        topic_filter: &'static str,
    },
    /// Publish at QoS 1. Responses come back through
    /// [`handle_publish`](super::Registration::handle_publish).
    Publish {
        /// The topic.
        topic: String,
        /// The payload (empty for operation-status polls).
        payload: Vec<u8>,
    },
    /// Close the connection with DISCONNECT. Sent when the registration ends, and when the
    /// connection stopped being useful (no SUBACK in time).
    Disconnect,
}

/// Which request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// The registration request (`iotdps-register`).
    Register,
    /// An operation-status poll (`iotdps-get-operationstatus`).
    Poll,
}

/// Why a connection attempt failed, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectFailure {
    /// The server answered CONNACK with a non-zero return code (MQTT 3.1.1 §3.2.2.3).
    Refused {
        /// The CONNACK return code: 1 protocol version, 2 identifier rejected, 3 server
        /// unavailable, 4 bad user name or password, 5 not authorized.
        code: u8,
    },
    /// TCP, TLS or WebSocket failed, or no CONNACK came in time.
    Network,
}

/// Why the registration waits and tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The service throttled the request (429).
    Throttled {
        /// The status.
        status: u16,
    },
    /// The service had a transient failure (5xx).
    ServerError {
        /// The status.
        status: u16,
    },
    /// No answer to a request within the request timeout.
    RequestTimeout,
    /// The answer to our request could not be used.
    InvalidResponse(ResponseError),
    /// The service no longer knows the operation being polled; registering again.
    OperationNotFound,
    /// An `assigning` answer named no operation to poll; registering again.
    MissingOperationId,
    /// The connection dropped.
    ConnectionLost,
    /// A connection attempt failed.
    ConnectFailed(ConnectFailure),
    /// No SUBACK within the request timeout.
    SubscribeTimeout,
}

/// Why a received message was ignored. Ignored messages never change the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// The topic is not a DPS response topic.
    NotDps,
    /// The topic looks like a DPS response but is malformed, so its `$rid` cannot be trusted.
    MalformedTopic(TopicError),
    /// The `$rid` was never used by this registration.
    UnknownRid,
    /// The `$rid` belongs to an earlier request (answered, timed out, or lost in a reconnect):
    /// a duplicate or late response.
    StaleRid,
    /// The registration has already finished.
    Finished,
}

/// Something the driver may log or surface; draining events is required (see the crate docs),
/// acting on them is optional, except [`Event::Finished`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A request was handed to the driver.
    RequestSent {
        /// Which request.
        kind: RequestKind,
        /// Its `$rid`.
        rid: u64,
    },
    /// The service is assigning; the next poll is due after `retry_in`.
    Assigning {
        /// The operation being polled.
        operation_id: String,
        /// The wait before the next poll, after clamping.
        retry_in: Duration,
    },
    /// A request or connection failed in a way worth retrying; the next attempt is due after
    /// `retry_in`.
    Retrying {
        /// What went wrong.
        reason: RetryReason,
        /// Consecutive failures so far (1 for the first).
        attempt: u32,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// A received message was ignored.
    Ignored {
        /// Why.
        reason: IgnoreReason,
        /// The `$rid` it carried, when readable.
        rid: Option<String>,
    },
    /// The registration is over; take the result with
    /// [`take_outcome`](super::Registration::take_outcome).
    Finished,
}
