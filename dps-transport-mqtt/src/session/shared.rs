//! What the connection's handles and its task share: three queues under short locks, each
//! with a [`Signal`] for the one side that waits on it.
//!
//! Queues rather than tokio channels because a channel allocates its first block of slots
//! up front (about 0.7 KiB each), and a gateway keeps thousands of connections that are idle
//! or only provisioning (#16); these grow on demand. They also let the task take everything
//! queued in one go, so a burst goes out in one write.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{CloseReason, Incoming, QoS};
use crate::error::TransportError;
use crate::signal::Signal;

/// How many received messages wait for the application. Beyond that the task stops reading
/// the stream (after the read buffer it already holds), so TCP pushes back on the server
/// instead of the messages piling up in memory.
pub(super) const INCOMING_CAPACITY: usize = 32;

/// A queue emptied by its reader keeps at most this much room: enough for the usual burst,
/// not a past peak's worth on an idle connection.
const KEPT_ROOM: usize = 16;

pub(super) type Reply<T> = oneshot::Sender<Result<T, TransportError>>;

/// A request from a handle to the task.
pub(super) enum Command {
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        done: Reply<()>,
    },
    Subscribe {
        filters: Vec<(String, QoS)>,
        done: Reply<Vec<Option<QoS>>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        done: Reply<()>,
    },
    Ack {
        packet_id: u16,
    },
}

impl Command {
    /// Tells whoever waits that the connection has ended.
    pub(super) fn fail(self) {
        match self {
            Self::Publish { done, .. } | Self::Unsubscribe { done, .. } => {
                let _ = done.send(closed());
            }
            Self::Subscribe { done, .. } => {
                let _ = done.send(closed());
            }
            Self::Ack { .. } => {}
        }
    }
}

/// A publish that reports its outcome by tag.
#[derive(Debug)]
pub(super) struct Tagged {
    pub(super) tag: u64,
    pub(super) topic: String,
    pub(super) payload: Bytes,
    pub(super) qos: QoS,
}

/// Who waits for a publish: a handle's future, or the reader of tagged outcomes.
pub(super) enum Done {
    Reply(Reply<()>),
    Tag(u64),
}

impl Done {
    pub(super) fn complete(self, shared: &Shared, result: Result<(), TransportError>) {
        match self {
            Self::Reply(reply) => {
                let _ = reply.send(result);
            }
            Self::Tag(tag) => shared.push_outcome(tag, result),
        }
    }
}

pub(super) fn closed<T>() -> Result<T, TransportError> {
    Err(TransportError::ConnectionClosed)
}

/// What the handles queued for the task.
#[derive(Default)]
pub(super) struct Outbox {
    /// Tagged publishes ([`MqttConnection::publish_tagged`](super::MqttConnection::publish_tagged)):
    /// the hot path, so the queue keeps its room and a message allocates nothing here.
    pub(super) tagged: VecDeque<Tagged>,
    pub(super) commands: VecDeque<Command>,
    /// Set once the task has ended: nothing queued afterwards would ever be sent.
    closed: bool,
}

/// State shared by the handles and the task.
#[derive(Default)]
pub(super) struct Shared {
    close_reason: Mutex<Option<CloseReason>>,
    outbox: Mutex<Outbox>,
    /// Wakes the task when the outbox goes from empty to not empty, or the connection is
    /// let go.
    pub(super) outbox_ready: Signal,
    /// Set once the connection's owner let it go: the task says goodbye. A flag next to the
    /// outbox's signal rather than a channel of its own, which the task polled on every turn
    /// (#16).
    goodbye: AtomicBool,
    inbox: Mutex<VecDeque<Incoming>>,
    /// How many messages the inbox holds, readable without its lock: the driver looks at the
    /// inbox on every wait and the task at every pass, and it is nearly always empty (#16).
    /// Written under the lock.
    inbox_len: AtomicUsize,
    /// Set (under the inbox's lock, after the last delivery) once the task has ended: no
    /// message will follow those queued.
    inbox_closed: AtomicBool,
    /// Wakes the receiver when the inbox goes from empty to not empty, or closes.
    inbox_ready: Signal,
    /// Wakes the task when the inbox drops below [`INCOMING_CAPACITY`].
    pub(super) inbox_room: Signal,
    /// What became of tagged publishes, in completion order.
    outcomes: Mutex<VecDeque<(u64, Result<(), TransportError>)>>,
    /// How many outcomes wait, readable without the lock; written under it.
    outcomes_len: AtomicUsize,
    /// Wakes the reader of outcomes when the queue goes from empty to not empty.
    outcomes_ready: Signal,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gives back the room of an emptied queue beyond [`KEPT_ROOM`].
fn trim<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > KEPT_ROOM {
        *queue = VecDeque::new();
    }
}

