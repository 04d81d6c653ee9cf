//! A received DPS response: its topic and its body, parsed and checked together.

use alloc::boxed::Box;
use alloc::string::String;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::model::{
    DeviceRegistrationResult, ErrorCode, ModelError, RegistrationOperationStatus,
    RegistrationStatus, ServiceError,
};
use super::topic::{ResponseTopic, TopicError};

/// Why a received message is not a usable DPS response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The topic is not a DPS response topic, or is malformed.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The body is not what the protocol allows.
    #[error(transparent)]
    Body(#[from] ModelError),
}

/// The body of a response: an operation status or an error.
// One value per received message, moved at most once: boxing the larger variant would cost an
// allocation per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a closed set: a DPS response body is an operation status or an error"
)]
pub enum ResponseBody {
    /// `RegistrationOperationStatus` (200 and 202 responses).
    Operation(RegistrationOperationStatus),
    /// `ProvisioningServiceErrorDetails` (4xx and 5xx responses).
    Error(ServiceError),
}

/// A DPS response: the parsed topic (status, `$rid`, `retry-after`) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response<'a> {
    /// The parsed topic.
    pub topic: ResponseTopic<'a>,
    /// The parsed body.
    pub body: ResponseBody,
}

impl<'a> Response<'a> {
    /// Parses a message received on a DPS response topic.
    ///
    /// The body is an operation status when it has both `operationId` and `status`; otherwise it
    /// must be an error body with an `errorCode`. An operation status that names only one of
    /// `assignedHub` / `deviceId`, or an `assigned` one that names neither, is rejected: a device
    /// cannot act on half an assignment.
    ///
    /// ```
    /// use dps_core::dps::{Response, ResponseBody, RegistrationStatus};
    /// let r = Response::parse(
    ///     "$dps/registrations/res/202/?$rid=1&retry-after=3",
    ///     br#"{"operationId":"4.abc","status":"assigning"}"#,
    /// )?;
    /// assert_eq!(r.topic.retry_after, Some(3));
    /// let ResponseBody::Operation(op) = r.body else { panic!() };
    /// assert_eq!(op.status, RegistrationStatus::Assigning);
    /// # Ok::<(), dps_core::dps::ResponseError>(())
    /// ```
    pub fn parse(topic: &'a str, payload: &[u8]) -> Result<Self, ResponseError> {
        let topic = ResponseTopic::parse(topic)?;
        let body = parse_body(payload)?;
        Ok(Self { topic, body })
    }

    /// The HTTP-like status that decides what to do: the topic's, unless a success topic carries
    /// an error body, in which case the error code's status part.
    #[must_use]
    pub fn effective_status(&self) -> u16 {
        match &self.body {
            ResponseBody::Error(err) if self.topic.status < 300 => {
                u16::try_from(err.error_code.status()).unwrap_or(500)
            }
            _ => self.topic.status,
        }
    }
}

/// Every field of both body shapes, all optional, so the shape can be decided afterwards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBody {
    operation_id: Option<String>,
    status: Option<RegistrationStatus>,
    registration_state: Option<DeviceRegistrationResult>,
    error_code: Option<ErrorCode>,
    tracking_id: Option<String>,
    message: Option<String>,
    timestamp_utc: Option<String>,
    info: Option<Box<RawValue>>,
}

/// Parses a response body on its own (see [`Response::parse`] for the rules).
pub fn parse_body(payload: &[u8]) -> Result<ResponseBody, ModelError> {
    let wire: WireBody = serde_json::from_slice(payload).map_err(|e| ModelError::json(&e))?;
    match (wire.operation_id, wire.status) {
        (Some(operation_id), Some(status)) => {
            check_assignment(status, wire.registration_state.as_ref())?;
            Ok(ResponseBody::Operation(RegistrationOperationStatus {
                operation_id,
                status,
                registration_state: wire.registration_state,
            }))
        }
        (operation_id, status) => {
            let error_code = wire.error_code.ok_or(if operation_id.is_none() {
                ModelError::MissingField("operationId")
            } else if status.is_none() {
                ModelError::MissingField("status")
            } else {
                ModelError::MissingField("errorCode")
            })?;
            Ok(ResponseBody::Error(ServiceError {
                error_code,
                tracking_id: wire.tracking_id,
                message: wire.message,
                timestamp_utc: wire.timestamp_utc,
                info: wire.info,
            }))
        }
    }
}

fn check_assignment(
    status: RegistrationStatus,
    state: Option<&DeviceRegistrationResult>,
) -> Result<(), ModelError> {
    let hub = state.and_then(|s| s.assigned_hub.as_ref());
    let device = state.and_then(|s| s.device_id.as_ref());
    match (hub, device) {
        (Some(_), None) => Err(ModelError::MissingField("deviceId")),
        (None, Some(_)) => Err(ModelError::MissingField("assignedHub")),
        (None, None) if status == RegistrationStatus::Assigned => {
            Err(ModelError::MissingField("assignedHub"))
        }
        _ => Ok(()),
    }
}
