//! Manual completion: the application acknowledges a delivery after it processed it (for
//! example once the message is in its own store), for at-least-once into that store.

use std::fmt;
use std::sync::Weak;

use dps_core::hub::Delivery;

/// Accepts a delivery on the session it came from.
pub(crate) trait Accept: Send + Sync {
    fn accept(&self, delivery: Delivery);
}

/// The acknowledgement of one delivery, sent by [`complete`](Self::complete).
///
/// Dropping it without completing leaves the delivery unacknowledged: the hub keeps it and
/// delivers it again after the next reconnect. A completion for a connection that has since
/// dropped is ignored (the hub redelivers on the new one), so an item may come more than once:
/// de-duplicate by message id where that matters.
#[must_use = "an uncompleted delivery is not acknowledged: call complete() once it is processed"]
pub struct Completion {
    pending: Option<(Weak<dyn Accept>, Delivery)>,
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

impl Completion {
    /// Nothing to acknowledge (automatic mode, or an item that needs no acknowledgement).
    pub(crate) const fn done() -> Self {
        Self { pending: None }
    }

    pub(crate) fn new(session: &Weak<dyn Accept>, delivery: Option<Delivery>) -> Self {
        Self {
            pending: delivery.map(|d| (Weak::clone(session), d)),
        }
    }

    /// Acknowledges the delivery to the hub (if its connection is still up and the client
    /// still runs; otherwise the hub delivers it again).
    pub fn complete(mut self) {
        if let Some((session, delivery)) = self.pending.take() {
            if let Some(session) = session.upgrade() {
                session.accept(delivery);
            }
        }
    }

    /// Whether an acknowledgement is still owed.
    #[must_use]
    pub const fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// An item from a stream together with its [`Completion`], from
/// [`Subscription::recv_delivery`](crate::Subscription::recv_delivery).
#[derive(Debug)]
#[must_use = "an uncompleted delivery is not acknowledged: call complete() once it is processed"]
pub struct Delivered<T> {
    item: T,
    completion: Completion,
}

impl<T> Delivered<T> {
    pub(crate) const fn new(item: T, completion: Completion) -> Self {
        Self { item, completion }
    }

    /// The item.
    #[must_use]
    pub const fn item(&self) -> &T {
        &self.item
    }

    /// The item and its completion, to complete later.
    pub fn into_parts(self) -> (T, Completion) {
        (self.item, self.completion)
    }

    /// Acknowledges the delivery and returns the item.
    pub fn complete(self) -> T {
        self.completion.complete();
        self.item
    }
}
