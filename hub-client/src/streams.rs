//! The streams a client hands out: cloud-to-device messages, module inputs, desired-property
//! updates, method requests and connection states.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::completion::Delivered;
use crate::lazy_stream::Inlet;

/// A stream of `T` from the client: read it with [`recv`](Self::recv) or as a
/// [`futures_util::Stream`].
///
/// Items are buffered (up to the client's stream capacity) from the moment the client connects,
/// so nothing is missed between `connect()` and taking the stream. A full buffer holds the next
/// delivery unacknowledged and pauses reading from the hub until there is room (the hub keeps
/// what is not acknowledged, and its own queue pushes back): nothing is dropped, but a stream
/// left unread stalls the others, so read every stream the hub may feed, or drop it (what
/// arrives for a dropped stream is acknowledged and discarded). The stream ends when the client
/// stops.
///
/// [`recv`](Self::recv) completes what it returns at once. With
/// [`manual_completion`](crate::HubClientBuilder::manual_completion), read with
/// [`recv_delivery`](Self::recv_delivery) and complete each item after processing it.
pub struct Subscription<T> {
    receiver: Option<Inlet<T>>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("taken", &self.receiver.is_some())
            .finish()
    }
}

impl<T> Subscription<T> {
    pub(crate) const fn new(receiver: Option<Inlet<T>>) -> Self {
        Self { receiver }
    }

    /// The next item; `None` once the client has stopped (or when this stream was already taken
    /// by an earlier call: each stream can be taken once).
    pub async fn recv(&mut self) -> Option<T> {
        match &mut self.receiver {
            Some(receiver) => receiver.recv().await.map(|item| item.complete()),
            None => None,
        }
    }

    /// The next item with its [`Completion`](crate::Completion): acknowledged to the hub only
    /// when the application completes it (manual mode; in automatic mode the completion has
    /// nothing left to do). `None` as for [`recv`](Self::recv).
    pub async fn recv_delivery(&mut self) -> Option<Delivered<T>> {
        match &mut self.receiver {
            Some(receiver) => receiver.recv().await.map(|item| *item),
            None => None,
        }
    }

    /// An item already buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.receiver
            .as_mut()?
            .try_recv()
            .map(|item| item.complete())
    }
}

impl<T> futures_util::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match &mut self.receiver {
            Some(receiver) => receiver
                .poll_recv(cx)
                .map(|item| item.map(|boxed| boxed.complete())),
            None => Poll::Ready(None),
        }
    }
}
