//! Why a registration did not produce an assignment, and what to do about it.

use std::time::Duration;

use dps_core::dps::ServiceError;
use dps_core::dps::registration::{RegistrationError, RetryReason};
use dps_core::dps::{DeviceRegistrationResult, ErrorCode};
use dps_transport_mqtt::TransportError;

use crate::config_error::ConfigError;

/// A failed registration. Every variant says what to do; [`is_retriable`](Self::is_retriable)
/// tells a fleet manager whether trying again later can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// The service refused the credentials (CONNACK 4/5, or 401/403). Check the key (for group
    /// enrollments, the key derived for this registration id), the certificate chain, the id
    /// scope, and the device clock (token expiry).
    #[error(
        "unauthorized ({}): check the key or certificate, the id scope and the clock",
        describe_status(*.status)
    )]
    Unauthorized {
        /// 401/403 for a response, 4/5 for a CONNACK refusal.
        status: u16,
        /// The service's error body, when there was one.
        error: Option<ServiceError>,
    },
    /// The service refused the connection for a reason other than the credentials (CONNACK 1,
    /// protocol version, or 2, identifier rejected). Check the registration id and the
    /// endpoint.
    #[error("the service refused the connection (CONNACK return code {code}: {})", dps_core::mqtt::connack_meaning(*.code))]
    ConnectionRefused {
        /// The CONNACK return code.
        code: u8,
    },
    /// The enrollment is disabled. Enable it in DPS (or ask the operator); retrying will not help.
    #[error("the enrollment is disabled")]
    Disabled {
        /// The registration state, when sent.
        state: Option<Box<DeviceRegistrationResult>>,
    },
    /// The service ended without assigning a hub (no linked hub fits the enrollment).
    #[error("the device was not assigned to any hub")]
    Unassigned {
        /// The registration state, when sent.
        state: Option<Box<DeviceRegistrationResult>>,
    },
    /// The service tried and failed (for example the custom allocation webhook failed, or DPS
    /// could not reach the hub). Quote the error code and tracking id to support.
    #[error("registration failed{}: {}", code_suffix(.error_code), .message.as_deref().unwrap_or("no message"))]
    Failed {
        /// The six-digit error code.
        error_code: Option<ErrorCode>,
        /// The service's message.
        message: Option<String>,
        /// The tracking id, when sent.
        tracking_id: Option<String>,
    },
    /// The service rejected the request (a 4xx such as a malformed payload, or a CSR with an
    /// api-version that does not accept one). Fix the request.
    #[error("request rejected (status {status})")]
    Rejected {
        /// The status.
        status: u16,
        /// The service's error body, when there was one.
        error: Option<ServiceError>,
    },
    /// The deadline passed while the service kept throttling (429) or failing (5xx). Try again
    /// later, spread over time; raise the deadline for large fleets.
    #[error("still throttled or failing (status {status}) when the deadline passed")]
    Throttled {
        /// 429 or a 5xx.
        status: u16,
        /// The last `retry-after` the service asked for.
        retry_after: Option<Duration>,
    },
    /// Every connection attempt failed, [`Timing::max_connect_failures`](crate::Timing) times
    /// in a row: check the endpoint (host and port), the network and the firewall. Retrying
    /// later may help once the network is back.
    #[error(
        "cannot reach the provisioning service: {attempts} connection attempts in a row failed{}",
        last_suffix(.last)
    )]
    Unreachable {
        /// The failed attempts in a row.
        attempts: u32,
        /// The last attempt: where it went and how it failed (host, port, OS error), when the
        /// transport said.
        last: Option<ConnectError>,
    },
    /// The service sent a response larger than this client accepts (1 MiB), and the
    /// connection was closed rather than buffering it. Asking again brings the same response,
    /// so the registration ends at once: check what the enrollment returns (a custom
    /// allocation payload, an initial twin) and report it to whoever runs the service.
    #[error(
        "the service sent a response of {size} bytes, over the limit of {limit} bytes this client accepts"
    )]
    ResponseTooLarge {
        /// The response packet's size (its MQTT remaining length), in bytes.
        size: usize,
        /// The largest packet the client accepts, in bytes.
        limit: usize,
    },
    /// The deadline passed without an answer. `last_problem` says what kept failing (network,
    /// lost responses, ...).
    #[error("registration timed out{}{}", problem_suffix(.last_problem), last_suffix(.last_connect_error))]
    Timeout {
        /// The last retried failure, if any.
        last_problem: Option<RetryReason>,
        /// The last connection attempt, when it failed (host, port, OS error).
        last_connect_error: Option<ConnectError>,
    },
    /// The connection cannot work as configured: an untrusted or expired server certificate, a
    /// wrong host name, an insecure URL, a proxy refusal. Fix the endpoint or the trust roots.
    #[error("transport: {0}")]
    Transport(#[source] TransportError),
    /// The authenticator could not produce credentials (a signer failed, an X.509 identity
    /// whose CN differs from the registration id).
    #[error("credentials: {0}")]
    Credentials(#[source] dps_auth::AuthError),
    /// The connection failed in a way retrying cannot fix, and no transport or credentials
    /// error was kept to say more.
    #[error("the connection failed in a way retrying cannot fix")]
    Unrecoverable,
    /// The client configuration cannot work (for example a custom payload that is not JSON and
    /// an invalid registration id): every problem found, not only the first.
    #[error("invalid configuration: {0}")]
    Config(#[source] ConfigError),
}

impl ProvisioningError {
    /// True when trying again later may succeed (throttling, timeouts, transient network or
    /// service failures); false when something must be fixed first.
    #[must_use]
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Timeout { .. } | Self::Unreachable { .. } => true,
            Self::Transport(e) => e.is_retriable(),
            _ => false,
        }
    }
}

