//! [`Alarm`]: a timer that a task which polls its sources by hand re-registers only when it
//! must.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

/// A tokio [`Sleep`] for a task that polls it at every quiet point of a loop: the session's
/// keep-alive, the driver's machine timeout.
///
/// Polling a `Sleep` clones and drops the task's waker and re-registers it on every poll,
/// even when nothing changed (tokio's timer keeps no `will_wake` check): two timers polled
/// once per telemetry message were a measurable part of a message's cost (#16). An alarm
/// polls its sleep only when that can change something: after a [`reset`](Self::reset), when
/// the task's waker is not the one it registered, or once the sleep
/// [has elapsed](Sleep::is_elapsed). Otherwise the waker it registered last wakes the task
/// when the time comes, as the `Future` contract promises.
#[derive(Debug)]
pub struct Alarm {
    /// Boxed so that the alarm needs no pinning of its own.
    sleep: Pin<Box<Sleep>>,
    /// The waker the sleep was last polled with, while that poll stands (until a reset or
    /// the sleep elapsed).
    registered: Option<Waker>,
}

impl Alarm {
    /// An alarm due now. Must be called within a tokio runtime with its timer enabled.
    #[must_use]
    pub fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            registered: None,
        }
    }

    /// Sets the alarm to `at`, elapsed or not.
    pub fn reset(&mut self, at: Instant) {
        self.sleep.as_mut().reset(at);
        // What the sleep does with its registration on a reset is its own business: the next
        // poll registers again.
        self.registered = None;
    }

    /// Ready once the alarm's time has come (and again on every poll until a reset).
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(registered) = &self.registered {
            if registered.will_wake(cx.waker()) && !self.sleep.is_elapsed() {
                return Poll::Pending;
            }
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.registered = None;
                Poll::Ready(())
            }
            Poll::Pending => {
                match &self.registered {
                    Some(registered) if registered.will_wake(cx.waker()) => {}
                    _ => self.registered = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use super::*;

    /// One poll of `alarm` from the test's task.
    async fn poll_once(alarm: &mut Alarm) -> Poll<()> {
        poll_fn(|cx| Poll::Ready(alarm.poll_elapsed(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn rings_at_its_time_though_polled_once() {
        let mut alarm = Alarm::new();
        let start = Instant::now();
        alarm.reset(start + Duration::from_secs(5));
        poll_fn(|cx| alarm.poll_elapsed(cx)).await;
        assert!(Instant::now() >= start + Duration::from_secs(5));
        assert!(
            poll_once(&mut alarm).await.is_ready(),
            "an elapsed alarm stays ready until it is reset"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_moves_the_time_it_rings_at() {
        let mut alarm = Alarm::new();
        let start = Instant::now();
        alarm.reset(start + Duration::from_secs(60));
        assert!(poll_once(&mut alarm).await.is_pending());
        alarm.reset(start + Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(2), poll_fn(|cx| alarm.poll_elapsed(cx)))
            .await
            .expect("the earlier time rings, not the first one");
        alarm.reset(start + Duration::from_secs(30));
        assert!(
            poll_once(&mut alarm).await.is_pending(),
            "a reset to a later time is pending again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_skipped_for_the_same_task_still_sees_the_time_come() {
        let mut alarm = Alarm::new();
        alarm.reset(Instant::now() + Duration::from_secs(1));
        // Registered once, then polled again and again by the same task, as a driver loop
        // does at its quiet points: the sleep itself is not polled, yet the end is seen.
        assert!(poll_once(&mut alarm).await.is_pending());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(poll_once(&mut alarm).await.is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn another_task_polling_takes_the_wake_up_over() {
        let mut alarm = Alarm::new();
        alarm.reset(Instant::now() + Duration::from_secs(1));
        assert!(poll_once(&mut alarm).await.is_pending());
        // Moved to another task: its waker is a different one, so the sleep registers it.
        let waiter = tokio::spawn(async move { poll_fn(|cx| alarm.poll_elapsed(cx)).await });
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("the other task is woken")
            .unwrap();
    }
}
