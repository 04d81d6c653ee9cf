//! [`UploadError`]: why a file upload failed. No variant ever holds a SAS token or a key.

use dps_auth::AuthError;
use dps_transport_mqtt::TransportError;

/// Why a file upload step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The uploader's settings are not usable (empty host, invalid device id, block size).
    #[error("invalid file upload configuration: {0}")]
    Config(String),
    /// The device's credentials could not be produced.
    #[error("cannot produce the device's credentials: {0}")]
    Credentials(#[from] AuthError),
    /// Reaching the hub or the storage account failed (DNS, TCP, proxy, TLS).
    #[error("connection to {host} failed: {source}")]
    Transport {
        /// The host that could not be reached.
        host: String,
        /// The cause.
        #[source]
        source: TransportError,
    },
    /// The hub refused a request (e.g. 403006: ten uploads are already in progress).
    #[error("the hub refused the request with http status {status}{}: {message}", code_text(*error_code))]
    Hub {
        /// The HTTP status.
        status: u16,
        /// The hub's six-digit error code, when it sent one.
        error_code: Option<u32>,
        /// The hub's message.
        message: String,
    },
    /// The storage account refused a request (e.g. 403 `AuthenticationFailed` once the blob
    /// SAS expired), after any retries.
    #[error("the storage account refused the {operation} with http status {status} ({code})")]
    Blob {
        /// The Blob REST operation (`Put Blob`, `Put Block`, `Put Block List`).
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The service's error code (`x-ms-error-code`), or `unknown`.
        code: String,
    },
    /// An HTTP exchange failed after the connection was made.
    #[error("http exchange with {host} failed: {message}")]
    Http {
        /// The host.
        host: String,
        /// What happened.
        message: String,
    },
    /// No answer in time.
    #[error("{host} did not answer within the request timeout")]
    Timeout {
        /// The host.
        host: String,
    },
    /// Reading the content failed.
    #[error("reading the content failed: {0}")]
    Read(#[source] std::io::Error),
    /// The content needs more blocks than a block blob may have (50,000): raise the block size.
    #[error("the content needs more than {max} blocks of {block_size} bytes")]
    TooLarge {
        /// The block limit.
        max: usize,
        /// The block size in use.
        block_size: usize,
    },
    /// The hub answered something that is not a file upload answer.
    #[error("unexpected answer from the hub: {0}")]
    InvalidResponse(String),
}

fn code_text(code: Option<u32>) -> String {
    code.map(|c| format!(" ({c})")).unwrap_or_default()
}

impl UploadError {
    /// Whether trying the same request again may succeed (network trouble, time-outs,
    /// throttling, server errors).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { source, .. } => source.is_retriable(),
            Self::Http { .. } | Self::Timeout { .. } => true,
            Self::Hub { status, .. } | Self::Blob { status, .. } => is_transient_status(*status),
            Self::Credentials(e) => e.is_retriable(),
            _ => false,
        }
    }

    /// The HTTP status to report in the hub notification of a failed upload.
    pub(crate) fn status_for_notification(&self) -> u16 {
        match self {
            Self::Blob { status, .. } | Self::Hub { status, .. } => *status,
            Self::Read(_) | Self::TooLarge { .. } => 400,
            Self::Timeout { .. } => 408,
            _ => 500,
        }
    }
}

/// The statuses worth a retry: 408, 429 and 5xx except 501 and 505 (as the storage SDKs do).
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}
