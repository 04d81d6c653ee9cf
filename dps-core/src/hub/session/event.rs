//! What a [`HubSession`](super::HubSession) asks its driver to do, what the driver reports, and
//! what the session tells the application.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::hub::message::ReceivedMessage;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The number (unique within one session, increasing).
            #[must_use]
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// Names one accepted telemetry message until its outcome ([`Event::TelemetryAcked`],
    /// [`Event::TelemetryExpired`] or [`Event::TelemetryAbandoned`]: exactly one of them).
    MessageId
);
id_type!(
    /// Names a twin request or a method response until its outcome.
    RequestId
);

/// Names one item the hub delivered at QoS 1 (a cloud-to-device message, a module input, a
/// desired patch, a method request) until the application accepts it with
/// [`HubSession::accept`](super::HubSession::accept), which acknowledges it to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The connection it came on (the session numbers its connections).
    pub(crate) connection: u32,
    /// Its MQTT packet id on that connection.
    pub(crate) packet_id: u16,
}

impl Delivery {
    /// The MQTT packet id it came with.
    #[must_use]
    pub const fn packet_id(&self) -> u16 {
        self.packet_id
    }
}

/// Why the session is not connected at the moment; it reconnects by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The network failed (during a connect attempt or on an established connection).
    Network,
    /// The hub closed the connection.
    ClosedByService,
    /// The hub closed the connection after the token expired (the renewal did not happen in
    /// time, for example while the device slept).
    TokenExpired,
    /// Proactive renewal: the session reconnects at once with a fresh token.
    TokenRenewal,
    /// The hub refused the connection with a code worth retrying (3, server unavailable).
    Refused {
        /// The CONNACK code.
        code: u8,
    },
    /// No SUBACK in time, or a subscription was refused.
    SubscribeFailed,
    /// A publish waited longer than the ack timeout for its PUBACK: the connection was dead.
    AckTimeout,
    /// The device is provisioning (again) and connects to the hub DPS assigns next
    /// (`dps_core::device`).
    Reprovisioning,
}

/// Why the session stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// [`close`](super::HubSession::close) was called.
    Closed,
    /// The hub refused the credentials or the identity: CONNACK 4 (bad user name or password),
    /// 5 (not authorized: a wrong, expired or unknown key or certificate, or a **disabled**
    /// device), 1 or 2. Retrying with the same identity cannot help; fix the credentials or
    /// enable the device (or re-provision).
    Refused {
        /// The CONNACK code.
        code: u8,
    },
    /// [`Backoff::max_attempts`](super::Backoff::max_attempts) consecutive attempts failed.
    RetriesExhausted {
        /// Why the last one failed.
        last: DisconnectReason,
    },
    /// The driver reported a failure retrying cannot fix (TLS trust, insecure endpoint,
    /// unusable credentials).
    Unrecoverable,
}

/// The connection as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected and subscribed: messages flow.
    Connected,
    /// Not connected; the next attempt starts after `retry_in`.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// The wait before the next attempt.
        retry_in: Duration,
        /// Consecutive failed attempts so far (0 for a renewal).
        attempt: u32,
    },
    /// Stopped for good; every outstanding operation has been failed.
    Stopped(StopReason),
}

impl ConnectionState {
    /// Whether this is [`Connected`](Self::Connected).
    #[must_use]
    pub const fn is_connected(&self) -> bool {
        matches!(self, Self::Connected)
    }

    /// Whether this is [`Stopped`](Self::Stopped).
    #[must_use]
    pub const fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped(_))
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network => f.write_str("the network failed"),
            Self::ClosedByService => f.write_str("the hub closed the connection"),
            Self::TokenExpired => {
                f.write_str("the hub closed the connection after the token expired")
            }
            Self::TokenRenewal => f.write_str("reconnecting to renew the token"),
            Self::Refused { code } => write!(
                f,
                "the hub refused the connection (CONNACK return code {code}: {})",
                crate::mqtt::connack_meaning(*code)
            ),
            Self::SubscribeFailed => f.write_str("the subscription failed or was refused"),
            Self::AckTimeout => f.write_str("a publish waited too long for its PUBACK"),
            Self::Reprovisioning => f.write_str("the device is provisioning again"),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the session was closed"),
            Self::Refused { code } => write!(
                f,
                "the hub refused the credentials or the identity (CONNACK return code {code}: {})",
                crate::mqtt::connack_meaning(*code)
            ),
            Self::RetriesExhausted { last } => {
                write!(
                    f,
                    "every allowed connection attempt failed, the last because {last}"
                )
            }
            Self::Unrecoverable => {
                f.write_str("the connection failed in a way retrying cannot fix")
            }
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected => f.write_str("connected"),
            Self::Disconnected {
                reason, retry_in, ..
            } => write!(f, "disconnected ({reason}); retrying in {retry_in:?}"),
            Self::Stopped(reason) => write!(f, "stopped: {reason}"),
        }
    }
}

