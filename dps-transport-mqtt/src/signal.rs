//! [`Signal`]: a wake-up for the one task that waits on it.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// A wake-up for one waiting task, kept until that task takes it (as
/// `tokio::sync::Notify::notify_one` keeps a permit), for the hot paths of a connection: the
/// driver waiting for the application or for publish outcomes, the session waiting for its
/// outbox. Waiting costs an atomic swap and, when the task changed, a waker clone: no waiter
/// list to lock, no future to register and unregister on every turn of a loop (with `Notify`
/// that was the largest cost of the SDK's own in a telemetry profile, #16).
///
/// One waiter at a time: a second task waiting at once would take the registration over, and
/// the first would not be woken.
#[derive(Debug, Default)]
pub struct Signal {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// A signal not raised.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the signal: the waiting task is woken, or the next wait ends at once.
    pub fn raise(&self) {
        // Raised already and not yet taken: that raise woke the task (or found it not yet
        // registered, and its wait sees the signal before sleeping). A burst of sends raises
        // once per message (#16).
        if self.raised.swap(true, Ordering::AcqRel) {
            return;
        }
        self.waker.wake();
    }

    /// Lowers the signal if it is raised, without waiting or registering a waker: whether it
    /// was. For a task that checks its sources in passes and registers only when it is about
    /// to sleep (a raise after this and before that registration makes the wait ready at once).
    pub fn take(&self) -> bool {
        self.raised.swap(false, Ordering::AcqRel)
    }

    /// Ready once the signal is raised, lowering it again.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // Again after registering: a raise in between found no waker to wake.
        if self.raised.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until the signal is raised, and lowers it. Cancel-safe: a raise is kept until a
    /// wait takes it.
    pub async fn wait(&self) {
        poll_fn(|cx| self.poll_wait(cx)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_raise_before_the_wait_is_kept_once() {
        let signal = Signal::new();
        signal.raise();
        signal.raise();
        tokio::time::timeout(Duration::from_secs(1), signal.wait())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), signal.wait())
                .await
                .is_err(),
            "two raises before one wait are one wake-up"
        );
    }

    #[tokio::test]
    async fn take_lowers_a_raised_signal_once_and_leaves_a_lowered_one_alone() {
        let signal = Signal::new();
        assert!(!signal.take(), "a signal never raised is not taken");
        signal.raise();
        assert!(signal.take(), "a raised signal is taken");
        assert!(!signal.take(), "and lowered by the take");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), signal.wait())
                .await
                .is_err(),
            "a taken raise does not end a later wait"
        );
    }

    #[tokio::test]
    async fn a_waiting_task_is_woken_by_a_raise_from_another() {
        let signal = Arc::new(Signal::new());
        let waiter = tokio::spawn({
            let signal = Arc::clone(&signal);
            async move { signal.wait().await }
        });
        tokio::task::yield_now().await;
        signal.raise();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
