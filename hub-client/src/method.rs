//! [`MethodRequest`]: a direct method invocation the application answers.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use dps_core::hub::{MethodCall, SendError};
use serde_json::Value;
use tokio::sync::oneshot;

/// Sends a method response through the client that received the request.
pub(crate) trait Responder: Send + Sync {
    /// Queues the response to `rid`; the receiver resolves when the hub acknowledged it.
    fn respond(
        &self,
        rid: &str,
        status: u16,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Result<(), SendError>>, SendError>;
}

/// A direct method invocation, from the [`method_requests`](crate::HubClient::method_requests)
/// stream. Answer it with [`respond`](Self::respond) before the caller's timeout.
pub struct MethodRequest {
    request: MethodCall,
    responder: Arc<dyn Responder>,
}

impl fmt::Debug for MethodRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.request, f)
    }
}

impl MethodRequest {
    pub(crate) fn new(request: MethodCall, responder: Arc<dyn Responder>) -> Self {
        Self { request, responder }
    }

    /// The method name (`thermostat1*getMaxMinReport` for a component command).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.request.name
    }

    /// The IoT Plug and Play component, if the name has one.
    #[must_use]
    pub fn component(&self) -> Option<&str> {
        self.request.component.as_deref()
    }

    /// The command (the name without its component).
    #[must_use]
    pub fn command(&self) -> &str {
        &self.request.command
    }

    /// The request id, as the hub sent it.
    #[must_use]
    pub fn request_id(&self) -> &str {
        &self.request.rid
    }

    /// The request body (JSON, possibly empty).
    #[must_use]
    pub const fn payload(&self) -> &Bytes {
        &self.request.payload
    }

    /// The request body as JSON (`Value::Null` when empty).
    ///
    /// # Errors
    /// When the body is not valid JSON.
    pub fn payload_json(&self) -> Result<Value, serde_json::Error> {
        if self.request.payload.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.request.payload)
    }

    /// Answers with `status` (the caller sees it as the method's result code) and a JSON
    /// `payload`; resolves when the hub acknowledged the response. While disconnected the
    /// response waits for the next connection.
    ///
    /// # Errors
    /// [`SendError::Closed`] when the client stopped first; [`SendError::TooLarge`].
    pub async fn respond(self, status: u16, payload: Value) -> Result<(), SendError> {
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        self.respond_raw(status, body).await
    }

    /// Answers with a body that is already JSON text.
    ///
    /// # Errors
    /// As [`respond`](Self::respond).
    pub async fn respond_raw(
        self,
        status: u16,
        payload: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let rx = self
            .responder
            .respond(&self.request.rid, status, payload.into())?;
        rx.await.unwrap_or(Err(SendError::Closed))
    }
}
