//! The registration state machine: register, poll until the service decides, retry what is
//! worth retrying, and end in a typed outcome.
//!
//! # Rules (from the service reference)
//! - Connect, subscribe to `$dps/registrations/res/#`, publish the registration request; poll
//!   `iotdps-get-operationstatus` while the service answers `assigning`.
//! - `retry-after` is honoured on *every* 202, the first one included, clamped into
//!   [`Timing::retry_after_floor`, `Timing::retry_after_ceiling`]; a 202 without it waits
//!   [`Timing::default_retry_after`].
//! - 429 and every 5xx are retried with exponential backoff plus jitter, never sooner than the
//!   service's `retry-after`. Lost responses (request timeout), unusable bodies and dropped
//!   connections are retried the same way.
//! - An `assigning` answer without an operation id, and a poll the service answers 404, restart
//!   from the registration request.
//! - Responses are correlated by `$rid`: an unknown or stale `$rid` (duplicates, late answers to
//!   abandoned requests) is reported as [`Event::Ignored`] and never trusted.
//! - 401/403 and CONNACK 4/5 end with [`RegistrationError::Unauthorized`] at once: a wrong key is
//!   not retried forever. `assigned`, `failed`, `disabled` and `unassigned` are all terminal and
//!   typed.
//! - Nothing is retried past [`Timing::deadline`]; when the next permitted attempt would start
//!   after it, the registration ends early with [`RegistrationError::Throttled`] or
//!   [`RegistrationError::Timeout`].
//! - Connection attempts that fail [`Timing::max_connect_failures`] times in a row (3 by
//!   default) end with [`RegistrationError::Unreachable`]: an endpoint that cannot be reached
//!   fails within seconds, not at the deadline.

mod config;
mod event;
mod machine;
mod outcome;

pub use crate::mqtt::{ConnectFailure, Transmit};
pub use config::{RegistrationConfig, Timing};
pub use event::{Event, IgnoreReason, RequestKind, RetryReason};
pub use machine::Registration;
pub use outcome::{Assignment, Outcome, RegistrationError};
