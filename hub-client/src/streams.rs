//! The streams a client hands out: cloud-to-device messages, module inputs, desired-property
//! updates, method requests and connection states.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

/// A stream of `T` from the client: read it with [`recv`](Self::recv) or as a
/// [`futures_util::Stream`].
///
/// Items are buffered (up to the client's stream capacity) from the moment the client connects,
/// so nothing is missed between `connect()` and taking the stream. A full buffer drops the new
/// item with a warning instead of stalling the connection: keep reading. The stream ends when
/// the client stops.
pub struct Subscription<T> {
    receiver: Option<mpsc::Receiver<Box<T>>>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("taken", &self.receiver.is_some())
            .finish()
    }
}

impl<T> Subscription<T> {
    pub(crate) const fn new(receiver: Option<mpsc::Receiver<Box<T>>>) -> Self {
        Self { receiver }
    }

    /// The next item; `None` once the client has stopped (or when this stream was already taken
    /// by an earlier call: each stream can be taken once).
    pub async fn recv(&mut self) -> Option<T> {
        match &mut self.receiver {
            Some(receiver) => receiver.recv().await.map(|item| *item),
            None => None,
        }
    }

    /// An item already buffered, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.receiver.as_mut()?.try_recv().ok().map(|item| *item)
    }
}

impl<T> futures_util::Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match &mut self.receiver {
            Some(receiver) => receiver.poll_recv(cx).map(|item| item.map(|boxed| *boxed)),
            None => Poll::Ready(None),
        }
    }
}
