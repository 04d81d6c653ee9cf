//! Deliveries held back because their stream had no room: kept in arrival order with their
//! (not yet sent) acknowledgement, offered again before every drain, and never dropped.
//!
//! While anything is held the driver reads no further incoming message (see
//! [`Application::room`](dps_runtime::Application::room)): the hub keeps what it has not been
//! acknowledged, and its own queue limit pushes back on the sender. A stream the application
//! never took fills up to the stream capacity and then holds the connection the same way, so
//! take every stream the hub may feed; dropping a stream instead discards (and acknowledges)
//! what arrives for it.

use std::collections::VecDeque;
use std::sync::Weak;

use dps_core::hub::{Delivery, ReceivedMessage};
use dps_runtime::Room;
use tokio::sync::mpsc;

use crate::lazy_stream::LazyStream;

use crate::app::Outlets;
use crate::completion::{Accept, Completion, Delivered};
use crate::desired::DesiredUpdate;
use crate::method::MethodRequest;

/// One item for one of the application's streams.
pub(crate) enum Item {
    C2d(ReceivedMessage),
    Input(ReceivedMessage),
    Desired(DesiredUpdate),
    Method(MethodRequest),
}

impl Item {
    const fn what(&self) -> &'static str {
        match self {
            Self::C2d(_) => "cloud-to-device message",
            Self::Input(_) => "input message",
            Self::Desired(_) => "desired-property update",
            Self::Method(_) => "method request",
        }
    }
}

/// What offering an item to its stream did.
pub(crate) enum Offer {
    /// The stream has it: acknowledge it now (automatic mode), or the application completes
    /// it (manual mode).
    Taken,
    /// Nobody reads the stream any more: acknowledge and discard it, as redelivering it would
    /// reach nobody either.
    Gone,
    /// The stream is full: hold the item, unacknowledged.
    Full(Item),
}

/// Offers `item` to its stream without waiting; with `manual` (the session, in manual mode)
/// the item carries a [`Completion`] of `delivery` for the application to complete.
///
/// Items travel boxed: a tokio channel allocates its first block of 32 slots up front, and
/// five streams of unboxed items cost an idle connection over 10 KiB before any item arrives.
pub(crate) fn offer(
    outlets: &Outlets,
    item: Item,
    delivery: Option<Delivery>,
    manual: Option<&Weak<dyn Accept>>,
) -> Offer {
    let completion = || match manual {
        Some(session) => Completion::new(session, delivery),
        None => Completion::done(),
    };
    fn send<T>(
        outlet: &LazyStream<T>,
        value: T,
        completion: Completion,
        wrap: fn(T) -> Item,
    ) -> Offer {
        match outlet.try_send(Box::new(Delivered::new(value, completion))) {
            Ok(()) => Offer::Taken,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
            // The completion goes with it unused: nothing was acknowledged.
            Err(mpsc::error::TrySendError::Full(value)) => Offer::Full(wrap(value.into_parts().0)),
        }
    }
    match item {
        Item::C2d(m) => send(&outlets.c2d, m, completion(), Item::C2d),
        Item::Input(m) => send(&outlets.inputs, m, completion(), Item::Input),
        Item::Desired(u) => send(&outlets.desired, u, completion(), Item::Desired),
        Item::Method(r) => send(&outlets.methods, r, completion(), Item::Method),
    }
}

/// The held items, oldest first, each with the delivery to accept once its stream took it.
#[derive(Default)]
pub(crate) struct Backlog {
    held: VecDeque<(Item, Option<Delivery>)>,
}

impl Backlog {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds `item` behind whatever is already held (order is kept across all streams).
    pub(crate) fn hold(&mut self, item: Item, delivery: Option<Delivery>) {
        if self.held.is_empty() {
            tracing::info!(
                what = item.what(),
                "stream full: holding the delivery unacknowledged and pausing reads until the application takes more"
            );
        }
        self.held.push_back((item, delivery));
    }

    /// Offers the held items in order until one finds its stream full; returns the deliveries
    /// to accept now (all those taken in automatic mode, those of closed streams in manual).
    pub(crate) fn release(
        &mut self,
        outlets: &Outlets,
        manual: Option<&Weak<dyn Accept>>,
    ) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let mut released = false;
        while let Some((item, delivery)) = self.held.pop_front() {
            released = true;
            match offer(outlets, item, delivery, manual) {
                Offer::Taken if manual.is_some() => {}
                Offer::Taken | Offer::Gone => taken.extend(delivery),
                Offer::Full(item) => {
                    self.held.push_front((item, delivery));
                    break;
                }
            }
        }
        if released && self.held.is_empty() {
            tracing::debug!("backlog released: reading again");
        }
        taken
    }

    /// A future that completes once the stream of the oldest held item has room (or is gone).
    pub(crate) fn room(&self, outlets: &Outlets) -> Option<Room> {
        fn wait<T: Send + 'static>(outlet: &LazyStream<T>) -> Room {
            // Room only tells that a slot is free; the next drain fills it (the driver is the
            // only sender). A stream that takes nothing any more has room: what is held for it
            // is discarded.
            let outlet = outlet.clone();
            Box::pin(async move { outlet.room().await })
        }
        let (item, _) = self.held.front()?;
        Some(match item {
            Item::C2d(_) => wait(&outlets.c2d),
            Item::Input(_) => wait(&outlets.inputs),
            Item::Desired(_) => wait(&outlets.desired),
            Item::Method(_) => wait(&outlets.methods),
        })
    }

    /// Forgets everything held: the driver has ended, and the hub redelivers what was not
    /// acknowledged.
    pub(crate) fn clear(&mut self) {
        self.held.clear();
    }
}
