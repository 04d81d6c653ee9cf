//! The application's side of the hub session: the waiters of pending operations and the stream
//! outlets, fed by the session's events. Deliveries are accepted (acknowledged to the hub) once
//! their stream took them; a full stream holds them (see [`crate::backlog`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use dps_core::Timestamp;
use dps_core::hub::{
    ConnectionState, Delivery, Event, HubSession, MessageId, ReceivedMessage, RequestId, SendError,
    Twin, TwinError,
};
use dps_runtime::{Application, Shared};
use tokio::sync::{oneshot, watch};

use crate::backlog::{Backlog, Item, Offer, offer as offer_item};
use crate::completion::{Accept, Completion, Delivered};
use crate::desired::DesiredUpdate;
use crate::host::{Core, Host, back_refs};
use crate::lazy_stream::LazyStream;
use crate::method::MethodRequest;

type Waiter<T> = oneshot::Sender<T>;
/// Who waits for what, by the session's id. The ids are the session's own sequential
/// numbers, so a fast hasher: SipHash, made for keys an attacker chooses, was two hashes per
/// telemetry message (#16).
type Waiters<K, T> = HashMap<K, Waiter<T>, foldhash::fast::RandomState>;

/// The session shared by the client handles and the driver task.
pub(crate) type HubShared = Shared<HubSession, HubApp>;

/// The streams of a new client: the outlets its application feeds and the receivers its
/// handles take (the same streams, made on first use), each holding up to `capacity` items.
pub(crate) fn streams(capacity: usize) -> (Outlets, Receivers) {
    let receivers = Receivers {
        c2d: LazyStream::new(capacity),
        inputs: LazyStream::new(capacity),
        desired: LazyStream::new(capacity),
        methods: LazyStream::new(capacity),
        states: LazyStream::new(capacity),
    };
    let outlets = Outlets {
        c2d: receivers.c2d.clone(),
        inputs: receivers.inputs.clone(),
        desired: receivers.desired.clone(),
        methods: receivers.methods.clone(),
        states: receivers.states.clone(),
    };
    (outlets, receivers)
}

/// The feeding side of the streams; dropped when the client stops, which ends the streams.
pub(crate) struct Outlets {
    pub(crate) c2d: LazyStream<ReceivedMessage>,
    pub(crate) inputs: LazyStream<ReceivedMessage>,
    pub(crate) desired: LazyStream<DesiredUpdate>,
    pub(crate) methods: LazyStream<MethodRequest>,
    pub(crate) states: LazyStream<ConnectionState>,
}

impl Drop for Outlets {
    fn drop(&mut self) {
        self.c2d.close();
        self.inputs.close();
        self.desired.close();
        self.methods.close();
        self.states.close();
    }
}

/// The taking side of the streams.
pub(crate) struct Receivers {
    pub(crate) c2d: LazyStream<ReceivedMessage>,
    pub(crate) inputs: LazyStream<ReceivedMessage>,
    pub(crate) desired: LazyStream<DesiredUpdate>,
    pub(crate) methods: LazyStream<MethodRequest>,
    pub(crate) states: LazyStream<ConnectionState>,
}

/// The waiters and outlets.
pub(crate) struct HubApp {
    pub(crate) sends: Waiters<MessageId, Result<(), SendError>>,
    pub(crate) twin_gets: Waiters<RequestId, Result<Twin, TwinError>>,
    pub(crate) reported: Waiters<RequestId, Result<u64, TwinError>>,
    pub(crate) responses: Waiters<RequestId, Result<(), SendError>>,
    pub(crate) outlets: Option<Outlets>,
    /// Deliveries whose stream was full, with their acknowledgements.
    backlog: Backlog,
    /// Manual completion: the application completes each delivery (`Some`: the session to
    /// complete on, set at the first event); automatic otherwise.
    manual: Option<Option<Weak<dyn Accept>>>,
    pub(crate) state: watch::Sender<Option<ConnectionState>>,
}

impl HubApp {
    pub(crate) fn new(outlets: Outlets) -> Self {
        Self {
            sends: Waiters::default(),
            twin_gets: Waiters::default(),
            reported: Waiters::default(),
            responses: Waiters::default(),
            outlets: Some(outlets),
            backlog: Backlog::default(),
            manual: None,
            state: watch::Sender::new(None),
        }
    }

    /// Switches to manual completion: every delivery carries a [`Completion`] that the
    /// application completes after processing it; nothing is acknowledged before.
    pub(crate) fn manual_completion(mut self, manual: bool) -> Self {
        self.manual = manual.then_some(None);
        self
    }

