//! Direct methods and IoT Plug and Play commands: requests in, responses out
//! (hub-device-protocol §3.3, methods).

use alloc::string::ToString;

use bytes::Bytes;

use super::event::{Delivery, Event, MethodCall, RequestId, SendError};
use super::{Control, HubSession};
use crate::hub::{
    MAX_TELEMETRY_MESSAGE_SIZE, MethodResponseTopic, ParsedMethodRequest, split_command,
};
use crate::time::Timestamp;

impl HubSession {
    /// Answers the method request `rid` (as received) with `status` and a JSON `payload`. The
    /// outcome is [`Event::MethodResponded`]. While disconnected the response waits for the
    /// next connection.
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`close`](Self::close); [`SendError::TooLarge`] over 256 KiB.
    pub fn respond_method(
        &mut self,
        now: Timestamp,
        rid: &str,
        status: u16,
        payload: impl Into<Bytes>,
    ) -> Result<RequestId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let payload = payload.into();
        if payload.len() > MAX_TELEMETRY_MESSAGE_SIZE {
            return Err(SendError::TooLarge {
                size: payload.len(),
                limit: MAX_TELEMETRY_MESSAGE_SIZE,
            });
        }
        let request = self.next_request();
        self.control.push_back(Control::Method {
            request,
            topic: MethodResponseTopic::new(status, rid).to_string(),
            payload,
        });
        self.drive(now);
        Ok(request)
    }

    /// A method request came in: hand it to the application, which acknowledges it by
    /// accepting the delivery.
    pub(super) fn on_method(
        &mut self,
        request: &ParsedMethodRequest<'_>,
        payload: Bytes,
        delivery: Option<Delivery>,
    ) {
        let name = request
            .decoded_name()
            .map_or_else(|_| request.name.to_string(), |n| n.into_owned());
        let command = split_command(&name);
        let invocation = MethodCall {
            component: command.component.map(ToString::to_string),
            command: command.command.to_string(),
            rid: request.rid.to_string(),
            payload,
            name,
        };
        self.events.push_back(Event::MethodRequest {
            request: invocation,
            delivery,
        });
    }
}