/// Why a message or request was not accepted, or did not reach the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The offline queue is full (`queued + in flight == capacity`). Nothing was queued: slow
    /// down, drop, or raise the capacity. Returned at once; never waits.
    #[error("the send queue is full ({capacity} messages)")]
    QueueFull {
        /// The configured capacity.
        capacity: usize,
    },
    /// The message is larger than IoT Hub accepts (body plus properties); nothing was queued.
    #[error("the message is {size} bytes, over the hub's limit of {limit}")]
    TooLarge {
        /// Body plus encoded properties, in bytes.
        size: usize,
        /// The limit (262 144).
        limit: usize,
    },
    /// The session is closing or stopped.
    #[error("the client is closed")]
    Closed,
    /// The request needs a feature turned off in [`Features`](super::Features) (twin requests
    /// without [`Features::twin`](super::Features::twin)).
    #[error("the feature this request needs is turned off")]
    NotSubscribed,
    /// The message's time to live ran out before the hub acknowledged it.
    #[error("the message expired before it could be sent")]
    Expired,
}

/// Why a twin request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TwinError {
    /// No answer within the request timeout (counted from the call, connected or not).
    #[error("no twin response within the request timeout")]
    Timeout,
    /// The hub answered with an error status: 400 (malformed patch), 429 (throttled; retry
    /// later), 5xx (service error; retry with backoff).
    #[error("the hub answered the twin request with status {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// The answer could not be read (not JSON, or no version).
    #[error("the twin response could not be read")]
    InvalidResponse,
    /// The session closed first.
    #[error("the client is closed")]
    Closed,
    /// Twin requests need [`Features::twin`](super::Features::twin), which is turned off.
    #[error("the twin feature is turned off")]
    NotSubscribed,
    /// The patch could not be serialized as a JSON object.
    #[error("the patch is not a JSON object")]
    InvalidPatch,
    /// The reported patch is larger than the hub accepts.
    #[error("the twin patch is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size of the patch.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// A device twin: the desired and reported property documents, each with its `$version`.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::exhaustive_structs,
    reason = "the twin document's two halves, as the hub sends them; scenario tests build it by literal"
)]
pub struct Twin {
    /// The desired properties (with `$version` and, from the hub, `$metadata`).
    pub desired: Value,
    /// The reported properties (with `$version`).
    pub reported: Value,
}

impl Twin {
    /// Reads a twin GET response body: `{"desired":{..},"reported":{..}}`.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let Value::Object(mut doc) = serde_json::from_slice::<Value>(body).ok()? else {
            return None;
        };
        let desired = doc
            .remove("desired")
            .unwrap_or(Value::Object(Default::default()));
        let reported = doc
            .remove("reported")
            .unwrap_or(Value::Object(Default::default()));
        Some(Self { desired, reported })
    }

    /// The desired properties' `$version`.
    #[must_use]
    pub fn desired_version(&self) -> Option<u64> {
        self.desired.get("$version").and_then(Value::as_u64)
    }

    /// The reported properties' `$version`.
    #[must_use]
    pub fn reported_version(&self) -> Option<u64> {
        self.reported.get("$version").and_then(Value::as_u64)
    }
}

/// A direct method (or IoT Plug and Play command) invocation. Answer it with
/// [`respond_method`](super::HubSession::respond_method) and its [`rid`](Self::rid).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodCall {
    /// The method name, percent-decoded (`thermostat1*getMaxMinReport` for a component
    /// command).
    pub name: String,
    /// The IoT Plug and Play component: the part before `*`, if any.
    pub component: Option<String>,
    /// The command: the part after `*`, or the whole name.
    pub command: String,
    /// The request id exactly as the hub sent it; echo it in the response.
    pub rid: String,
    /// The request body (JSON, possibly empty).
    pub payload: Bytes,
}

