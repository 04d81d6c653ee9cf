//! State shared by the client handles and the driver task: the session behind a mutex, the
//! waiters of pending operations, and the stream outlets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dps_auth::AuthError;
use dps_core::Timestamp;
use dps_transport_mqtt::TransportError;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::client::{DesiredUpdate, MethodRequest};
use crate::message::ReceivedMessage;
use crate::proto::{
    ConnectionState, Event, HubSession, MessageId, RequestId, SendError, Transmit, Twin, TwinError,
};

type Waiter<T> = oneshot::Sender<T>;

/// The senders of the streams; dropped when the client stops, which ends the streams.
pub(crate) struct Outlets {
    pub(crate) c2d: mpsc::Sender<Box<ReceivedMessage>>,
    pub(crate) inputs: mpsc::Sender<Box<ReceivedMessage>>,
    pub(crate) desired: mpsc::Sender<Box<DesiredUpdate>>,
    pub(crate) methods: mpsc::Sender<Box<MethodRequest>>,
    pub(crate) states: mpsc::Sender<Box<ConnectionState>>,
}

/// The receivers, until each is taken.
#[derive(Default)]
pub(crate) struct Receivers {
    pub(crate) c2d: Option<mpsc::Receiver<Box<ReceivedMessage>>>,
    pub(crate) inputs: Option<mpsc::Receiver<Box<ReceivedMessage>>>,
    pub(crate) desired: Option<mpsc::Receiver<Box<DesiredUpdate>>>,
    pub(crate) methods: Option<mpsc::Receiver<Box<MethodRequest>>>,
    pub(crate) states: Option<mpsc::Receiver<Box<ConnectionState>>>,
}

/// Why the last connection attempt failed, for the error of `connect()`.
#[derive(Debug)]
pub(crate) enum Failure {
    Transport(TransportError),
    Credentials(AuthError),
}

pub(crate) struct Inner {
    pub(crate) session: HubSession,
    pub(crate) sends: HashMap<MessageId, Waiter<Result<(), SendError>>>,
    pub(crate) twin_gets: HashMap<RequestId, Waiter<Result<Twin, TwinError>>>,
    pub(crate) reported: HashMap<RequestId, Waiter<Result<u64, TwinError>>>,
    pub(crate) responses: HashMap<RequestId, Waiter<Result<(), SendError>>>,
    pub(crate) outlets: Option<Outlets>,
    pub(crate) last_failure: Option<Failure>,
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub(crate) wake: Notify,
    origin: Instant,
    pub(crate) state: watch::Sender<Option<ConnectionState>>,
    pub(crate) receivers: Mutex<Receivers>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
}

