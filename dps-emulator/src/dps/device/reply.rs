//! Responses to device requests: status, `retry-after` and body.

use serde::Serialize;

use crate::util::{ids, time};

/// One answer on `$dps/registrations/res/{status}/?$rid={rid}[&retry-after=..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u32>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(status: u16, retry_after: Option<u32>, body: &impl Serialize) -> Self {
        Self {
            status,
            retry_after,
            // Our own models always serialize.
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// The service's error body (`ProvisioningServiceErrorDetails`) with a fresh tracking id.
    pub(crate) fn error(
        status: u16,
        error_code: u32,
        message: &str,
        retry_after: Option<u32>,
    ) -> Self {
        Self::json(
            status,
            retry_after,
            &serde_json::json!({
                "errorCode": error_code,
                "trackingId": ids::tracking_id(),
                "message": message,
                "timestampUtc": time::now_utc(),
            }),
        )
    }

    /// The error answer for an injected status, with the reference's codes and messages.
    pub(crate) fn injected(status: u16, retry_after: Option<u32>) -> Self {
        let (code, message) = match status {
            429 => (429_001, "Operations are being throttled by the service."),
            500 => (500_001, "Internal server error."),
            s if s >= 500 => (
                u32::from(s) * 1000 + 1,
                "The service is temporarily unavailable.",
            ),
            s => (u32::from(s) * 1000, "Injected error."),
        };
        Self::error(status, code, message, retry_after)
    }
}
