//! Service API failures: an HTTP status plus the service's error body.

use http::StatusCode;

use crate::net::HttpResponse;
use crate::util::{ids, time};

/// A refused service operation, as the REST API reports it and the Rust API returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} ({error_code}): {message}")]
pub struct ServiceFailure {
    /// The HTTP status.
    pub status: u16,
    /// The six-digit error code.
    pub error_code: u32,
    /// What went wrong.
    pub message: String,
}

impl ServiceFailure {
    pub(crate) fn new(status: u16, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 400_004, message)
    }

    pub(crate) fn not_found(error_code: u32, message: impl Into<String>) -> Self {
        Self::new(404, error_code, message)
    }

    pub(crate) fn precondition_failed() -> Self {
        Self::new(
            412,
            412_001,
            "The ETag in the request does not match the ETag of the existing resource, as per RFC7232.",
        )
    }

    /// The REST answer: status and the service's error body.
    pub(crate) fn to_response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::json(
            status,
            &serde_json::json!({
                "errorCode": self.error_code,
                "trackingId": ids::tracking_id(),
                "message": self.message,
                "timestampUtc": time::now_utc(),
            }),
        )
        .with_header(
            http::header::HeaderName::from_static("x-ms-error-code"),
            http::HeaderValue::from(self.error_code),
        )
    }
}