/// What the driver learns from one drain.
pub(crate) struct Drained {
    pub(crate) transmits: Vec<Transmit>,
    pub(crate) timeout: Option<Timestamp>,
    pub(crate) stopped: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        session: HubSession,
        origin: Instant,
        outlets: Outlets,
        receivers: Receivers,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                session,
                sends: HashMap::new(),
                twin_gets: HashMap::new(),
                reported: HashMap::new(),
                responses: HashMap::new(),
                outlets: Some(outlets),
                last_failure: None,
            }),
            wake: Notify::new(),
            origin,
            state: watch::Sender::new(None),
            receivers: Mutex::new(receivers),
            task: Mutex::new(None),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_instants(self.origin, Instant::now())
    }

    pub(crate) fn instant(&self, at: Timestamp) -> Instant {
        self.origin + at.as_duration()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub(crate) fn receivers(&self) -> MutexGuard<'_, Receivers> {
        lock(&self.receivers)
    }

    pub(crate) fn take_task(&self) -> Option<JoinHandle<()>> {
        lock(&self.task).take()
    }

    pub(crate) fn set_task(&self, task: JoinHandle<()>) {
        *lock(&self.task) = Some(task);
    }

    /// Runs `f` on the session at the current time, then wakes the driver.
    pub(crate) fn with_session<R>(&self, f: impl FnOnce(&mut Inner, Timestamp) -> R) -> R {
        let result = self.update(f);
        self.wake.notify_one();
        result
    }

    /// Runs `f` on the session at the current time, for the driver itself (which drains the
    /// session next anyway, so there is nobody to wake).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Inner, Timestamp) -> R) -> R {
        let mut inner = self.lock();
        let now = self.now();
        f(&mut inner, now)
    }

    /// Takes what the session wants sent and hands every event to its waiter or stream.
    pub(crate) fn drain(self: &Arc<Self>) -> Drained {
        let mut inner = self.lock();
        let mut transmits = Vec::new();
        while let Some(t) = inner.session.poll_transmit() {
            transmits.push(t);
        }
        while let Some(event) = inner.session.poll_event() {
            self.dispatch(&mut inner, event);
        }
        Drained {
            transmits,
            timeout: inner.session.poll_timeout(),
            stopped: inner.session.is_stopped(),
        }
    }

    fn dispatch(self: &Arc<Self>, inner: &mut Inner, event: Event) {
        match event {
            Event::ConnectionState(state) => {
                match state {
                    ConnectionState::Connected => tracing::info!("connected"),
                    ConnectionState::Disconnected {
                        reason,
                        retry_in,
                        attempt,
                    } => tracing::info!(?reason, ?retry_in, attempt, "disconnected"),
                    ConnectionState::Stopped(reason) => tracing::info!(?reason, "stopped"),
                }
                self.state.send_replace(Some(state));
                if let Some(outlets) = &inner.outlets {
                    offer(&outlets.states, state, "");
                }
            }
            Event::TelemetryAcked { id } => resolve(&mut inner.sends, id, Ok(())),
            Event::TelemetryExpired { id } => {
                tracing::debug!(%id, "telemetry expired");
                resolve(&mut inner.sends, id, Err(SendError::Expired));
            }
            Event::TelemetryAbandoned { id } => {
                resolve(&mut inner.sends, id, Err(SendError::Closed));
            }
            Event::C2d(message) => {
                if let Some(outlets) = &inner.outlets {
                    offer(&outlets.c2d, message, "cloud-to-device message");
                }
            }
            Event::Input(message) => {
                if let Some(outlets) = &inner.outlets {
                    offer(&outlets.inputs, message, "input message");
                }
            }
            Event::DesiredPatch { version, body } => {
                if let Some(outlets) = &inner.outlets {
                    let update = DesiredUpdate::Patch {
                        version,
                        patch: body,
                    };
                    offer(&outlets.desired, update, "desired patch");
                }
            }
            Event::TwinResync { twin, missed } => {
                if missed.is_some_and(|m| m > 0) {
                    tracing::info!(?missed, "desired properties changed while offline");
                }
                if let Some(outlets) = &inner.outlets {
                    offer(
                        &outlets.desired,
                        DesiredUpdate::Resync { twin, missed },
                        "twin resync",
                    );
                }
            }
            Event::TwinReceived { request, result } => {
                resolve(&mut inner.twin_gets, request, result);
            }
            Event::ReportedUpdated { request, result } => {
                resolve(&mut inner.reported, request, result);
            }
            Event::MethodRequest(request) => {
                tracing::debug!(method = %request.name, "method request");
                if let Some(outlets) = &inner.outlets {
                    let request = MethodRequest::new(request, Arc::clone(self));
                    offer(&outlets.methods, request, "method request");
                }
            }
            Event::MethodResponded { request, result } => {
                resolve(&mut inner.responses, request, result);
            }
            Event::Ignored { topic, reason } => {
                tracing::debug!(%topic, ?reason, "ignored a message");
            }
        }
    }

    /// The driver is done: end the streams and fail whatever still waits.
    pub(crate) fn finish(&self) {
        {
            let mut inner = self.lock();
            inner.outlets = None;
            inner.sends.clear();
            inner.twin_gets.clear();
            inner.reported.clear();
            inner.responses.clear();
        }
        // Streams nobody took are dropped with what they buffered (buffered method requests
        // hold this state: keeping them would keep it alive forever).
        *self.receivers() = Receivers::default();
    }
}

fn resolve<K: std::hash::Hash + Eq, T>(waiters: &mut HashMap<K, Waiter<T>>, key: K, value: T) {
    if let Some(waiter) = waiters.remove(&key) {
        // The caller may have stopped waiting (a dropped future); that is fine.
        let _ = waiter.send(value);
    }
}

/// Items travel boxed: a tokio channel allocates its first block of 32 slots up front, and
/// five streams of unboxed items cost an idle connection over 10 KiB before any item arrives.
fn offer<T>(outlet: &mpsc::Sender<Box<T>>, item: T, what: &str) {
    match outlet.try_send(Box::new(item)) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        // Connection states nobody reads are not worth a warning.
        Err(mpsc::error::TrySendError::Full(_)) if what.is_empty() => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                "{what} dropped: its stream is full (read it, or raise the stream capacity)"
            );
        }
    }
}