impl From<RegistrationError> for ProvisioningError {
    fn from(error: RegistrationError) -> Self {
        match error {
            RegistrationError::Unauthorized { status, error } => {
                Self::Unauthorized { status, error }
            }
            RegistrationError::ConnectionRefused { code } => Self::ConnectionRefused { code },
            RegistrationError::Disabled { state } => Self::Disabled { state },
            RegistrationError::Unassigned { state } => Self::Unassigned { state },
            RegistrationError::Failed {
                error_code,
                message,
                tracking_id,
                ..
            } => Self::Failed {
                error_code,
                message,
                tracking_id,
            },
            RegistrationError::Rejected { status, error } => Self::Rejected { status, error },
            RegistrationError::Throttled {
                status,
                retry_after,
            } => Self::Throttled {
                status,
                retry_after,
            },
            RegistrationError::Timeout { last_problem } => Self::Timeout {
                last_problem,
                last_connect_error: None,
            },
            RegistrationError::Unreachable { attempts, .. } => Self::Unreachable {
                attempts,
                last: None,
            },
            RegistrationError::ResponseTooLarge { size, limit } => {
                Self::ResponseTooLarge { size, limit }
            }
            RegistrationError::Unrecoverable => Self::Unrecoverable,
            // `RegistrationError` is non-exhaustive: an ending this version does not know is
            // not a timeout (nothing says the deadline passed), so it is reported as one that
            // retrying cannot fix.
            _ => Self::Unrecoverable,
        }
    }
}

impl ProvisioningError {
    /// Attaches the last failed connection attempt to the errors that report one.
    pub(crate) fn with_connect_error(mut self, error: Option<ConnectError>) -> Self {
        match &mut self {
            Self::Unreachable { last, .. } => *last = error,
            Self::Timeout {
                last_connect_error, ..
            } => *last_connect_error = error,
            _ => {}
        }
        self
    }
}

/// A failed connection attempt: where it went (host and port) and how it failed (the
/// transport's error, with the operating system's for a socket failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connecting to {endpoint} failed: {error}")]
#[non_exhaustive]
pub struct ConnectError {
    /// `host:port` (the transport's default port when the endpoint names none).
    pub endpoint: String,
    /// How the attempt failed.
    #[source]
    pub error: TransportError,
}

impl ConnectError {
    /// The failure of an attempt to `endpoint`, naming `default_port` when it names none.
    pub(crate) fn new(endpoint: &str, default_port: u16, error: TransportError) -> Self {
        let bare = endpoint.contains("://") || endpoint.contains('/');
        let has_port = endpoint
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        let endpoint = if bare || has_port {
            endpoint.to_owned()
        } else {
            format!("{endpoint}:{default_port}")
        };
        Self { endpoint, error }
    }
}

fn last_suffix(last: &Option<ConnectError>) -> String {
    last.as_ref()
        .map_or_else(String::new, |e| format!("; the last attempt: {e}"))
}

/// CONNACK return codes are below 100; response statuses are HTTP-like.
fn describe_status(status: u16) -> String {
    if status < 100 {
        format!("CONNACK {status}")
    } else {
        format!("status {status}")
    }
}

fn code_suffix(code: &Option<ErrorCode>) -> String {
    code.map_or_else(String::new, |c| format!(" ({c})"))
}

fn problem_suffix(problem: &Option<RetryReason>) -> String {
    problem
        .as_ref()
        .map_or_else(String::new, |p| format!(" (last problem: {p})"))
}
