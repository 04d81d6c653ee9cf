//! The state a driver shares with the application's handles: the machine, the application's
//! side of it, and the last connection failure, behind one mutex.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dps_core::Timestamp;
use dps_core::mqtt::{Machine, Transmit};
use dps_transport_mqtt::Signal;

use crate::clock::Clock;
use crate::link::Failure;

/// What the application does with a machine's events. Called with the lock held, right after
/// the input that produced the event; it may call the machine back (for example to accept a
/// delivery once a stream took it), and the driver drains the machine again afterwards.
pub trait Application<M: Machine>: Send + Sized + 'static {
    /// Handles one event. `shared` lets handles created here (a method request that must be
    /// answered later) reach the machine again.
    fn on_event(
        &mut self,
        machine: &mut M,
        now: Timestamp,
        event: M::Event,
        shared: &Arc<Shared<M, Self>>,
    );

    /// The driver has ended: release whatever still waits (end the streams, fail the waiters).
    fn on_finish(&mut self) {}

    /// Offers again what the application held back for want of room; called before every
    /// drain, so a delivery is accepted (and acknowledged) as soon as its stream takes it.
    fn resume(&mut self, _machine: &mut M, _now: Timestamp) {}

    /// `Some` while the application holds back a delivery: a future that completes once there
    /// may be room for it. Until then the driver reads no further incoming message, so the
    /// backlog stays bounded and the service's own queue pushes back (nothing is acknowledged
    /// before the application has it, so nothing is lost).
    fn room(&mut self) -> Option<Room> {
        None
    }
}

/// A future that completes once the application may have room for what it holds back.
pub type Room = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The machine, the application's state, and the last connection failure.
#[derive(Debug)]
#[non_exhaustive]
pub struct Driven<M, A> {
    /// The state machine.
    pub machine: M,
    /// The application's side: waiters, stream outlets, results.
    pub app: A,
    /// Why the last connection attempt failed; cleared by a successful connect.
    pub last_failure: Option<Failure>,
}

/// What one drain found (besides the transmits).
pub(crate) struct Drained {
    pub(crate) timeout: Option<Timestamp>,
    pub(crate) finished: bool,
    /// Set while the application holds back a delivery: read nothing more until it completes.
    pub(crate) room: Option<Room>,
}

/// A machine shared between the driver task and the application's handles.
#[derive(Debug)]
pub struct Shared<M, A> {
    inner: Mutex<Driven<M, A>>,
    /// Wakes the driver (its only waiter).
    wake: Signal,
    clock: Arc<dyn Clock>,
}

impl<M: Machine, A: Application<M>> Shared<M, A> {
    /// Shares `machine` and `app`; `clock` tells the machine's time.
    pub fn new(machine: M, app: A, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Driven {
                machine,
                app,
                last_failure: None,
            }),
            wake: Signal::new(),
            clock,
        }
    }

    /// The machine's time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Locks the shared state (a poisoned lock is taken over: the state stays consistent
    /// because every update is one machine call).
    pub fn lock(&self) -> MutexGuard<'_, Driven<M, A>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs an application call `f` at the current time, then wakes the driver to perform what
    /// it queued.
    pub fn with<R>(&self, f: impl FnOnce(&mut Driven<M, A>, Timestamp) -> R) -> R {
        let result = self.update(f);
        self.wake.raise();
        result
    }

    /// Runs `f` at the current time, for the driver itself (which drains next anyway).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Driven<M, A>, Timestamp) -> R) -> R {
        self.update_at(self.now(), f)
    }

    /// [`update`](Self::update) at `now`, a time the driver read since it last waited.
    pub(crate) fn update_at<R>(
        &self,
        now: Timestamp,
        f: impl FnOnce(&mut Driven<M, A>, Timestamp) -> R,
    ) -> R {
        f(&mut self.lock(), now)
    }

    /// Whether a handle woke the driver since it last looked, without registering a waker.
    pub(crate) fn take_notified(&self) -> bool {
        self.wake.take()
    }

    /// Ready once a handle wakes the driver (registering `cx`'s waker until then).
    pub(crate) fn poll_notified(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.wake.poll_wait(cx)
    }

    /// Takes what the machine wants sent (into `transmits`) and hands every event to the
    /// application, until neither produces more; at `now`, a time the driver read since it
    /// last waited.
    pub(crate) fn drain(
        self: &Arc<Self>,
        now: Timestamp,
        transmits: &mut Vec<Transmit>,
    ) -> Drained {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.app.resume(&mut inner.machine, now);
        loop {
            let mut busy = false;
            while let Some(t) = inner.machine.poll_transmit() {
                transmits.push(t);
                busy = true;
            }
            // One time for the whole drain, which runs under one lock in microseconds: a
            // clock read per event was a measurable part of a telemetry message's cost (#16).
            while let Some(event) = inner.machine.poll_event() {
                busy = true;
                inner.app.on_event(&mut inner.machine, now, event, self);
            }
            if !busy {
                break;
            }
        }
        Drained {
            timeout: inner.machine.poll_timeout(),
            finished: inner.machine.is_finished(),
            room: inner.app.room(),
        }
    }

    pub(crate) fn finish(&self) {
        self.lock().app.on_finish();
    }
}
