//! Telemetry: the offline queue, the in-flight window, expiry, and redelivery after a dropped
//! connection (hub-device-protocol §3.3: device-to-cloud messages at QoS 1).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;

use super::event::{Event, MessageId, RequestId, SendError, TwinError};
use super::twin::TwinKind;
use super::{Conn, Control, HubSession, Sent, Timer};
use crate::encoding::appending;
use crate::hub::message::Message;
use crate::hub::{MAX_TELEMETRY_MESSAGE_SIZE, TelemetryTopic, TwinGetTopic, TwinReportedTopic};
use crate::time::Timestamp;

/// A telemetry message waiting to be sent.
///
/// It keeps its encoded property bag, not its topic: the topic is formatted once per PUBLISH
/// straight into the `String` the transmit owns, so a message costs one topic allocation per
/// send instead of a topic plus a clone of it (and no allocation at all for the bag when the
/// message has no properties).
#[derive(Debug, Clone)]
pub(super) struct Queued {
    pub(super) id: MessageId,
    pub(super) bag: String,
    pub(super) payload: Bytes,
    pub(super) expires_at: Option<Timestamp>,
    pub(super) heartbeat: bool,
}

impl HubSession {
    /// Queues a telemetry message; it is sent (QoS 1) as soon as the connection and the
    /// in-flight window allow, and again after a reconnect if its PUBACK was lost.
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`close`](Self::close); [`SendError::TooLarge`] over 256 KiB
    /// (body plus properties); [`SendError::QueueFull`] at capacity. Nothing is queued then.
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
    ) -> Result<MessageId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let bag = message.properties.encode();
        let size = message.payload.len() + bag.len();
        if size > MAX_TELEMETRY_MESSAGE_SIZE {
            return Err(SendError::TooLarge {
                size,
                limit: MAX_TELEMETRY_MESSAGE_SIZE,
            });
        }
        let capacity = self.config.queue_capacity;
        if self.pending_telemetry() >= capacity {
            return Err(SendError::QueueFull { capacity });
        }
        let ttl = message.expires_in.or(self.config.default_ttl);
        let id = self.enqueue(now, bag, message.payload, ttl, false);
        self.drive(now);
        Ok(id)
    }

    pub(super) fn enqueue(
        &mut self,
        now: Timestamp,
        bag: String,
        payload: Bytes,
        ttl: Option<Duration>,
        heartbeat: bool,
    ) -> MessageId {
        let id = MessageId(self.next_id);
        self.next_id += 1;
        let expires_at = ttl.map(|ttl| now + ttl);
        if let Some(at) = expires_at {
            self.expiries.insert((at, id));
        }
        self.queue.push_back(Queued {
            id,
            bag,
            payload,
            expires_at,
            heartbeat,
        });
        id
    }

    /// Puts the content of an unacknowledged publish back where it waits to be sent.
    pub(super) fn requeue(&mut self, sent: Sent) {
        match sent {
            Sent::Telemetry(q) => {
                self.telemetry_in_flight -= 1;
                if q.heartbeat {
                    return;
                }
                if let Some(at) = q.expires_at {
                    self.expiries.insert((at, q.id));
                }
                let at = self.queue.partition_point(|other| other.id < q.id);
                self.queue.insert(at, q);
            }
            Sent::Control(Control::Twin(id)) => {
                if self
                    .twin
                    .get(&id)
                    .is_some_and(|op| op.kind != TwinKind::Resync)
                {
                    self.control.push_front(Control::Twin(id));
                }
            }
            Sent::Control(method) => self.control.push_front(method),
        }
    }

    pub(super) fn requeue_in_flight(&mut self) {
        let in_flight = core::mem::take(&mut self.in_flight);
        // Newest first, so that `push_front` restores the original order of control publishes.
        for (_, f) in in_flight.into_iter().rev() {
            self.requeue(f.sent);
        }
        // Twin reads made for the old connection are replaced by a new one on reconnect.
        self.twin.retain(|_, op| op.kind != TwinKind::Resync);
        self.timers.stop(Timer::Resync);
    }

    pub(super) fn oldest_ack_deadline(&self) -> Option<Timestamp> {
        self.in_flight
            .first_key_value()
            .map(|(_, f)| f.at + self.config.ack_timeout)
    }

    pub(super) fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            if let Some(pos) = self.queue.iter().position(|q| q.id == id) {
                if let Some(q) = self.queue.remove(pos) {
                    if !q.heartbeat {
                        self.events.push_back(Event::TelemetryExpired { id });
                    }
                }
            }
        }
        let overdue: Vec<RequestId> = self
            .twin
            .iter()
            .filter(|(_, op)| op.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            if let Some(op) = self.twin.remove(&id) {
                if op.kind == TwinKind::Resync {
                    if self.conn == Conn::Up {
                        self.resync_failed(now);
                    }
                } else {
                    self.fail_twin(id, &op.kind, TwinError::Timeout);
                }
            }
        }
    }

    /// Formats a telemetry topic into a `String` of the right size up front: growing it piece
    /// by piece while formatting cost three reallocations per message.
    fn telemetry_topic(&self, bag: &str) -> String {
        let device = &self.config.device_id;
        let module = self.config.module_id.as_deref();
        // "devices/" + "/" + "messages/events/", and "modules/" + "/" for a module.
        let capacity = 25 + device.len() + module.map_or(0, |m| 9 + m.len()) + bag.len();
        let mut format = TelemetryTopic::new(device).raw_properties(bag);
        if let Some(module) = module {
            format = format.module(module);
        }
        let mut topic = String::with_capacity(capacity);
        // Writing into a `String` cannot fail.
        let _ = format.write_pieces(&mut appending(&mut topic));
        topic
    }

    pub(super) fn pump(&mut self, now: Timestamp) {
        while let Some(control) = self.control.pop_front() {
            match &control {
                Control::Twin(id) => {
                    let Some(op) = self.twin.get(id) else {
                        continue;
                    };
                    let rid = id.to_string();
                    let (topic, payload) = match &op.kind {
                        TwinKind::Get | TwinKind::Resync => {
                            (TwinGetTopic::new(&rid).to_string(), Bytes::new())
                        }
                        TwinKind::Patch(body) => {
                            (TwinReportedTopic::new(&rid).to_string(), body.clone())
                        }
                    };
                    self.publish(now, Sent::Control(control), topic, payload);
                }
                Control::Method { topic, payload, .. } => {
                    let (topic, payload) = (topic.clone(), payload.clone());
                    self.publish(now, Sent::Control(control), topic, payload);
                }
            }
        }
        let window = self.config.max_in_flight.max(1);
        while self.telemetry_in_flight < window {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            if let Some(at) = q.expires_at {
                self.expiries.remove(&(at, q.id));
                if at <= now {
                    if !q.heartbeat {
                        self.events.push_back(Event::TelemetryExpired { id: q.id });
                    }
                    continue;
                }
            }
            self.telemetry_in_flight += 1;
            let topic = self.telemetry_topic(&q.bag);
            let payload = q.payload.clone();
            self.publish(now, Sent::Telemetry(q), topic, payload);
        }
    }
}
