//! A stream of the client made when it is first taken or first fed (#16): an idle connection
//! whose application never takes, say, the module-input stream pays for no channel (a bounded
//! tokio channel allocates its first block of slots when created: about 800 bytes each, 4 KB
//! for a client's five streams).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::completion::Delivered;

/// The sending end of a stream.
pub(crate) type Outlet<T> = mpsc::Sender<Box<Delivered<T>>>;
/// The receiving end of a stream.
pub(crate) type Inlet<T> = mpsc::Receiver<Box<Delivered<T>>>;

/// One stream, shared by the client's side that feeds it and the handle that takes it.
pub(crate) struct LazyStream<T> {
    slot: Arc<Mutex<Slot<T>>>,
    capacity: usize,
}

struct Slot<T> {
    created: bool,
    /// `None` once closed: the stream ends after what it holds.
    tx: Option<Outlet<T>>,
    /// `None` once taken.
    rx: Option<Inlet<T>>,
    closed: bool,
}

impl<T> Clone for LazyStream<T> {
    fn clone(&self) -> Self {
        Self {
            slot: Arc::clone(&self.slot),
            capacity: self.capacity,
        }
    }
}

impl<T> LazyStream<T> {
    /// A stream holding up to `capacity` items, not made yet.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                created: false,
                tx: None,
                rx: None,
                closed: false,
            })),
            capacity: capacity.max(1),
        }
    }

    /// The slot, with its channel made (a closed stream's channel ends at once).
    fn made(&self) -> MutexGuard<'_, Slot<T>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.created {
            let (tx, rx) = mpsc::channel(self.capacity);
            slot.created = true;
            slot.rx = Some(rx);
            slot.tx = (!slot.closed).then_some(tx);
        }
        slot
    }

    /// Offers `item` without waiting, as `Sender::try_send` does.
    pub(crate) fn try_send(
        &self,
        item: Box<Delivered<T>>,
    ) -> Result<(), TrySendError<Box<Delivered<T>>>> {
        match &self.made().tx {
            Some(tx) => tx.try_send(item),
            None => Err(TrySendError::Closed(item)),
        }
    }

    /// A sender to wait for room with; `None` once closed.
    pub(crate) fn sender(&self) -> Option<Outlet<T>> {
        self.made().tx.clone()
    }

    /// The receiving end, the first time only.
    pub(crate) fn take_receiver(&self) -> Option<Inlet<T>> {
        self.made().rx.take()
    }

    /// Ends the stream after what it holds (the client stopped).
    pub(crate) fn close(&self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.closed = true;
        slot.tx = None;
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
        assert!(
            !stream.slot.lock().unwrap().created,
            "nothing made before use"
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
    async fn a_stream_taken_after_close_ends_at_once() {
        let stream: LazyStream<u32> = LazyStream::new(4);
        stream.close();
        let mut rx = stream.take_receiver().unwrap();
        assert!(rx.recv().await.is_none());
    }
}
