//! What a [`Registration`](super::Registration) asks its driver to do, and what it reports.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use super::outcome::Outcome;
use crate::dps::response::ResponseError;
use crate::dps::topic::TopicError;
use crate::mqtt::ConnectFailure;

/// Which request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// The registration request (`iotdps-register`).
    Register,
    /// An operation-status poll (`iotdps-get-operationstatus`).
    Poll,
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
    /// The service refused the subscription to the response topic.
    SubscribeRefused,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Throttled { status } => {
                write!(f, "the service throttled the request (status {status})")
            }
            Self::ServerError { status } => {
                write!(f, "the service had a transient failure (status {status})")
            }
            Self::RequestTimeout => f.write_str("no answer came within the request timeout"),
            Self::InvalidResponse(error) => write!(f, "the answer could not be used: {error}"),
            Self::OperationNotFound => {
                f.write_str("the service no longer knows the operation; registering again")
            }
            Self::MissingOperationId => {
                f.write_str("the service named no operation to poll; registering again")
            }
            Self::ConnectionLost => f.write_str("the connection dropped"),
            Self::ConnectFailed(failure) => write!(f, "{failure}"),
            Self::SubscribeTimeout => f.write_str("no SUBACK came within the request timeout"),
            Self::SubscribeRefused => f.write_str("the service refused the subscription"),
        }
    }
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

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDps => f.write_str("the topic is not a DPS response topic"),
            Self::MalformedTopic(e) => write!(f, "the response topic is malformed: {e}"),
            Self::UnknownRid => f.write_str("no request of this registration used this $rid"),
            Self::StaleRid => f.write_str("the $rid belongs to an earlier request"),
            Self::Finished => f.write_str("the registration has already finished"),
        }
    }
}

/// Something the driver may log or surface; draining events is required (see the crate docs),
/// acting on them is optional, except [`Event::Finished`], always the last one.
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
    /// The registration is over, with its outcome. Always the last event.
    Finished(Outcome),
}

#[cfg(test)]
mod display_tests {
    use alloc::string::ToString as _;

    use super::*;

    #[test]
    fn ignore_reasons_print_sentences() {
        assert_eq!(
            IgnoreReason::StaleRid.to_string(),
            "the $rid belongs to an earlier request"
        );
        assert!(!IgnoreReason::NotDps.to_string().contains("NotDps"));
    }
}
