//! The device twin: GET, reported patches, desired patches, and the re-read after every
//! connect (hub-device-protocol §3.3, twin).

use bytes::Bytes;
use serde_json::Value;

use super::event::{Delivery, Event, IgnoreReason, RequestId, SendError, Twin, TwinError};
use super::{Control, HubSession, Timer};
use crate::hub::TwinMessage;
use crate::time::Timestamp;

/// The largest reported-properties patch the hub accepts (the whole reported document is
/// limited to 32 KiB).
pub const MAX_REPORTED_PATCH_SIZE: usize = 32 * 1024;

/// What a twin request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TwinKind {
    Get,
    Resync,
    Patch(Bytes),
}

/// A twin request waiting for its answer.
#[derive(Debug, Clone)]
pub(super) struct TwinOp {
    pub(super) kind: TwinKind,
    pub(super) deadline: Timestamp,
}

impl HubSession {
    /// Asks for the whole twin; the answer is [`Event::TwinReceived`].
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`close`](Self::close); [`SendError::NotSubscribed`] when
    /// [`Features::twin`](super::Features::twin) is off.
    pub fn get_twin(&mut self, now: Timestamp) -> Result<RequestId, SendError> {
        self.twin_request(now, TwinKind::Get)
    }

    /// Patches the reported properties (`null` members delete); the answer, with the new
    /// version, is [`Event::ReportedUpdated`].
    ///
    /// # Errors
    /// As [`get_twin`](Self::get_twin), and [`SendError::TooLarge`] over 32 KiB.
    pub fn update_reported(
        &mut self,
        now: Timestamp,
        patch: &Value,
    ) -> Result<RequestId, SendError> {
        let body = serde_json::to_vec(patch).unwrap_or_default();
        if body.len() > MAX_REPORTED_PATCH_SIZE {
            return Err(SendError::TooLarge {
                size: body.len(),
                limit: MAX_REPORTED_PATCH_SIZE,
            });
        }
        self.twin_request(now, TwinKind::Patch(Bytes::from(body)))
    }

    pub(super) fn twin_request(
        &mut self,
        now: Timestamp,
        kind: TwinKind,
    ) -> Result<RequestId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        if !self.config.features.twin {
            return Err(SendError::NotSubscribed);
        }
        let id = self.next_request();
        self.twin.insert(
            id,
            TwinOp {
                kind,
                deadline: now + self.config.request_timeout,
            },
        );
        self.control.push_back(Control::Twin(id));
        self.drive(now);
        Ok(id)
    }

    pub(super) fn start_resync(&mut self, now: Timestamp) {
        self.timers.stop(Timer::Resync);
        let id = self.next_request();
        self.twin.insert(
            id,
            TwinOp {
                kind: TwinKind::Resync,
                deadline: now + self.config.request_timeout,
            },
        );
        self.control.push_front(Control::Twin(id));
    }

    pub(super) fn resync_failed(&mut self, now: Timestamp) {
        self.resync_failures = self.resync_failures.saturating_add(1);
        let delay = self.backoff_delay(self.resync_failures);
        self.timers.set(Timer::Resync, now + delay);
    }

    pub(super) fn fail_twin(&mut self, request: RequestId, kind: &TwinKind, error: TwinError) {
        match kind {
            TwinKind::Get => self.events.push_back(Event::TwinReceived {
                request,
                result: Err(error),
            }),
            TwinKind::Patch(_) => self.events.push_back(Event::ReportedUpdated {
                request,
                result: Err(error),
            }),
            TwinKind::Resync => {}
        }
    }

    pub(super) fn on_twin(
        &mut self,
        now: Timestamp,
        topic: &str,
        message: TwinMessage<'_>,
        payload: &[u8],
        delivery: Option<Delivery>,
    ) {
        if let TwinMessage::DesiredPatch { version } = message {
            let body = match serde_json::from_slice::<Value>(payload) {
                Ok(body @ Value::Object(_)) => body,
                _ => return self.ignore(topic, IgnoreReason::InvalidBody, delivery),
            };
            let version = body
                .get("$version")
                .and_then(Value::as_u64)
                .or_else(|| version.and_then(|v| v.parse().ok()))
                .unwrap_or_default();
            self.last_desired = Some(self.last_desired.map_or(version, |v| v.max(version)));
            self.events.push_back(Event::DesiredPatch {
                version,
                body,
                delivery,
            });
            return;
        }
        // A response is consumed by the session itself: acknowledged at once.
        self.ack(delivery);
        let request = message
            .decoded_rid()
            .ok()
            .flatten()
            .and_then(|rid| rid.parse::<u64>().ok())
            .map(RequestId);
        let Some((request, op)) = request.and_then(|r| self.twin.remove(&r).map(|op| (r, op)))
        else {
            return self.ignore(topic, IgnoreReason::UnknownRequest, None);
        };
        self.release_if_idle();
        match (op.kind, message) {
            (TwinKind::Resync, TwinMessage::GetResponse { .. }) => match Twin::parse(payload) {
                Some(twin) => {
                    self.resync_failures = 0;
                    let version = twin.desired_version();
                    let missed = match (self.last_desired, version) {
                        (Some(last), Some(v)) => Some(v.saturating_sub(last)),
                        _ => None,
                    };
                    if let Some(v) = version {
                        self.last_desired = Some(self.last_desired.map_or(v, |l| l.max(v)));
                    }
                    self.events.push_back(Event::TwinResync { twin, missed });
                }
                None => self.resync_failed(now),
            },
            (TwinKind::Resync, _) => self.resync_failed(now),
            (TwinKind::Get, TwinMessage::GetResponse { .. }) => {
                let result = Twin::parse(payload).ok_or(TwinError::InvalidResponse);
                if let Ok(Some(v)) = result.as_ref().map(Twin::desired_version) {
                    self.last_desired = Some(self.last_desired.map_or(v, |l| l.max(v)));
                }
                self.events
                    .push_back(Event::TwinReceived { request, result });
            }
            (
                kind @ (TwinKind::Get | TwinKind::Patch(_)),
                TwinMessage::RequestError { status, .. },
            ) => self.fail_twin(request, &kind, TwinError::Status { status }),
            (TwinKind::Patch(_), TwinMessage::ReportedAck { version, .. })
            | (TwinKind::Patch(_), TwinMessage::GetResponse { version, .. }) => {
                let result = version
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(TwinError::InvalidResponse);
                self.events
                    .push_back(Event::ReportedUpdated { request, result });
            }
            (kind, _) => self.fail_twin(request, &kind, TwinError::InvalidResponse),
        }
    }
}
