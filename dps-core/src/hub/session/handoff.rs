//! Handing a session's telemetry to the next session of the same device: when the device
//! lifecycle moves to another hub, another credential or provisions again, what the
//! application queued and the hub has not acknowledged goes on with the next connection instead
//! of being abandoned (issue #12: no telemetry lost across a re-provisioning).

use alloc::collections::VecDeque;
use core::time::Duration;

use super::event::{MessageId, SendError, StopReason};
use super::telemetry::Queued;
use super::{HubSession, SessionConfig};
use crate::hub::MAX_TELEMETRY_MESSAGE_SIZE;
use crate::hub::message::Message;
use crate::time::Timestamp;

/// Telemetry not yet acknowledged, in the order it was sent, with the numbering that the next
/// session continues (message ids stay unique for the application's waiters; connection
/// numbers keep an acceptance meant for an old connection from acknowledging a packet id of a
/// new one).
#[derive(Debug)]
pub(crate) struct Handoff {
    queue: VecDeque<Queued>,
    next_id: u64,
    connection: u32,
}

impl Default for Handoff {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            next_id: 1,
            connection: 0,
        }
    }
}

impl Handoff {
    /// How many messages wait.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues a message while the device has no session (it is provisioning), with the rules of
    /// [`HubSession::send_telemetry`].
    pub(crate) fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
        config: &SessionConfig,
    ) -> Result<MessageId, SendError> {
        let bag = message.properties.encode();
        let size = message.payload.len() + bag.len();
        if size > MAX_TELEMETRY_MESSAGE_SIZE {
            return Err(SendError::TooLarge {
                size,
                limit: MAX_TELEMETRY_MESSAGE_SIZE,
            });
        }
        if self.queue.len() >= config.queue_capacity {
            return Err(SendError::QueueFull {
                capacity: config.queue_capacity,
            });
        }
        let ttl: Option<Duration> = message.expires_in.or(config.default_ttl);
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.queue.push_back(Queued {
            id,
            bag,
            payload: message.payload,
            expires_at: ttl.map(|ttl| now + ttl),
            heartbeat: false,
        });
        Ok(id)
    }

    /// Gives up on every message (the device stops for good): their ids, oldest first.
    pub(crate) fn abandon(&mut self) -> impl Iterator<Item = MessageId> + '_ {
        self.queue.drain(..).map(|q| q.id)
    }
}

impl HubSession {
    /// Makes [`stop`](Self::stop) keep unacknowledged telemetry for [`hand_off`](Self::hand_off)
    /// instead of abandoning it: the session belongs to a device that goes on.
    pub(crate) fn keep_telemetry_on_stop(&mut self) {
        self.keep_on_stop = true;
    }

    /// Ends the session (if it still runs) and takes what the next one continues: telemetry
    /// in flight or queued, oldest first. Twin requests and method responses fail as at any
    /// stop; the events of that stop stay to be drained.
    pub(crate) fn hand_off(&mut self) -> Handoff {
        self.keep_on_stop = true;
        self.stop(StopReason::Closed);
        Handoff {
            queue: core::mem::take(&mut self.queue)
                .into_iter()
                .filter(|q| !q.heartbeat)
                .collect(),
            next_id: self.next_id,
            connection: self.connection,
        }
    }

    /// A session that continues `handoff`: its telemetry is sent first, its numbering goes on.
    pub(crate) fn resume(
        config: SessionConfig,
        now: Timestamp,
        seed: u64,
        handoff: Handoff,
    ) -> Self {
        let mut this = Self::build(config, now, seed);
        this.next_id = handoff.next_id;
        this.connection = handoff.connection;
        for q in &handoff.queue {
            if let Some(at) = q.expires_at {
                this.expiries.insert((at, q.id));
            }
        }
        this.queue = handoff.queue;
        this.drive(now);
        this
    }
}
