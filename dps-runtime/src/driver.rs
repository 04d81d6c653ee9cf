//! The one driver loop: performs what a machine asks on a real connection and feeds back what
//! happens. Connect, subscribe, publishes and incoming messages run concurrently as sources
//! of one wait, so a slow PUBACK never delays an incoming message or a timer.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use dps_core::Timestamp;
use dps_core::mqtt::{
    ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine, PublishId, QoS, Transmit,
};
use dps_transport_mqtt::{
    Alarm, CloseReason, Incoming, MqttConnection, MqttSender, PublishOutcomes, QoS as WireQoS,
    Session, TransportError,
};
use tokio::time::Instant;

use crate::gate::{self, Gate, Mark};
use crate::link::{Connector, Failure};
use crate::shared::{Application, Room, Shared};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A connection attempt, and the expiry of the credentials it presents.
type Attempt = (
    BoxFuture<Result<MqttConnection, TransportError>>,
    Option<u64>,
);

/// What woke the driver.
enum Wake {
    Notified,
    Timeout,
    Connected(Result<MqttConnection, TransportError>),
    Subscribed(bool),
    SessionEnded,
    Published(PublishId, Result<(), TransportError>),
    Incoming(Option<Incoming>),
}

/// The live connection and the operations running on it. Publishes are tagged with their
/// [`PublishId`] and their outcomes read from the connection, so a message in flight costs no
/// future, channel or allocation of its own here; dropping the connection forgets them all.
/// The connection's session (reads, writes, keep-alive) runs here too, as one more branch of
/// the loop: one task per connection, and no wake-up of another task between a packet and
/// the machine.
#[derive(Default)]
struct Conn {
    connection: Option<MqttConnection>,
    session: Option<Session>,
    sender: Option<MqttSender>,
    outcomes: Option<PublishOutcomes>,
    connecting: Option<Attempt>,
    subscribing: Option<BoxFuture<bool>>,
}

impl Conn {
    /// Forgets the connection and everything running on it; returns the connection to close.
    fn reset(&mut self) -> Option<Closing> {
        self.sender = None;
        self.outcomes = None;
        self.connecting = None;
        self.subscribing = None;
        let session = self.session.take();
        self.connection.take().map(|connection| Closing {
            connection,
            session,
        })
    }
}

impl Drop for Conn {
    /// The driver's future was dropped with a connection open (a cancelled registration, an
    /// aborted task): its session still sends DISCONNECT, on a task of its own.
    fn drop(&mut self) {
        if let Some(closing) = self.reset() {
            closing.let_go();
        }
    }
}

/// A connection being closed, with its session if this driver runs it.
struct Closing {
    connection: MqttConnection,
    session: Option<Session>,
}

impl Closing {
    /// Sends DISCONNECT and waits (briefly) until the stream is shut down.
    async fn close(self) {
        match self.session {
            Some(session) => {
                // Dropping the connection tells the session to say goodbye; it has at most
                // two seconds for that.
                drop(self.connection);
                let _ = tokio::time::timeout(CLOSE_WAIT, session).await;
            }
            None => self.connection.disconnect().await,
        }
    }

    /// Lets the connection go without waiting: its session says goodbye on a task of its own.
    fn let_go(self) {
        drop(self.connection);
        if let Some(session) = self.session {
            session.spawn();
        }
    }
}

/// How many waits in a row may find something ready before the driver yields to the
/// runtime's other tasks.
const READY_STREAK_LIMIT: u32 = 64;