impl Shared {
    pub(super) fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.close_reason).clone()
    }

    pub(super) fn set_close_reason(&self, reason: CloseReason) {
        lock(&self.close_reason).get_or_insert(reason);
    }

    // The outbox: handles queue, the task takes.

    /// Queues `command` for the task.
    pub(super) fn send(&self, command: Command) -> Result<(), TransportError> {
        self.queue_out(|outbox| outbox.commands.push_back(command))
    }

    /// Queues a tagged publish for the task.
    pub(super) fn send_tagged(&self, tagged: Tagged) -> Result<(), TransportError> {
        self.queue_out(|outbox| outbox.tagged.push_back(tagged))
    }

    fn queue_out(&self, push: impl FnOnce(&mut Outbox)) -> Result<(), TransportError> {
        let mut outbox = lock(&self.outbox);
        if outbox.closed {
            return closed();
        }
        let was_empty = outbox.tagged.is_empty() && outbox.commands.is_empty();
        push(&mut outbox);
        drop(outbox);
        // A raise is kept when the task is not waiting yet: no wake-up is lost.
        if was_empty {
            self.outbox_ready.raise();
        }
        Ok(())
    }

    /// Tells the task to send DISCONNECT and close the stream.
    pub(super) fn say_goodbye(&self) {
        self.goodbye.store(true, Ordering::Release);
        self.outbox_ready.raise();
    }

    /// Whether the connection's owner let it go.
    pub(super) fn goodbye_asked(&self) -> bool {
        self.goodbye.load(Ordering::Acquire)
    }

    /// Whether the task has ended (nothing queued would be sent).
    pub(super) fn is_outbox_closed(&self) -> bool {
        lock(&self.outbox).closed
    }

    /// Everything queued, swapped for the empty queues in `spare` (whose room is reused).
    /// The lock is not held while the task encodes what it took.
    pub(super) fn take_outbox(&self, spare: &mut Outbox) {
        let mut outbox = lock(&self.outbox);
        std::mem::swap(&mut outbox.tagged, &mut spare.tagged);
        std::mem::swap(&mut outbox.commands, &mut spare.commands);
    }

    /// Closes the outbox; returns what was still queued, to be failed.
    pub(super) fn close_outbox(&self) -> Outbox {
        let mut outbox = lock(&self.outbox);
        outbox.closed = true;
        Outbox {
            tagged: std::mem::take(&mut outbox.tagged),
            commands: std::mem::take(&mut outbox.commands),
            closed: true,
        }
    }

    // The inbox: the task delivers, the connection's owner receives.

    /// Queues a received message. The task stops reading once the inbox is
    /// [full](Self::inbox_full); what it had already read still arrives here, so the inbox
    /// holds at most one read buffer's worth beyond [`INCOMING_CAPACITY`].
    pub(super) fn deliver(&self, message: Incoming) {
        let mut inbox = lock(&self.inbox);
        let was_empty = inbox.is_empty();
        inbox.push_back(message);
        self.inbox_len.store(inbox.len(), Ordering::Release);
        drop(inbox);
        if was_empty {
            self.inbox_ready.raise();
        }
    }

    /// Whether the application lets [`INCOMING_CAPACITY`] messages or more wait.
    pub(super) fn inbox_full(&self) -> bool {
        self.inbox_len.load(Ordering::Acquire) >= INCOMING_CAPACITY
    }

    /// Marks the end of the messages: the receiver gets `None` once it has taken the rest.
    pub(super) fn close_inbox(&self) {
        let inbox = lock(&self.inbox);
        self.inbox_closed.store(true, Ordering::Release);
        drop(inbox);
        self.inbox_ready.raise();
    }

    /// A message already received, if any.
    pub(super) fn try_recv(&self) -> Option<Incoming> {
        self.pop().0
    }

    /// The next message; `None` once the task has ended and every message was taken.
    /// Cancel-safe.
    pub(super) async fn recv(&self) -> Option<Incoming> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) as a poll: registers the waker only when nothing is there.
    pub(super) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        loop {
            match self.pop() {
                (Some(message), _) => return Poll::Ready(Some(message)),
                (None, true) => return Poll::Ready(None),
                // A delivery since `pop` raised the signal: the wait is ready at once.
                (None, false) => {
                    if self.inbox_ready.poll_wait(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// The first message, and whether the inbox is closed (a message delivered just before
    /// the close is never mistaken for the end).
    fn pop(&self) -> (Option<Incoming>, bool) {
        // Closed first: every delivery precedes the close, so an inbox seen closed and then
        // empty has nothing more to give.
        let closed = self.inbox_closed.load(Ordering::Acquire);
        if self.inbox_len.load(Ordering::Acquire) == 0 {
            return (None, closed);
        }
        let mut inbox = lock(&self.inbox);
        let before = inbox.len();
        let message = inbox.pop_front();
        self.inbox_len.store(inbox.len(), Ordering::Release);
        trim(&mut inbox);
        drop(inbox);
        if before == INCOMING_CAPACITY {
            // The task waits for room only at the capacity or above; above it, the next pop
            // that reaches the capacity wakes it.
            self.inbox_room.raise();
        }
        (message, closed)
    }

    // The outcomes of tagged publishes: the task reports, the driver reads.

    pub(super) fn push_outcome(&self, tag: u64, result: Result<(), TransportError>) {
        let mut outcomes = lock(&self.outcomes);
        let was_empty = outcomes.is_empty();
        outcomes.push_back((tag, result));
        self.outcomes_len.store(outcomes.len(), Ordering::Release);
        drop(outcomes);
        if was_empty {
            self.outcomes_ready.raise();
        }
    }

    pub(super) fn try_next_outcome(&self) -> Option<(u64, Result<(), TransportError>)> {
        // No trimming: with many publishes in flight this queue is the hot path.
        if self.outcomes_len.load(Ordering::Acquire) == 0 {
            // A push racing with this is seen by the wait that follows: its raise comes
            // after its count.
            return None;
        }
        let mut outcomes = lock(&self.outcomes);
        let outcome = outcomes.pop_front();
        self.outcomes_len.store(outcomes.len(), Ordering::Release);
        outcome
    }

    pub(super) async fn next_outcome(&self) -> (u64, Result<(), TransportError>) {
        poll_fn(|cx| self.poll_next_outcome(cx)).await
    }

    /// [`next_outcome`](Self::next_outcome) as a poll: registers the waker only when no
    /// outcome is there.
    pub(super) fn poll_next_outcome(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<(u64, Result<(), TransportError>)> {
        loop {
            if let Some(outcome) = self.try_next_outcome() {
                return Poll::Ready(outcome);
            }
            if self.outcomes_ready.poll_wait(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}
