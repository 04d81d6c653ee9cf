//! The application's side of the hub session: the waiters of pending operations and the stream
//! outlets, fed by the session's events. Deliveries are accepted (acknowledged to the hub) once
//! their stream took them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use dps_core::Timestamp;
use dps_core::hub::{
    ConnectionState, Delivery, Event, HubSession, MessageId, ReceivedMessage, RequestId, SendError,
    Twin, TwinError,
};
use dps_runtime::{Application, Shared};
use tokio::sync::{mpsc, oneshot, watch};

use crate::desired::DesiredUpdate;
use crate::method::{MethodRequest, Responder};

type Waiter<T> = oneshot::Sender<T>;

/// The session shared by the client handles and the driver task.
pub(crate) type HubShared = Shared<HubSession, HubApp>;

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

/// The waiters and outlets.
pub(crate) struct HubApp {
    pub(crate) sends: HashMap<MessageId, Waiter<Result<(), SendError>>>,
    pub(crate) twin_gets: HashMap<RequestId, Waiter<Result<Twin, TwinError>>>,
    pub(crate) reported: HashMap<RequestId, Waiter<Result<u64, TwinError>>>,
    pub(crate) responses: HashMap<RequestId, Waiter<Result<(), SendError>>>,
    pub(crate) outlets: Option<Outlets>,
    pub(crate) state: watch::Sender<Option<ConnectionState>>,
}

impl HubApp {
    pub(crate) fn new(outlets: Outlets) -> Self {
        Self {
            sends: HashMap::new(),
            twin_gets: HashMap::new(),
            reported: HashMap::new(),
            responses: HashMap::new(),
            outlets: Some(outlets),
            state: watch::Sender::new(None),
        }
    }
}

impl Application<HubSession> for HubApp {
    fn on_event(
        &mut self,
        session: &mut HubSession,
        now: Timestamp,
        event: Event,
        shared: &Arc<HubShared>,
    ) {
        let accept = |session: &mut HubSession, taken: bool, delivery: Option<Delivery>| {
            if let (true, Some(delivery)) = (taken, delivery) {
                session.accept(now, delivery);
            }
        };
        match event {
            Event::ConnectionState(state) => {
                match state {
                    ConnectionState::Connected => tracing::info!("connected"),
                    ConnectionState::Disconnected {
                        reason,
                        retry_in,
                        attempt,
                    } => tracing::info!(%reason, ?retry_in, attempt, "disconnected"),
                    ConnectionState::Stopped(reason) => tracing::info!(%reason, "stopped"),
                    _ => {}
                }
                self.state.send_replace(Some(state));
                if let Some(outlets) = &self.outlets {
                    offer(&outlets.states, state, "");
                }
            }
            Event::TelemetryAcked { id } => resolve(&mut self.sends, id, Ok(())),
            Event::TelemetryExpired { id } => {
                tracing::debug!(%id, "telemetry expired");
                resolve(&mut self.sends, id, Err(SendError::Expired));
            }
            Event::TelemetryAbandoned { id } => {
                resolve(&mut self.sends, id, Err(SendError::Closed));
            }
            Event::C2d { message, delivery } => {
                let taken = self
                    .outlets
                    .as_ref()
                    .is_some_and(|o| offer(&o.c2d, message, "cloud-to-device message"));
                accept(session, taken, delivery);
            }
            Event::Input { message, delivery } => {
                let taken = self
                    .outlets
                    .as_ref()
                    .is_some_and(|o| offer(&o.inputs, message, "input message"));
                accept(session, taken, delivery);
            }
            Event::DesiredPatch {
                version,
                body,
                delivery,
            } => {
                let update = DesiredUpdate::Patch {
                    version,
                    patch: body,
                };
                let taken = self
                    .outlets
                    .as_ref()
                    .is_some_and(|o| offer(&o.desired, update, "desired patch"));
                accept(session, taken, delivery);
            }
            Event::TwinResync { twin, missed } => {
                if missed.is_some_and(|m| m > 0) {
                    tracing::info!(?missed, "desired properties changed while offline");
                }
                if let Some(outlets) = &self.outlets {
                    offer(
                        &outlets.desired,
                        DesiredUpdate::Resync { twin, missed },
                        "twin resync",
                    );
                }
            }
            Event::TwinReceived { request, result } => {
                resolve(&mut self.twin_gets, request, result);
            }
            Event::ReportedUpdated { request, result } => {
                resolve(&mut self.reported, request, result);
            }
            Event::MethodRequest { request, delivery } => {
                tracing::debug!(method = %request.name, "method request");
                let responder: Arc<dyn Responder> = Arc::clone(shared) as Arc<dyn Responder>;
                let request = MethodRequest::new(request, responder);
                let taken = self
                    .outlets
                    .as_ref()
                    .is_some_and(|o| offer(&o.methods, request, "method request"));
                accept(session, taken, delivery);
            }
            Event::MethodResponded { request, result } => {
                resolve(&mut self.responses, request, result);
            }
            Event::Ignored { topic, reason } => {
                tracing::debug!(%topic, %reason, "ignored a message");
            }
            Event::Stopped(reason) => tracing::debug!(%reason, "session ended"),
            _ => {}
        }
    }

    /// The driver is done: end the streams and fail whatever still waits.
    fn on_finish(&mut self) {
        self.outlets = None;
        self.sends.clear();
        self.twin_gets.clear();
        self.reported.clear();
        self.responses.clear();
    }
}

impl Responder for HubShared {
    fn respond(
        &self,
        rid: &str,
        status: u16,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Result<(), SendError>>, SendError> {
        let (tx, rx) = oneshot::channel();
        self.with(|inner, now| {
            let id = inner.machine.respond_method(now, rid, status, payload)?;
            inner.app.responses.insert(id, tx);
            Ok::<_, SendError>(())
        })?;
        Ok(rx)
    }
}

fn resolve<K: std::hash::Hash + Eq, T>(waiters: &mut HashMap<K, Waiter<T>>, key: K, value: T) {
    if let Some(waiter) = waiters.remove(&key) {
        // The caller may have stopped waiting (a dropped future); that is fine.
        let _ = waiter.send(value);
    }
}

/// Offers `item` to its stream; true when the stream took it or nobody reads it any more (the
/// item is then acknowledged: redelivering it would reach nobody either). A full stream
/// leaves the item unacknowledged, so the hub delivers it again on a later connection.
///
/// Items travel boxed: a tokio channel allocates its first block of 32 slots up front, and
/// five streams of unboxed items cost an idle connection over 10 KiB before any item arrives.
fn offer<T>(outlet: &mpsc::Sender<Box<T>>, item: T, what: &str) -> bool {
    match outlet.try_send(Box::new(item)) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
        // Connection states nobody reads are not worth a warning.
        Err(mpsc::error::TrySendError::Full(_)) if what.is_empty() => false,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                "{what} not taken: its stream is full (read it, or raise the stream capacity); the hub delivers it again after a reconnect"
            );
            false
        }
    }
}
