//! A stream of the client that costs nothing until it holds something (#16): an idle
//! connection whose application never takes, say, the module-input stream pays for no buffer.
//! A queue that grows on demand under a short lock, not a tokio channel: a bounded channel
//! allocates its first block of slots when it is made (about 800 bytes), and the states and
//! desired-properties streams are fed at the first connect whether or not anyone reads them.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio::sync::mpsc::error::TrySendError;

use crate::completion::Delivered;

/// What a stream holds.
type Boxed<T> = Box<Delivered<T>>;

/// One stream, shared by the client's side that feeds it and the handle that takes it.
pub(crate) struct LazyStream<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// The receiver waiting for an item.
    receiver: AtomicWaker,
    /// The driver waiting for room.
    room: Notify,
}

struct State<T> {
    items: VecDeque<Boxed<T>>,
    /// The stream ends after what it holds (the client stopped).
    closed: bool,
    /// The receiving end was taken.
    taken: bool,
    /// The receiving end was dropped: nothing offered is kept any more.
    dropped: bool,
}

impl<T> Clone for LazyStream<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Inner<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> LazyStream<T> {
    /// A stream holding up to `capacity` items.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    items: VecDeque::new(),
                    closed: false,
                    taken: false,
                    dropped: false,
                }),
                capacity: capacity.max(1),
                receiver: AtomicWaker::new(),
                room: Notify::new(),
            }),
        }
    }

    /// Offers `item` without waiting, as `Sender::try_send` does: `Full` at the capacity,
    /// `Closed` once the stream ended or its receiver was dropped.
    pub(crate) fn try_send(&self, item: Boxed<T>) -> Result<(), TrySendError<Boxed<T>>> {
        let mut state = self.inner.state();
        if state.closed || state.dropped {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.inner.capacity {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.inner.receiver.wake();
        Ok(())
    }

    /// Waits until the stream has room for an item, or will take none any more.
    pub(crate) async fn room(&self) {
        loop {
            {
                let state = self.inner.state();
                if state.closed || state.dropped || state.items.len() < self.inner.capacity {
                    return;
                }
            }
            // A `notify_one` since the check left a permit: this wait ends at once.
            self.inner.room.notified().await;
        }
    }

    /// The receiving end, the first time only.
    pub(crate) fn take_receiver(&self) -> Option<Inlet<T>> {
        let mut state = self.inner.state();
        if state.taken {
            return None;
        }
        state.taken = true;
        Some(Inlet {
            inner: Arc::clone(&self.inner),
        })
    }

    /// Ends the stream after what it holds (the client stopped).
    pub(crate) fn close(&self) {
        self.inner.state().closed = true;
        self.inner.receiver.wake();
        self.inner.room.notify_one();
    }
}

/// The receiving end of a stream.
pub(crate) struct Inlet<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Inlet<T> {
    /// The next item, or `Ready(None)` once the stream has ended and is empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Boxed<T>>> {
        if let Some(ready) = self.take() {
            return ready;
        }
        self.inner.receiver.register(cx.waker());
        // Again after registering: an item offered in between would not have woken us.
        self.take().unwrap_or(Poll::Pending)
    }

    /// The next item; `None` once the stream has ended and is empty. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<Boxed<T>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// An item already held, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Boxed<T>> {
        self.take().and_then(|ready| match ready {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        })
    }

    /// `Some(Ready(item))` for an item, `Some(Ready(None))` at the end, `None` when empty.
    fn take(&self) -> Option<Poll<Option<Boxed<T>>>> {
        let mut state = self.inner.state();
        let was_full = state.items.len() >= self.inner.capacity;
        match state.items.pop_front() {
            Some(item) => {
                if state.items.is_empty() && state.items.capacity() > self.inner.capacity {
                    state.items = VecDeque::new();
                }
                drop(state);
                if was_full {
                    self.inner.room.notify_one();
                }
                Some(Poll::Ready(Some(item)))
            }
            None if state.closed => Some(Poll::Ready(None)),
            None => None,
        }
    }
}

impl<T> Drop for Inlet<T> {
    fn drop(&mut self) {
        // What it held goes (unacknowledged deliveries are redelivered by the hub); what is
        // offered from now on is refused as `Closed`, and a driver waiting for room goes on.
        let items = {
            let mut state = self.inner.state();
            state.dropped = true;
            std::mem::take(&mut state.items)
        };
        drop(items);
        self.inner.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::Completion;

    fn item(n: u32) -> Box<Delivered<u32>> {
        Box::new(Delivered::new(n, Completion::done()))
    }

    #[tokio::test]
    async fn made_on_first_use_and_ended_by_close() {
        let stream = LazyStream::new(2);
        assert_eq!(
            stream.inner.state().items.capacity(),
            0,
            "nothing allocated before use"
        );
        stream.try_send(item(1)).unwrap();
        let mut rx = stream.take_receiver().unwrap();
        assert!(stream.take_receiver().is_none(), "taken once");
        stream.try_send(item(2)).unwrap();
        assert!(matches!(
            stream.try_send(item(3)),
            Err(TrySendError::Full(_))
        ));
        stream.close();
        assert!(matches!(
            stream.try_send(item(4)),
            Err(TrySendError::Closed(_))
        ));
        assert_eq!(rx.recv().await.map(|d| d.complete()), Some(1));
        assert_eq!(rx.recv().await.map(|d| d.complete()), Some(2));
        assert!(rx.recv().await.is_none(), "ends after what it held");
    }

    #[tokio::test]
    async fn room_comes_back_when_an_item_is_taken_or_the_receiver_goes() {
        let stream = LazyStream::new(1);
        stream.try_send(item(1)).unwrap();
        let mut room = Box::pin(stream.room());
        assert!(
            futures_util::FutureExt::now_or_never(room.as_mut()).is_none(),
            "full"
        );
        let mut rx = stream.take_receiver().unwrap();
        assert_eq!(rx.try_recv().map(|d| d.complete()), Some(1));
        room.await;
        assert!(rx.try_recv().is_none());

        stream.try_send(item(2)).unwrap();
        let mut room = Box::pin(stream.room());
        assert!(
            futures_util::FutureExt::now_or_never(room.as_mut()).is_none(),
            "full again"
        );
        drop(rx);
        room.await;
        assert!(matches!(
            stream.try_send(item(3)),
            Err(TrySendError::Closed(_))
        ));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_an_item_and_by_close() {
        let stream = LazyStream::new(4);
        let mut rx = stream.take_receiver().unwrap();
        let feeder = stream.clone();
        let task = tokio::spawn(async move {
            let first = rx.recv().await.map(|d| d.complete());
            let end = rx.recv().await.map(|d| d.complete());
            (first, end)
        });
        tokio::task::yield_now().await;
        feeder.try_send(item(7)).unwrap();
        tokio::task::yield_now().await;
        feeder.close();
        assert_eq!(task.await.unwrap(), (Some(7), None));
    }

    #[tokio::test]
    async fn a_stream_taken_after_close_ends_at_once() {
        let stream: LazyStream<u32> = LazyStream::new(4);
        stream.close();
        let mut rx = stream.take_receiver().unwrap();
        assert!(rx.recv().await.is_none());
    }
}
