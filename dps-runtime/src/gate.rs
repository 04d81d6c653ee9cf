//! [`Gate`]: the waker the driver hands its sources, which keeps the driver from waking
//! itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Stands between the driver's sources and its task. While the driver runs (from the end of
/// one wait to the start of the next) a source's wake-up only notes that something happened:
/// the driver looks at every source before it waits again anyway.
///
/// Most wake-ups of a telemetry message's path are the driver's own doing: queueing a
/// PUBLISH raises the session's outbox signal, the session's PUBACK raises the outcomes'
/// signal, both registered with the driver's own task. Each rescheduled the task for a poll
/// that found nothing, about one per message (#16).
#[derive(Debug)]
pub(crate) struct Gate {
    /// Whether the driver is running: a wake-up now must not reschedule it.
    running: AtomicBool,
    /// Whether a wake-up came since the driver started its wait.
    noted: AtomicBool,
    /// The driver's task, woken when a wake-up comes while it waits.
    task: AtomicWaker,
}

impl Gate {
    /// A gate for a driver that is running.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            running: AtomicBool::new(true),
            noted: AtomicBool::new(false),
            task: AtomicWaker::new(),
        })
    }

    /// The driver's wait starts, or resumes after a wake-up: it looks at every source next,
    /// so a note of what came before is spent.
    pub(crate) fn enter(&self) {
        // Only the driver writes `running`; a driver that did not sleep since it last entered
        // (the usual case: one wait found something ready) is still marked running.
        if !self.running.load(Ordering::Relaxed) {
            self.running.store(true, Ordering::SeqCst);
        }
        // Cleared by a read-modify-write, which synchronizes with the wake-up's note: what the
        // waker did before it (a raised signal) is seen by the looks that follow. A note the
        // load misses stays, and the sleep sees it.
        if self.noted.load(Ordering::Relaxed) {
            self.noted.swap(false, Ordering::Acquire);
        }
    }

    /// The driver found nothing and is about to sleep in `cx`'s task: from now on a wake-up
    /// wakes that task. One that came while it looked (a source that yielded, a budget
    /// spent, a wake-up from another thread after its source was looked at) reschedules it
    /// at once.
    pub(crate) fn sleep(&self, cx: &Context<'_>) {
        self.task.register(cx.waker());
        self.running.store(false, Ordering::SeqCst);
        if self.noted.swap(false, Ordering::SeqCst) {
            cx.waker().wake_by_ref();
        }
    }
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Sequentially consistent with `sleep`: either this sees the driver asleep and wakes
        // it, or `sleep` sees the note and reschedules itself.
        self.noted.store(true, Ordering::SeqCst);
        if !self.running.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// The waker of `gate`, for the driver's sources.
pub(crate) fn waker(gate: &Arc<Gate>) -> Waker {
    Waker::from(Arc::clone(gate))
}

/// The waker of one source the driver polls only after it woke: its connection's session.
/// It remembers the wake-up and passes it on to the gate.
///
/// The session was polled at every wait, and most waits are for something else (the
/// application's send, an outcome the session itself handed over): about one poll of the
/// session per message that found its outbox empty and its stream without data (#16).
#[derive(Debug)]
pub(crate) struct Mark {
    woken: AtomicBool,
    gate: Waker,
}

impl Mark {
    /// A mark passing wake-ups on to `gate`, set: a source is polled once before it can have
    /// registered anything.
    pub(crate) fn new(gate: &Waker) -> Arc<Self> {
        Arc::new(Self {
            woken: AtomicBool::new(true),
            gate: gate.clone(),
        })
    }

    /// Marks the source for a poll (while there is none: the next one has registered nothing
    /// yet).
    pub(crate) fn set(&self) {
        self.woken.store(true, Ordering::Release);
    }

    /// Whether the source woke since the last take; a wake-up from here on marks it again.
    pub(crate) fn take(&self) -> bool {
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Marked before the gate hears of it: the driver's next look sees the mark.
        self.woken.store(true, Ordering::Release);
        self.gate.wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::atomic::AtomicUsize;
    use std::task::Poll;

    use super::*;

    /// A task that polls like the driver: looks (`look` may wake the gate), then sleeps.
    fn driver_like(
        gate: &Arc<Gate>,
        look: impl Fn() + Send + 'static,
    ) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (gate, polls) = (Arc::clone(gate), Arc::clone(&polls));
            poll_fn(move |cx| {
                polls.fetch_add(1, Ordering::SeqCst);
                gate.enter();
                look();
                gate.sleep(cx);
                Poll::<()>::Pending
            })
        });
        (polls, task)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_wake_up_while_asleep_wakes_the_task() {
        let gate = Gate::new();
        let gated = waker(&gate);
        let (polls, task) = driver_like(&gate, || {});
        settle().await;
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        gated.wake_by_ref();
        settle().await;
        assert_eq!(polls.load(Ordering::SeqCst), 2, "woken while asleep");
        task.abort();
    }

    #[tokio::test]
    async fn the_drivers_own_wake_up_does_not_reschedule_it() {
        let gate = Gate::new();
        let gated = waker(&gate);
        let (polls, task) = driver_like(&gate, {
            let (gate, gated) = (Arc::clone(&gate), gated.clone());
            move || {
                // Raised while running (as queueing a PUBLISH raises the outbox), then the
                // next wait starts and looks at everything before the sleep.
                gated.wake_by_ref();
                gate.enter();
            }
        });
        settle().await;
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "not polled again for its own wake-up"
        );
        gated.wake_by_ref();
        settle().await;
        assert_eq!(
            polls.load(Ordering::SeqCst),
            2,
            "a later wake-up still wakes it"
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_wake_up_noted_during_the_look_reschedules_at_the_sleep() {
        let gate = Gate::new();
        let gated = waker(&gate);
        let mut polls = 0;
        poll_fn(|cx| {
            polls += 1;
            gate.enter();
            if polls == 2 {
                return Poll::Ready(());
            }
            // A source wakes the gate while the driver looks (as a spent budget does).
            gated.wake_by_ref();
            gate.sleep(cx);
            Poll::Pending
        })
        .await;
        assert_eq!(polls, 2, "the note made the task poll again");
    }

    #[tokio::test]
    async fn a_mark_is_set_by_its_sources_wake_up_and_taken_once() {
        let gate = Gate::new();
        let mark = Mark::new(&waker(&gate));
        assert!(mark.take(), "a new source is polled once");
        assert!(!mark.take());
        Waker::from(Arc::clone(&mark)).wake_by_ref();
        assert!(mark.take(), "its wake-up marks it");
        assert!(!mark.take(), "and the take clears the mark");
        mark.set();
        assert!(mark.take());
    }

    #[tokio::test]
    async fn a_marked_wake_up_reaches_the_sleeping_driver() {
        let gate = Gate::new();
        let mark = Mark::new(&waker(&gate));
        let marked = Waker::from(Arc::clone(&mark));
        let (polls, task) = driver_like(&gate, {
            let mark = Arc::clone(&mark);
            move || {
                mark.take();
            }
        });
        settle().await;
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        marked.wake_by_ref();
        settle().await;
        assert_eq!(
            polls.load(Ordering::SeqCst),
            2,
            "the source's wake-up woke the driver"
        );
        task.abort();
    }
}