/// How long [`Closing::close`] waits for the session's goodbye (the session's own bound is
/// two seconds).
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Drives the machine in `shared` until it finishes, connecting where `connector` says (a
/// [`Link`](crate::Link) for a machine that always connects to the same place), then closes
/// the connection and calls [`Application::on_finish`]. Cancellation-safe: dropping the future
/// drops the connection.
pub fn run<M, A, C>(
    shared: Arc<Shared<M, A>>,
    connector: C,
) -> impl Future<Output = ()> + use<M, A, C>
where
    M: Machine + Send + 'static,
    A: Application<M>,
    C: Connector<M>,
{
    // Not an `async fn` taking `connector` by value: that would keep it twice, as the
    // argument and as the loop's mutable copy; a registration in flight is mostly this
    // future (#16).
    let mut connector = connector;
    async move { drive(shared, &mut connector).await }
}

async fn drive<M, A, C>(shared: Arc<Shared<M, A>>, connector: &mut C)
where
    M: Machine + Send + 'static,
    A: Application<M>,
    C: Connector<M>,
{
    let mut conn = Conn::default();
    // Reused by every drain. Most drains find one transmit; room for one to start with (a
    // first push would make room for four), it grows once for a hub session's batches.
    let mut transmits = Vec::with_capacity(1);
    // One timer for the driver's life, moved earlier when the machine's next timeout comes
    // sooner, never later: the hub session's acknowledgement deadline moves with every PUBACK,
    // and re-arming per message costs more than the rare early wake-up this leaves.
    let mut timer = Alarm::new();
    // What the sources wake: the task, unless the wake-up is the driver's own.
    let gate = Gate::new();
    let gated = gate::waker(&gate);
    // The session's wake-ups, so that it is polled only after one.
    let session_mark = Mark::new(&gated);
    let session_waker = Waker::from(Arc::clone(&session_mark));
    // The machine's time the timer is set for.
    let mut armed: Option<Timestamp> = None;
    // Waits in a row that found something ready without waiting.
    let mut ready_streak = 0;
    // The machine's time, read once after every wait: the handling and the drains that
    // follow run in microseconds, and a clock read each was a measurable part of a
    // telemetry message's cost (#16). Read again after anything else that awaits.
    let mut now = shared.now();
    loop {
        let drained = shared.drain(now, &mut transmits);
        let acted = !transmits.is_empty();
        for transmit in transmits.drain(..) {
            let closing = perform(&shared, connector, &mut conn, transmit, drained.finished);
            if let Some(closing) = closing {
                // Rare (a reconnect over a live connection, the last goodbye), so boxed: the
                // loop's future stays small for the long waits of everything else.
                Box::pin(closing.close()).await;
                now = shared.now();
            }
        }
        if acted {
            // Performing may have fed the machine (a failed credential); drain again first.
            continue;
        }
        if drained.finished {
            break;
        }
        if let Some(timeout) = drained.timeout {
            // Compared in the machine's time first: the usual later deadline reads no clock.
            if armed.is_none_or(|at| timeout < at) {
                let due = Instant::now() + timeout.saturating_duration_since(shared.now());
                timer.reset(due);
                armed = Some(timeout);
            }
        }
        let mut room = drained.room;
        let reading = room.is_none();
        let mut waited = false;
        let wake = poll_fn(|cx| {
            let mut sources = Sources {
                conn: &mut conn,
                room: &mut room,
                reading,
                timer: &mut timer,
                armed: &mut armed,
                now,
                session: (&session_mark, &session_waker),
            };
            gate.enter();
            let poll = sources.poll(&shared, &mut Context::from_waker(&gated));
            if poll.is_pending() {
                gate.sleep(cx);
            }
            waited |= poll.is_pending();
            poll
        })
        .await;
        now = shared.now();
        handle(&shared, &mut conn, wake, now);
        // Something was ready every time for a while: let the runtime's other tasks run (a
        // wait that finds its source ready never gives the task up).
        ready_streak = if waited { 0 } else { ready_streak + 1 };
        if ready_streak == READY_STREAK_LIMIT {
            ready_streak = 0;
            tokio::task::yield_now().await;
            now = shared.now();
        }
    }
    if let Some(closing) = conn.reset() {
        Box::pin(closing.close()).await;
    }
    shared.finish();
}

/// Performs `transmit`; returns a connection to close, and wait for, before anything else (a
/// connection attempt started here is not polled before then).
fn perform<M, A, C>(
    shared: &Arc<Shared<M, A>>,
    connector: &mut C,
    conn: &mut Conn,
    transmit: Transmit,
    finished: bool,
) -> Option<Closing>
where
    M: Machine + Send + 'static,
    A: Application<M>,
    C: Connector<M>,
{
    match transmit {
        Transmit::Connect { clean_session } => {
            let old = conn.reset();
            let guard = shared.lock();
            let link = connector.link(&guard.machine);
            drop(guard);
            let Some(link) = link else {
                tracing::warn!("the machine asked to connect with nowhere to connect to");
                shared.update(|inner, now| {
                    inner
                        .machine
                        .handle_connect_failed(now, ConnectFailure::Unrecoverable);
                });
                return old;
            };
            // Fresh credentials for every connection: a token never outlives a reconnect.
            let unix_now = shared.clock().unix_now();
            match link.authenticator.credentials(&link.resource, unix_now) {
                Ok(credentials) => {
                    let expiry = credentials.expiry_unix();
                    let options = link.options(credentials, clean_session);
                    let transport = Arc::clone(&link.transport);
                    tracing::debug!(endpoint = %link.endpoint, transport = transport.name(), "connecting");
                    conn.connecting = Some((
                        Box::pin(async move { transport.connect(&options).await }),
                        expiry,
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot produce credentials");
                    let failure = if error.is_retriable() {
                        ConnectFailure::Network
                    } else {
                        ConnectFailure::Unrecoverable
                    };
                    shared.update(|inner, now| {
                        inner.last_failure = Some(Failure::Credentials(error));
                        inner.machine.handle_connect_failed(now, failure);
                    });
                }
            }
            return old;
        }
        Transmit::Subscribe { filters } => {
            let sender = conn.sender.clone()?;
            conn.subscribing = Some(Box::pin(async move {
                let filters: Vec<(&str, WireQoS)> = filters
                    .iter()
                    .map(|f| (f.as_str(), WireQoS::AtLeastOnce))
                    .collect();
                match sender.subscribe(&filters).await {
                    Ok(granted) => granted.iter().all(Option::is_some),
                    Err(error) => {
                        tracing::debug!(%error, "subscribe failed");
                        false
                    }
                }
            }));
        }
        Transmit::Publish {
            id,
            topic,
            payload,
            qos,
        } => {
            let qos = match qos {
                QoS::AtMostOnce => WireQoS::AtMostOnce,
                _ => WireQoS::AtLeastOnce,
            };
            let queued = match &conn.connection {
                Some(connection) => connection.publish_tagged(id.get(), topic, payload, qos),
                None => Err(TransportError::ConnectionClosed),
            };
            if let Err(error) = queued {
                handle(shared, conn, Wake::Published(id, Err(error)), shared.now());
            }
        }
        Transmit::Ack { packet_id } => {
            if let Some(sender) = &conn.sender {
                if let Err(error) = sender.ack(packet_id) {
                    // The connection is going; the service redelivers on the next one.
                    tracing::debug!(%error, packet_id, "puback not sent");
                }
            }
        }
        Transmit::Disconnect => {
            let closing = conn.reset()?;
            if finished {
                return Some(closing);
            }
            // The session sends DISCONNECT on its own; reconnecting is urgent.
            closing.let_go();
        }
        other => tracing::warn!(?other, "a transmit this driver does not know"),
    }
    None
}

fn handle<M, A>(shared: &Arc<Shared<M, A>>, conn: &mut Conn, wake: Wake, now: Timestamp)
where
    M: Machine + Send + 'static,
    A: Application<M>,
{
    match wake {
        Wake::Notified => {}
        Wake::Timeout => shared.update_at(now, |inner, now| {
            // The timer may fire before the machine's timeout (it is never moved later).
            if inner.machine.poll_timeout().is_some_and(|at| at <= now) {
                inner.machine.handle_timeout(now);
            }
        }),
        Wake::Connected(result) => {
            let expiry = conn.connecting.take().and_then(|(_, expiry)| expiry);
            match result {
                Ok(mut connection) => {
                    let session_present = connection.session_present();
                    tracing::debug!(session_present, "connack");
                    conn.session = connection.take_session();
                    conn.sender = Some(connection.sender());
                    conn.outcomes = connection.outcomes();
                    conn.connection = Some(connection);
                    // Rounded up: the token was minted with the time rounded down, so the
                    // renewal errs on the early side.
                    let unix_now = shared.clock().unix_now() + 1;
                    shared.update_at(now, |inner, now| {
                        inner.last_failure = None;
                        let connected = Connected::new(session_present, expiry, unix_now);
                        inner.machine.handle_connected(now, connected);
                    });
                }
                Err(error) => {
                    let failure = match &error {
                        TransportError::Refused { code } => ConnectFailure::Refused { code: *code },
                        e if e.is_retriable() => ConnectFailure::Network,
                        _ => ConnectFailure::Unrecoverable,
                    };
                    match failure {
                        ConnectFailure::Network => {
                            tracing::info!(%error, "connection attempt failed");
                        }
                        _ => tracing::warn!(%error, "connection refused or unusable"),
                    }
                    shared.update_at(now, |inner, now| {
                        inner.last_failure = Some(Failure::Transport(error));
                        inner.machine.handle_connect_failed(now, failure);
                    });
                }
            }
        }
        Wake::SessionEnded => {
            // The connection has closed; its end is read from the connection next.
            conn.session = None;
        }
        Wake::Subscribed(granted) => {
            conn.subscribing = None;
            if !granted {
                tracing::info!("subscription refused or failed");
            }
            shared.update_at(now, |inner, now| {
                inner.machine.handle_subscribed(now, granted)
            });
        }
        Wake::Published(id, Ok(())) => {
            // Every PUBACK already in, under one lock: one drain for the whole batch.
            let failed = shared.update_at(now, |inner, now| {
                inner.machine.handle_puback(now, id);
                let outcomes = conn.outcomes.as_ref()?;
                while let Some((id, result)) = outcomes.try_next() {
                    let id = PublishId::new(id);
                    match result {
                        Ok(()) => inner.machine.handle_puback(now, id),
                        Err(error) => return Some((id, error)),
                    }
                }
                None
            });
            if let Some((id, error)) = failed {
                handle(shared, conn, Wake::Published(id, Err(error)), now);
            }
        }
        Wake::Published(id, Err(error)) => {
            tracing::debug!(%error, "publish failed");
            if let Some(closing) = conn.reset() {
                closing.let_go();
            }
            shared.update_at(now, |inner, now| {
                inner.machine.handle_publish_failed(now, id)
            });
        }
        Wake::Incoming(Some(Incoming::Publish {
            topic,
            payload,
            packet_id,
            ..
        })) => {
            let publish = IncomingPublish::new(topic, payload, packet_id);
            shared.update_at(now, |inner, now| inner.machine.handle_publish(now, publish));
        }
        Wake::Incoming(Some(_)) => {}
        Wake::Incoming(None) => {
            let reason = conn
                .connection
                .as_ref()
                .and_then(MqttConnection::close_reason);
            match &reason {
                Some(reason) => tracing::info!(%reason, "connection lost"),
                None => tracing::info!("connection lost"),
            }
            let loss = match reason {
                Some(CloseReason::ClosedByPeer) => ConnectionLoss::ClosedByService,
                Some(CloseReason::TooLarge { size, limit }) => {
                    ConnectionLoss::TooLarge { size, limit }
                }
                _ => ConnectionLoss::Network,
            };
            if let Some(closing) = conn.reset() {
                closing.let_go();
            }
            shared.update_at(now, |inner, now| {
                inner.machine.handle_disconnected(now, loss)
            });
        }
    }
}

/// What the driver waits on between drains, for one wait.
struct Sources<'a> {
    conn: &'a mut Conn,
    room: &'a mut Option<Room>,
    /// Whether incoming messages are taken (not while the application holds one back).
    reading: bool,
    timer: &'a mut Alarm,
    /// The machine's time the timer is set for.
    armed: &'a mut Option<Timestamp>,
    /// The machine's time the drain before this wait ran at.
    now: Timestamp,
    /// The session's mark and the waker that sets it: the session is polled only when
    /// marked.
    session: (&'a Mark, &'a Waker),
}

impl Sources<'_> {
    /// The next thing that happened. What is ready already is found without registering
    /// any waker; only when nothing is does the task register with every source it waits
    /// on (a `select!` registered with all of them on every turn of the loop, the largest
    /// part of the driver's own cost per telemetry message, #16). The session goes first
    /// (when its mark says something of its own woke it), so what it reads and completes in
    /// this poll is seen by the checks after it. `cx` is the gate's: a wake-up while the
    /// driver runs does not reschedule it.
    fn poll<M, A>(&mut self, shared: &Shared<M, A>, cx: &mut Context<'_>) -> Poll<Wake>
    where
        M: Machine + Send + 'static,
        A: Application<M>,
    {
        let (mark, waker) = self.session;
        match &mut self.conn.session {
            Some(session) => {
                if mark.take()
                    && Pin::new(session)
                        .poll(&mut Context::from_waker(waker))
                        .is_ready()
                {
                    return Poll::Ready(Wake::SessionEnded);
                }
            }
            // Marked while there is none: the next connection's session, which has registered
            // nothing yet, is polled at its first look.
            None => mark.set(),
        }
        if let Some((attempt, _)) = &mut self.conn.connecting {
            if let Poll::Ready(result) = attempt.as_mut().poll(cx) {
                return Poll::Ready(Wake::Connected(result));
            }
        }
        if let Some(subscribing) = &mut self.conn.subscribing {
            if let Poll::Ready(granted) = subscribing.as_mut().poll(cx) {
                return Poll::Ready(Wake::Subscribed(granted));
            }
        }
        if let Some(room) = self.room {
            if room.as_mut().poll(cx).is_ready() {
                // Room for what the application held back: the next drain offers it again.
                *self.room = None;
                return Poll::Ready(Wake::Notified);
            }
        }
        // A timeout already due at the drain (one that came due while the driver was busy).
        if self.armed.is_some_and(|at| at <= self.now) {
            *self.armed = None;
            return Poll::Ready(Wake::Timeout);
        }
        if let Some(outcomes) = &self.conn.outcomes {
            if let Some((id, result)) = outcomes.try_next() {
                return Poll::Ready(Wake::Published(PublishId::new(id), result));
            }
        }
        if self.reading {
            if let Some(connection) = &mut self.conn.connection {
                if let Some(incoming) = connection.try_recv() {
                    return Poll::Ready(Wake::Incoming(Some(incoming)));
                }
            }
        }
        if shared.take_notified() {
            return Poll::Ready(Wake::Notified);
        }
        // Nothing ready: wait on all of it (a source that became ready since its check above
        // is ready here, its registration notwithstanding).
        if self.armed.is_some() && self.timer.poll_elapsed(cx).is_ready() {
            *self.armed = None;
            return Poll::Ready(Wake::Timeout);
        }
        if let Some(outcomes) = &self.conn.outcomes {
            if let Poll::Ready((id, result)) = outcomes.poll_next(cx) {
                return Poll::Ready(Wake::Published(PublishId::new(id), result));
            }
        }
        if self.reading {
            if let Some(connection) = &mut self.conn.connection {
                if let Poll::Ready(incoming) = connection.poll_recv(cx) {
                    return Poll::Ready(Wake::Incoming(incoming));
                }
            }
        }
        if shared.poll_notified(cx).is_ready() {
            return Poll::Ready(Wake::Notified);
        }
        Poll::Pending
    }
}
