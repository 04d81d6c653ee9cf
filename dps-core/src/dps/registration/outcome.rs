//! How a registration ends.

use alloc::boxed::Box;
use alloc::string::String;
use core::time::Duration;

use serde_json::value::RawValue;

use super::event::RetryReason;
use crate::dps::model::{DeviceRegistrationResult, ErrorCode, ServiceError, Substatus};
use crate::mqtt::ConnectFailure;

/// A successful registration: the device's hub and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    operation_id: String,
    hub: String,
    device_id: String,
    // Boxed: an outcome waits in the machine's event queue, whose every slot is as large as
    // the largest event; the whole state inline made each registration in flight carry
    // 2.5 KB of empty slots (#16).
    state: Box<DeviceRegistrationResult>,
}

impl Assignment {
    /// Builds an assignment from an `assigned` registration state; `None` when the state does not
    /// name both a hub and a device id.
    #[must_use]
    pub fn from_state(operation_id: String, state: DeviceRegistrationResult) -> Option<Self> {
        Some(Self {
            operation_id,
            hub: state.assigned_hub.clone()?,
            device_id: state.device_id.clone()?,
            state: Box::new(state),
        })
    }

    /// The host name of the assigned IoT Hub.
    #[must_use]
    pub fn assigned_hub(&self) -> &str {
        &self.hub
    }

    /// The device id to use with the hub.
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// How this assignment relates to the previous one (initial, migrated, reset, ...).
    #[must_use]
    pub fn substatus(&self) -> Option<&Substatus> {
        self.state.substatus.as_ref()
    }

    /// The payload returned by a custom allocation function, as raw JSON text.
    #[must_use]
    pub fn payload(&self) -> Option<&RawValue> {
        self.state.payload.as_deref()
    }

    /// The issued certificate chain (base64 DER, leaf first), when a CSR was sent; empty
    /// otherwise. Any length is accepted.
    #[must_use]
    pub fn issued_certificate_chain(&self) -> &[String] {
        self.state
            .issued_certificate_chain
            .as_deref()
            .unwrap_or_default()
    }

    /// The operation id of the registration.
    #[must_use]
    pub fn operation_id(&self) -> &str {
        &self.operation_id
    }

    /// The full registration state as the service sent it.
    #[must_use]
    pub const fn registration_state(&self) -> &DeviceRegistrationResult {
        &self.state
    }

    /// Consumes the assignment, returning the full registration state.
    #[must_use]
    pub fn into_registration_state(self) -> DeviceRegistrationResult {
        *self.state
    }
}

/// Why a registration did not end with an assignment. Each variant says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The service refused the credentials (CONNACK 4/5, or a 401/403 response). Retrying will
    /// not help: check the key (or derived key), the certificate chain, and the id scope.
    #[error("unauthorized ({}): check the key or certificate and the id scope", describe_status(*.status))]
    Unauthorized {
        /// 401 or 403 for a response; 4 or 5 for a CONNACK refusal.
        status: u16,
        /// The service's error body, when there was one.
        error: Option<ServiceError>,
    },
    /// The broker refused the connection for another reason (CONNACK 1 or 2: protocol version or
    /// client id). Check the registration id and the endpoint.
    #[error("connection refused by the service (CONNACK {code})")]
    ConnectionRefused {
        /// The CONNACK return code.
        code: u8,
    },
    /// The enrollment (or the enrollment group) is disabled. Enable it in DPS first.
    #[error("the enrollment is disabled")]
    Disabled {
        /// The registration state, when sent (boxed: it is large, and rare).
        state: Option<Box<DeviceRegistrationResult>>,
    },
    /// The service ended the operation without assigning a hub (no linked hub fits).
    #[error("the device was not assigned to any hub")]
    Unassigned {
        /// The registration state, when sent (boxed: it is large, and rare).
        state: Option<Box<DeviceRegistrationResult>>,
    },
    /// The service tried and failed to assign the device (for example a custom allocation
    /// webhook error, or DPS unable to reach the hub). Quote the tracking id to support.
    #[error("registration failed{}: {}", fmt_code(.error_code), .message.as_deref().unwrap_or("no message"))]
    Failed {
        /// The six-digit error code.
        error_code: Option<ErrorCode>,
        /// The service's message.
        message: Option<String>,
        /// The tracking id, when sent.
        tracking_id: Option<String>,
        /// When it failed (ISO 8601, as sent).
        timestamp: Option<String>,
    },
    /// The service rejected the request (a 4xx other than 401/403/429), for example a malformed
    /// payload or a CSR on an api-version that does not accept one. Fix the request.
    #[error("request rejected (status {status})")]
    Rejected {
        /// The status.
        status: u16,
        /// The service's error body, when there was one.
        error: Option<ServiceError>,
    },
    /// The deadline passed (or the next permitted attempt would start after it) while the
    /// service was throttling. Try again later, spread over time.
    #[error("still throttled (status {status}) when the deadline passed")]
    Throttled {
        /// 429 or a 5xx.
        status: u16,
        /// The last `retry-after` the service asked for.
        retry_after: Option<Duration>,
    },
    /// The driver reported a connection failure retrying cannot fix (an untrusted server
    /// certificate, an insecure endpoint, credentials that cannot be produced); the driver's
    /// error says which.
    #[error("the connection failed in a way retrying cannot fix")]
    Unrecoverable,
    /// Every connection attempt failed, [`Timing::max_connect_failures`](super::Timing) times in
    /// a row: the endpoint is unreachable (wrong host or port, no network, a firewall). The
    /// driver's last transport error says more.
    #[error(
        "the service could not be reached: {attempts} connection attempts in a row failed (the last: {last})"
    )]
    Unreachable {
        /// The failed attempts in a row.
        attempts: u32,
        /// How the last one failed.
        last: ConnectFailure,
    },
    /// The service sent a response larger than the transport accepts (the transport closed the
    /// connection instead of buffering it). The same response would come again, so the
    /// registration ends: check what the enrollment returns (a custom allocation payload).
    #[error(
        "the service sent a response of {size} bytes, over the limit of {limit} bytes this client accepts"
    )]
    ResponseTooLarge {
        /// The response packet's size (its MQTT remaining length), in bytes.
        size: usize,
        /// The largest packet the transport accepts, in bytes.
        limit: usize,
    },
    /// The deadline passed without an answer. `last_problem` says what was happening.
    #[error("registration deadline exceeded")]
    Timeout {
        /// The last retried failure, if any.
        last_problem: Option<RetryReason>,
    },
}

/// CONNACK return codes are below 100; response statuses are HTTP-like.
fn describe_status(status: u16) -> String {
    if status < 100 {
        alloc::format!("CONNACK {status}")
    } else {
        alloc::format!("status {status}")
    }
}

fn fmt_code(code: &Option<ErrorCode>) -> String {
    code.map_or_else(String::new, |c| alloc::format!(" ({c})"))
}

/// The result a registration ends with.
pub type Outcome = Result<Assignment, RegistrationError>;

/// Helpers shared by the machine.
impl RegistrationError {
    pub(crate) fn failed(state: Option<&DeviceRegistrationResult>) -> Self {
        Self::Failed {
            error_code: state.and_then(|s| s.error_code),
            message: state.and_then(|s| s.error_message.clone()),
            tracking_id: None,
            timestamp: state.and_then(|s| s.last_updated_date_time_utc.clone()),
        }
    }
}