/// Why a received publish was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// No IoT Hub feature of this session matches the topic.
    UnknownTopic,
    /// The topic belongs to a feature but is malformed.
    MalformedTopic,
    /// The topic names another device or module.
    OtherIdentity,
    /// A twin response whose `$rid` no pending request has (late, duplicate, or timed out).
    UnknownRequest,
    /// A desired patch whose body is not a JSON object.
    InvalidBody,
    /// The session has stopped.
    Stopped,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownTopic => "no feature of this session matches the topic",
            Self::MalformedTopic => "the topic is malformed",
            Self::OtherIdentity => "the topic names another device or module",
            Self::UnknownRequest => "no pending twin request has this request id",
            Self::InvalidBody => "the desired patch is not a JSON object",
            Self::Stopped => "the session has stopped",
        })
    }
}

/// Something the application may act on. Draining events is required (see the
/// [module docs](super)); acting on them is optional.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The connection state changed.
    ConnectionState(ConnectionState),
    /// The hub acknowledged (PUBACK) the telemetry message.
    TelemetryAcked {
        /// The message.
        id: MessageId,
    },
    /// The message's time to live ran out while it waited in the queue.
    TelemetryExpired {
        /// The message.
        id: MessageId,
    },
    /// The session stopped before the message was acknowledged. (It may have reached the hub:
    /// its PUBACK did not.)
    TelemetryAbandoned {
        /// The message.
        id: MessageId,
    },
    /// A cloud-to-device message; accept its `delivery` once the application has it.
    C2d {
        /// The message.
        message: ReceivedMessage,
        /// What to [`accept`](super::HubSession::accept) (`None` at QoS 0).
        delivery: Option<Delivery>,
    },
    /// A module input message; accept its `delivery` once the application has it.
    Input {
        /// The message.
        message: ReceivedMessage,
        /// What to [`accept`](super::HubSession::accept) (`None` at QoS 0).
        delivery: Option<Delivery>,
    },
    /// A desired-properties patch pushed by the hub; accept its `delivery` once the
    /// application has it.
    DesiredPatch {
        /// Its `$version`.
        version: u64,
        /// The patch (a JSON object, `$version` included).
        body: Value,
        /// What to [`accept`](super::HubSession::accept) (`None` at QoS 0).
        delivery: Option<Delivery>,
    },
    /// The answer to [`get_twin`](super::HubSession::get_twin).
    TwinReceived {
        /// The request.
        request: RequestId,
        /// The twin or why not.
        result: Result<Twin, TwinError>,
    },
    /// The answer to [`update_reported`](super::HubSession::update_reported).
    ReportedUpdated {
        /// The request.
        request: RequestId,
        /// The new reported version or why not.
        result: Result<u64, TwinError>,
    },
    /// The twin as re-read after a connect: desired patches are not delivered while offline, so
    /// reconcile with this full document.
    TwinResync {
        /// The whole twin.
        twin: Twin,
        /// How many desired versions were missed since the last one seen (`0`: none). `None`
        /// on the first connect, when no earlier version is known.
        missed: Option<u64>,
    },
    /// A direct method invocation; accept its `delivery` once the application has it.
    MethodRequest {
        /// The invocation.
        request: MethodCall,
        /// What to [`accept`](super::HubSession::accept) (`None` at QoS 0).
        delivery: Option<Delivery>,
    },
    /// The outcome of a method response.
    MethodResponded {
        /// The response ([`respond_method`](super::HubSession::respond_method)'s id).
        request: RequestId,
        /// `Ok` once the hub acknowledged it; `Err(SendError::Closed)` if the session stopped
        /// first.
        result: Result<(), SendError>,
    },
    /// A received publish was ignored.
    Ignored {
        /// Its topic.
        topic: String,
        /// Why.
        reason: IgnoreReason,
    },
    /// The session stopped for good: always the last event.
    Stopped(StopReason),
}

#[cfg(test)]
mod display_tests {
    use alloc::string::ToString as _;

    use super::*;

    #[test]
    fn reasons_print_sentences_not_variant_names() {
        let text = IgnoreReason::OtherIdentity.to_string();
        assert_eq!(text, "the topic names another device or module");
        let stop = StopReason::RetriesExhausted {
            last: DisconnectReason::AckTimeout,
        }
        .to_string();
        assert!(!stop.contains("RetriesExhausted"), "{stop}");
        assert!(!DisconnectReason::Network.to_string().contains("Network"));
    }
}