    /// The session to complete on, in manual mode.
    fn completer(&self) -> Option<&Weak<dyn Accept>> {
        self.manual.as_ref().and_then(Option::as_ref)
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
        self.handle(session, now, event, shared);
    }

    /// The driver is done: end the streams and fail whatever still waits.
    fn on_finish(&mut self) {
        self.finish();
    }

    fn resume(&mut self, session: &mut HubSession, now: Timestamp) {
        self.offer_again(session, now);
    }

    fn room(&mut self) -> Option<dps_runtime::Room> {
        self.need_room()
    }
}

impl HubApp {
    /// Handles one event of the hub session inside `host`.
    pub(crate) fn handle<S: Core>(
        &mut self,
        host: &mut dyn Host,
        now: Timestamp,
        event: Event,
        shared: &Arc<S>,
    ) {
        if let Some(session @ None) = &mut self.manual {
            *session = Some(back_refs(shared).0);
        }
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
                self.set_state(state);
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
                self.deliver(host, now, Item::C2d(message), delivery);
            }
            Event::Input { message, delivery } => {
                self.deliver(host, now, Item::Input(message), delivery);
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
                self.deliver(host, now, Item::Desired(update), delivery);
            }
            Event::TwinResync { twin, missed } => {
                if missed.is_some_and(|m| m > 0) {
                    tracing::info!(?missed, "desired properties changed while offline");
                }
                // No acknowledgement (the twin came as a response), but held all the same: the
                // application must see the full twin to converge.
                let update = DesiredUpdate::Resync { twin, missed };
                self.deliver(host, now, Item::Desired(update), None);
            }
            Event::TwinReceived { request, result } => {
                resolve(&mut self.twin_gets, request, result);
            }
            Event::ReportedUpdated { request, result } => {
                resolve(&mut self.reported, request, result);
            }
            Event::MethodRequest { request, delivery } => {
                tracing::debug!(method = %request.name, "method request");
                let request = MethodRequest::new(request, back_refs(shared).1);
                self.deliver(host, now, Item::Method(request), delivery);
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
    pub(crate) fn finish(&mut self) {
        self.outlets = None;
        self.backlog.clear();
        self.sends.clear();
        self.twin_gets.clear();
        self.reported.clear();
        self.responses.clear();
    }

    /// Offers again what a full stream held back.
    pub(crate) fn offer_again(&mut self, host: &mut dyn Host, now: Timestamp) {
        if self.backlog.is_empty() {
            return;
        }
        if let Some(outlets) = &self.outlets {
            let manual = self.manual.as_ref().and_then(Option::as_ref);
            for delivery in self.backlog.release(outlets, manual) {
                if let Some(session) = host.session() {
                    session.accept(now, delivery);
                }
            }
        }
    }

    /// Publishes a connection state that the session itself did not report (the device
    /// lifecycle's).
    pub(crate) fn set_state(&mut self, state: ConnectionState) {
        self.state.send_replace(Some(state));
        if let Some(outlets) = &self.outlets {
            offer_state(&outlets.states, state);
        }
    }

    /// A future completing once a full stream may have room.
    pub(crate) fn need_room(&mut self) -> Option<dps_runtime::Room> {
        self.backlog.room(self.outlets.as_ref()?)
    }

    /// Hands `item` to its stream and accepts its delivery, or holds both (behind anything
    /// already held, to keep the order) when the stream is full.
    fn deliver(
        &mut self,
        host: &mut dyn Host,
        now: Timestamp,
        item: Item,
        delivery: Option<Delivery>,
    ) {
        let Some(outlets) = &self.outlets else {
            return;
        };
        if !self.backlog.is_empty() {
            self.backlog.hold(item, delivery);
            return;
        }
        let manual = self.completer();
        match offer_item(outlets, item, delivery, manual) {
            Offer::Taken if manual.is_some() => {}
            Offer::Taken | Offer::Gone => {
                if let (Some(delivery), Some(session)) = (delivery, host.session()) {
                    session.accept(now, delivery);
                }
            }
            Offer::Full(item) => self.backlog.hold(item, delivery),
        }
    }
}

fn resolve<K: std::hash::Hash + Eq, T>(waiters: &mut Waiters<K, T>, key: K, value: T) {
    if let Some(waiter) = waiters.remove(&key) {
        // The caller may have stopped waiting (a dropped future); that is fine.
        let _ = waiter.send(value);
    }
}

/// Offers a connection state to its stream; states nobody reads are dropped (they are not
/// deliveries, and the latest one is also kept in the state watch).
fn offer_state(outlet: &LazyStream<ConnectionState>, state: ConnectionState) {
    let _ = outlet.try_send(Box::new(Delivered::new(state, Completion::done())));
}
