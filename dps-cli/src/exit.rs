//! Exit codes and the error type commands return.

use std::fmt;

/// The process exit code, one per failure class, so scripts can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitCode {
    /// The command did what was asked.
    Success = 0,
    /// The command failed while running (e.g. standard output could not be written).
    Failure = 1,
    /// The command line is wrong: unknown option, missing or malformed argument (reported by
    /// the argument parser).
    Usage = 2,
    /// An argument is well-formed but unusable: a key that is not base64, an invalid
    /// registration id, an empty resource.
    InvalidInput = 3,
    /// `provision`: the service refused the credentials (wrong key, certificate or id scope);
    /// `send`: the hub refused the device (wrong key, unknown or disabled device).
    Unauthorized = 10,
    /// `provision`: the enrollment is disabled.
    Disabled = 11,
    /// `provision`: the service failed the registration (e.g. custom allocation error).
    Failed = 12,
    /// `provision`: no hub was assigned.
    Unassigned = 13,
    /// `provision`: the service rejected the request (bad payload, CSR not accepted).
    Rejected = 14,
    /// `provision`: still throttled or failing when the deadline passed.
    Throttled = 15,
    /// `provision`: no answer before the deadline; `send`: not connected, or not every message
    /// acknowledged, before the deadline.
    Timeout = 16,
    /// `provision`, `send`: the endpoint cannot be used (TLS trust, host name, proxy), or
    /// `provision`: it could not be reached (refused or unreachable host and port).
    Transport = 17,
}

/// The exit codes, as shown at the end of every `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure while running the command (e.g. output could not be written)
  2  usage error: unknown option, missing or malformed argument
  3  invalid input: key not valid base64, invalid registration id, empty resource
 10  provision: unauthorized (wrong key, certificate or id scope)
     send: the hub refused the device (wrong key, unknown or disabled device)
 11  provision: the enrollment is disabled
 12  provision: the service failed the registration
 13  provision: no hub was assigned
 14  provision: the request was rejected (payload, CSR)
 15  provision: still throttled when the deadline passed
 16  provision, send: timed out
 17  provision, send: transport (TLS trust, host name, proxy, unreachable host or port)

Errors are printed as one line, 'error: ...', on standard error; keys never appear in them.";

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        Self::from(code as u8)
    }
}

/// A failure of a command: a one-line message and its exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    code: ExitCode,
    message: String,
}

impl CliError {
    /// An unusable argument value (exit code 3). The message must not contain secrets.
    pub(crate) fn invalid_input(message: impl fmt::Display) -> Self {
        Self {
            code: ExitCode::InvalidInput,
            message: message.to_string(),
        }
    }

    /// A failure with a specific exit code. The message must not contain secrets.
    pub(crate) fn new(code: ExitCode, message: impl fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }

    /// A failure while running (exit code 1). The message must not contain secrets.
    pub(crate) fn failure(message: impl fmt::Display) -> Self {
        Self {
            code: ExitCode::Failure,
            message: message.to_string(),
        }
    }

    pub(crate) const fn code(&self) -> ExitCode {
        self.code
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}
