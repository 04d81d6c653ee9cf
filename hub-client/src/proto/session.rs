//! The hub session state machine.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;
use dps_core::Timestamp;
use dps_core::hub::{
    C2dSubscription, InputSubscription, MAX_TELEMETRY_MESSAGE_SIZE, METHODS_SUBSCRIPTION,
    MethodResponseTopic, TWIN_DESIRED_SUBSCRIPTION, TWIN_RESPONSE_SUBSCRIPTION, TelemetryTopic,
    TopicError, TwinGetTopic, TwinMessage, TwinReportedTopic, parse_c2d_topic, parse_input_topic,
    parse_method_request, parse_twin_topic, split_command,
};
use dps_core::retry::{JitterSource, calculate_retry_delay};
use serde_json::Value;

use super::config::SessionConfig;
use super::event::{
    ConnectFailure, ConnectionLoss, ConnectionState, DisconnectReason, Event, IgnoreReason,
    MessageId, MethodRequest, PublishId, QoS, RequestId, SendError, StopReason, Transmit, Twin,
    TwinError,
};
use crate::message::{Message, ReceivedMessage};

/// The largest reported-properties patch the hub accepts (the whole reported document is
/// limited to 32 KiB).
pub const MAX_REPORTED_PATCH_SIZE: usize = 32 * 1024;

/// A telemetry message waiting to be sent.
#[derive(Debug, Clone)]
struct Queued {
    id: MessageId,
    topic: String,
    payload: Bytes,
    expires_at: Option<Timestamp>,
    heartbeat: bool,
}

/// A control publish (twin request or method response) not yet acknowledged.
#[derive(Debug, Clone)]
enum Control {
    Twin(RequestId),
    Method {
        request: RequestId,
        topic: String,
        payload: Bytes,
    },
}

#[derive(Debug, Clone)]
enum Sent {
    Telemetry(Queued),
    Control(Control),
}

#[derive(Debug, Clone)]
struct InFlight {
    sent: Sent,
    at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TwinKind {
    Get,
    Resync,
    Patch(Bytes),
}

#[derive(Debug, Clone)]
struct TwinOp {
    kind: TwinKind,
    deadline: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Stop sending, wait for acknowledgements, then reconnect with a fresh token.
    Renew,
    /// Keep sending what is queued, then disconnect for good.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No connection; open one at `reconnect_at`.
    Down { reconnect_at: Timestamp },
    /// `Transmit::Connect` is out.
    Connecting,
    /// `Transmit::Subscribe` is out.
    Subscribing { timeout_at: Timestamp },
    /// Connected and subscribed.
    Up,
    /// Terminal.
    Stopped,
}

/// One device's (or module's) session with IoT Hub, as a deterministic state machine with no
/// I/O: it decides what to send and when, keeps the offline queue, reconnects, renews tokens,
/// resubscribes and correlates requests. See the [module docs](super) for the driving contract.
#[derive(Debug)]
pub struct HubSession {
    config: SessionConfig,
    filters: Vec<String>,
    jitter: JitterSource,
    conn: Conn,
    subscribed_once: bool,
    up_since: Option<Timestamp>,
    token_expires_at: Option<Timestamp>,
    renew_at: Option<Timestamp>,
    drain: Option<(Drain, Timestamp)>,
    closing: bool,
    failures: u32,
    next_id: u64,
    queue: VecDeque<Queued>,
    expiries: BTreeSet<(Timestamp, MessageId)>,
    in_flight: BTreeMap<PublishId, InFlight>,
    telemetry_in_flight: usize,
    control: VecDeque<Control>,
    twin: BTreeMap<RequestId, TwinOp>,
    resync_at: Option<Timestamp>,
    resync_failures: u32,
    last_desired: Option<u64>,
    heartbeat_at: Option<Timestamp>,
    state: Option<ConnectionState>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl HubSession {
    /// Starts a session at `now`; the first transmit is [`Transmit::Connect`]. `seed` feeds the
    /// backoff and renewal jitter: give each device its own random seed (a fixed one in tests).
    #[must_use]
    pub fn new(config: SessionConfig, now: Timestamp, seed: u64) -> Self {
        let filters = subscriptions(&config);
        let mut this = Self {
            config,
            filters,
            jitter: JitterSource::new(seed),
            conn: Conn::Down { reconnect_at: now },
            subscribed_once: false,
            up_since: None,
            token_expires_at: None,
            renew_at: None,
            drain: None,
            closing: false,
            failures: 0,
            next_id: 1,
            queue: VecDeque::new(),
            expiries: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            telemetry_in_flight: 0,
            control: VecDeque::new(),
            twin: BTreeMap::new(),
            resync_at: None,
            resync_failures: 0,
            last_desired: None,
            heartbeat_at: None,
            state: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        this.drive(now);
        this
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The topic filters subscribed after a connect without a session.
    #[must_use]
    pub fn subscriptions(&self) -> &[String] {
        &self.filters
    }

    /// The last connection state reported, `None` before the first connection outcome.
    #[must_use]
    pub const fn connection_state(&self) -> Option<ConnectionState> {
        self.state
    }

    /// Whether the session is connected and subscribed.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.conn == Conn::Up
    }

    /// Whether the session has stopped for good.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.conn == Conn::Stopped
    }

    /// Telemetry messages accepted and not yet acknowledged (queued plus in flight).
    #[must_use]
    pub fn pending_telemetry(&self) -> usize {
        self.queue.len() + self.telemetry_in_flight
    }

    /// Telemetry publishes awaiting PUBACK.
    #[must_use]
    pub const fn telemetry_in_flight(&self) -> usize {
        self.telemetry_in_flight
    }

    // ----------------------------------------------------------------------------------------
    // Driver inputs

    /// The connection is up (CONNACK accepted). `session_present` is the CONNACK flag;
    /// `token_expiry` the Unix expiry of the credentials used (`None` for X.509), and
    /// `unix_now` the wall clock now, in seconds: together they place the renewal.
    pub fn handle_connected(
        &mut self,
        now: Timestamp,
        session_present: bool,
        token_expiry: Option<u64>,
        unix_now: u64,
    ) {
        if self.conn != Conn::Connecting {
            return;
        }
        self.token_expires_at = None;
        self.renew_at = None;
        if let Some(expiry) = token_expiry {
            let remaining = Duration::from_secs(expiry.saturating_sub(unix_now));
            self.token_expires_at = Some(now + remaining);
            self.renew_at = Some(now + self.renewal_delay(remaining));
        }
        if !self.filters.is_empty() && (!self.subscribed_once || !session_present) {
            self.conn = Conn::Subscribing {
                timeout_at: now + self.config.subscribe_timeout,
            };
            self.transmits.push_back(Transmit::Subscribe {
                filters: self.filters.clone(),
            });
        } else {
            self.go_up(now);
        }
        self.drive(now);
    }

    /// The connection attempt failed.
    pub fn handle_connect_failed(&mut self, now: Timestamp, failure: ConnectFailure) {
        if self.conn != Conn::Connecting {
            return;
        }
        self.conn = Conn::Down { reconnect_at: now };
        match failure {
            ConnectFailure::Refused { code: 3 } => {
                self.lost(now, DisconnectReason::Refused { code: 3 });
            }
            ConnectFailure::Refused { code } => self.stop(StopReason::Refused { code }),
            ConnectFailure::Network => self.lost(now, DisconnectReason::Network),
            ConnectFailure::Unrecoverable => self.stop(StopReason::Unrecoverable),
        }
        self.drive(now);
    }

    /// SUBACK arrived and granted every filter.
    pub fn handle_subscribed(&mut self, now: Timestamp) {
        if !matches!(self.conn, Conn::Subscribing { .. }) {
            return;
        }
        self.subscribed_once = true;
        self.go_up(now);
        self.drive(now);
    }

    /// The hub acknowledged (PUBACK) the publish `id`. Unknown ids (from an earlier
    /// connection) are ignored.
    pub fn handle_published(&mut self, now: Timestamp, id: PublishId) {
        if let Some(done) = self.in_flight.remove(&id) {
            match done.sent {
                Sent::Telemetry(q) => {
                    self.telemetry_in_flight -= 1;
                    if !q.heartbeat {
                        self.events.push_back(Event::TelemetryAcked { id: q.id });
                    }
                }
                Sent::Control(Control::Method { request, .. }) => {
                    self.events.push_back(Event::MethodResponded {
                        request,
                        result: Ok(()),
                    });
                }
                Sent::Control(Control::Twin(_)) => {}
            }
        }
        self.drive(now);
    }

    /// The publish `id` failed (the connection broke under it). Its content is queued again;
    /// the connection counts as lost. Unknown ids are ignored.
    pub fn handle_publish_failed(&mut self, now: Timestamp, id: PublishId) {
        let Some(failed) = self.in_flight.remove(&id) else {
            return;
        };
        self.requeue(failed.sent);
        if matches!(self.conn, Conn::Up | Conn::Subscribing { .. }) {
            self.transmits.push_back(Transmit::Disconnect);
            self.lost(now, DisconnectReason::Network);
        }
        self.drive(now);
    }

    /// The established connection ended (or the driver dropped it after a failed SUBSCRIBE).
    pub fn handle_disconnected(&mut self, now: Timestamp, loss: ConnectionLoss) {
        match self.conn {
            Conn::Up | Conn::Subscribing { .. } | Conn::Connecting => {}
            Conn::Down { .. } | Conn::Stopped => return,
        }
        let expired = self.token_expires_at.is_some_and(|at| now >= at);
        let reason = match loss {
            _ if expired => DisconnectReason::TokenExpired,
            ConnectionLoss::Network => DisconnectReason::Network,
            ConnectionLoss::ClosedByService => DisconnectReason::ClosedByService,
        };
        self.lost(now, reason);
        self.drive(now);
    }

    /// A PUBLISH arrived.
    pub fn handle_message(&mut self, now: Timestamp, topic: &str, payload: &[u8]) {
        self.on_message(now, topic, payload);
        self.drive(now);
    }

    /// The instant from [`poll_timeout`](Self::poll_timeout) has come. Calling it early or twice
    /// is harmless.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.drive(now);
    }

    // ----------------------------------------------------------------------------------------
    // Application actions

    /// Queues a telemetry message; it is sent (QoS 1) as soon as the connection and the
    /// in-flight window allow, and again after a reconnect if its PUBACK was lost.
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`close`](Self::close); [`SendError::TooLarge`] over 256 KiB
    /// (body plus properties); [`SendError::QueueFull`] at capacity. Nothing is queued then.
    pub fn send_telemetry(
        &mut self,
        now: Timestamp,
        message: Message,
    ) -> Result<MessageId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let bag = message.properties.to_string();
        let size = message.payload.len() + bag.len();
        if size > MAX_TELEMETRY_MESSAGE_SIZE {
            return Err(SendError::TooLarge {
                size,
                limit: MAX_TELEMETRY_MESSAGE_SIZE,
            });
        }
        let capacity = self.config.queue_capacity;
        if self.pending_telemetry() >= capacity {
            return Err(SendError::QueueFull { capacity });
        }
        let ttl = message.expires_in.or(self.config.default_ttl);
        let id = self.enqueue(now, &bag, message.payload, ttl, false);
        self.drive(now);
        Ok(id)
    }

    /// Asks for the whole twin; the answer is [`Event::TwinReceived`].
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`close`](Self::close); [`SendError::NotSubscribed`] when
    /// [`Features::twin`](super::Features::twin) is off.
    pub fn get_twin(&mut self, now: Timestamp) -> Result<RequestId, SendError> {
        self.twin_request(now, TwinKind::Get)
    }

    /// Patches the reported properties (`null` members delete); the answer, with the new
    /// version, is [`Event::ReportedUpdated`].
    ///
    /// # Errors
    /// As [`get_twin`](Self::get_twin), and [`SendError::TooLarge`] over 32 KiB.
    pub fn update_reported(
        &mut self,
        now: Timestamp,
        patch: &Value,
    ) -> Result<RequestId, SendError> {
        let body = serde_json::to_vec(patch).unwrap_or_default();
        if body.len() > MAX_REPORTED_PATCH_SIZE {
            return Err(SendError::TooLarge {
                size: body.len(),
                limit: MAX_REPORTED_PATCH_SIZE,
            });
        }
        self.twin_request(now, TwinKind::Patch(Bytes::from(body)))
    }

    /// Answers the method request `rid` (as received) with `status` and a JSON `payload`. The
    /// outcome is [`Event::MethodResponded`]. While disconnected the response waits for the
    /// next connection.
    ///
    /// # Errors
    /// [`SendError::Closed`] after [`close`](Self::close); [`SendError::TooLarge`] over 256 KiB.
    pub fn respond_method(
        &mut self,
        now: Timestamp,
        rid: &str,
        status: u16,
        payload: impl Into<Bytes>,
    ) -> Result<RequestId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let payload = payload.into();
        if payload.len() > MAX_TELEMETRY_MESSAGE_SIZE {
            return Err(SendError::TooLarge {
                size: payload.len(),
                limit: MAX_TELEMETRY_MESSAGE_SIZE,
            });
        }
        let request = self.next_request();
        self.control.push_back(Control::Method {
            request,
            topic: MethodResponseTopic::new(status, rid).to_string(),
            payload,
        });
        self.drive(now);
        Ok(request)
    }

    /// Closes the session: no new work is accepted; while connected, what is queued is still
    /// sent and acknowledged (up to [`drain_timeout`](SessionConfig::drain_timeout)), then the
    /// connection is closed and the session stops with [`StopReason::Closed`]. Whatever is left
    /// is failed.
    pub fn close(&mut self, now: Timestamp) {
        if self.conn == Conn::Stopped {
            return;
        }
        self.closing = true;
        if self.conn == Conn::Up {
            self.drain = Some((Drain::Close, now + self.config.drain_timeout));
        } else {
            self.stop(StopReason::Closed);
        }
        self.drive(now);
    }

    // ----------------------------------------------------------------------------------------
    // Outputs

    /// The next action for the driver, in order. Drain after every call that takes `now`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application, in order. Drain after every call that takes `now`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` once stopped (or
    /// when nothing is timed).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.conn == Conn::Stopped {
            return None;
        }
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        match self.conn {
            Conn::Down { reconnect_at } => consider(Some(reconnect_at)),
            Conn::Subscribing { timeout_at } => consider(Some(timeout_at)),
            Conn::Up => {
                match self.drain {
                    Some((_, until)) => consider(Some(until)),
                    None => consider(self.renew_at),
                }
                consider(self.oldest_ack_deadline());
                consider(
                    self.heartbeat_at
                        .filter(|_| self.config.heartbeat.is_some()),
                );
                consider(self.resync_at);
            }
            Conn::Connecting | Conn::Stopped => {}
        }
        consider(self.expiries.first().map(|(t, _)| *t));
        consider(self.twin.values().map(|op| op.deadline).min());
        next
    }

    // ----------------------------------------------------------------------------------------
    // Internals

    fn next_request(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    fn renewal_delay(&mut self, remaining: Duration) -> Duration {
        let renewal = self.config.renewal;
        let ms = remaining.as_millis();
        let at = ms * u128::from(renewal.at_percent.min(100)) / 100;
        let spread = ms * u128::from(renewal.jitter_percent.min(renewal.at_percent)) / 100;
        let spread = Duration::from_millis(u64::try_from(spread).unwrap_or(u64::MAX));
        let at = Duration::from_millis(u64::try_from(at).unwrap_or(u64::MAX));
        at.saturating_sub(self.jitter.jitter(spread))
            .max(renewal.min_interval)
    }

    fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let backoff = self.config.backoff;
        let exp = calculate_retry_delay(
            Duration::ZERO,
            attempt.saturating_sub(1),
            backoff.base,
            backoff.max,
            Duration::ZERO,
        );
        exp + self.jitter.jitter(backoff.max_jitter.max(exp / 4))
    }

    fn set_state(&mut self, state: ConnectionState) {
        self.state = Some(state);
        self.events.push_back(Event::ConnectionState(state));
    }

    fn enqueue(
        &mut self,
        now: Timestamp,
        bag: &str,
        payload: Bytes,
        ttl: Option<Duration>,
        heartbeat: bool,
    ) -> MessageId {
        let id = MessageId(self.next_id);
        self.next_id += 1;
        let mut topic = TelemetryTopic::new(&self.config.device_id);
        if let Some(module) = &self.config.module_id {
            topic = topic.module(module);
        }
        let topic = topic.raw_properties(bag).to_string();
        let expires_at = ttl.map(|ttl| now + ttl);
        if let Some(at) = expires_at {
            self.expiries.insert((at, id));
        }
        self.queue.push_back(Queued {
            id,
            topic,
            payload,
            expires_at,
            heartbeat,
        });
        id
    }

    fn twin_request(&mut self, now: Timestamp, kind: TwinKind) -> Result<RequestId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        if !self.config.features.twin {
            return Err(SendError::NotSubscribed);
        }
        let id = self.next_request();
        self.twin.insert(
            id,
            TwinOp {
                kind,
                deadline: now + self.config.request_timeout,
            },
        );
        self.control.push_back(Control::Twin(id));
        self.drive(now);
        Ok(id)
    }

    fn go_up(&mut self, now: Timestamp) {
        self.conn = Conn::Up;
        self.up_since = Some(now);
        self.drain = None;
        self.set_state(ConnectionState::Connected);
        if self.config.features.twin && self.config.resync_twin {
            self.start_resync(now);
        }
        if let Some(heartbeat) = &self.config.heartbeat {
            if self.heartbeat_at.is_none() {
                self.heartbeat_at = Some(now + heartbeat.interval);
            }
        }
    }

    fn start_resync(&mut self, now: Timestamp) {
        self.resync_at = None;
        let id = self.next_request();
        self.twin.insert(
            id,
            TwinOp {
                kind: TwinKind::Resync,
                deadline: now + self.config.request_timeout,
            },
        );
        self.control.push_front(Control::Twin(id));
    }

    fn resync_failed(&mut self, now: Timestamp) {
        self.resync_failures = self.resync_failures.saturating_add(1);
        let delay = self.backoff_delay(self.resync_failures);
        self.resync_at = Some(now + delay);
    }

    /// Puts the content of an unacknowledged publish back where it waits to be sent.
    fn requeue(&mut self, sent: Sent) {
        match sent {
            Sent::Telemetry(q) => {
                self.telemetry_in_flight -= 1;
                if q.heartbeat {
                    return;
                }
                if let Some(at) = q.expires_at {
                    self.expiries.insert((at, q.id));
                }
                let at = self.queue.partition_point(|other| other.id < q.id);
                self.queue.insert(at, q);
            }
            Sent::Control(Control::Twin(id)) => {
                if self
                    .twin
                    .get(&id)
                    .is_some_and(|op| op.kind != TwinKind::Resync)
                {
                    self.control.push_front(Control::Twin(id));
                }
            }
            Sent::Control(method) => self.control.push_front(method),
        }
    }

    fn requeue_in_flight(&mut self) {
        let in_flight = core::mem::take(&mut self.in_flight);
        // Newest first, so that `push_front` restores the original order of control publishes.
        for (_, f) in in_flight.into_iter().rev() {
            self.requeue(f.sent);
        }
        // Twin reads made for the old connection are replaced by a new one on reconnect.
        self.twin.retain(|_, op| op.kind != TwinKind::Resync);
        self.resync_at = None;
    }

    /// The connection is gone (or the attempt failed): requeue, back off, maybe give up.
    fn lost(&mut self, now: Timestamp, reason: DisconnectReason) {
        self.requeue_in_flight();
        self.renew_at = None;
        self.token_expires_at = None;
        let was_up = self.up_since.take();
        let closing = self.drain.take().is_some_and(|(d, _)| d == Drain::Close);
        if closing || self.closing {
            self.conn = Conn::Down { reconnect_at: now };
            self.stop(StopReason::Closed);
            return;
        }
        if was_up.is_some_and(|since| {
            now.saturating_duration_since(since) >= self.config.backoff.reset_after
        }) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self
            .config
            .backoff
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            self.conn = Conn::Down { reconnect_at: now };
            self.stop(StopReason::RetriesExhausted { last: reason });
            return;
        }
        let retry_in = self.backoff_delay(self.failures);
        self.conn = Conn::Down {
            reconnect_at: now + retry_in,
        };
        self.set_state(ConnectionState::Disconnected {
            reason,
            retry_in,
            attempt: self.failures,
        });
    }

    /// Proactive renewal: reconnect now with fresh credentials.
    fn renew(&mut self) {
        self.transmits.push_back(Transmit::Disconnect);
        self.requeue_in_flight();
        self.up_since = None;
        self.drain = None;
        self.renew_at = None;
        self.token_expires_at = None;
        self.set_state(ConnectionState::Disconnected {
            reason: DisconnectReason::TokenRenewal,
            retry_in: Duration::ZERO,
            attempt: 0,
        });
        self.conn = Conn::Connecting;
        self.transmits.push_back(Transmit::Connect);
    }

    fn stop(&mut self, reason: StopReason) {
        if self.conn == Conn::Stopped {
            return;
        }
        if matches!(
            self.conn,
            Conn::Connecting | Conn::Subscribing { .. } | Conn::Up
        ) {
            self.transmits.push_back(Transmit::Disconnect);
        }
        self.conn = Conn::Stopped;
        self.closing = true;
        self.drain = None;
        self.renew_at = None;
        self.resync_at = None;
        self.heartbeat_at = None;
        let in_flight = core::mem::take(&mut self.in_flight);
        self.telemetry_in_flight = 0;
        let mut abandoned: Vec<MessageId> = Vec::new();
        for (_, f) in in_flight {
            match f.sent {
                Sent::Telemetry(q) if !q.heartbeat => abandoned.push(q.id),
                Sent::Telemetry(_) | Sent::Control(Control::Twin(_)) => {}
                Sent::Control(Control::Method { request, .. }) => {
                    self.events.push_back(Event::MethodResponded {
                        request,
                        result: Err(SendError::Closed),
                    });
                }
            }
        }
        for control in core::mem::take(&mut self.control) {
            if let Control::Method { request, .. } = control {
                self.events.push_back(Event::MethodResponded {
                    request,
                    result: Err(SendError::Closed),
                });
            }
        }
        abandoned.extend(
            core::mem::take(&mut self.queue)
                .into_iter()
                .filter(|q| !q.heartbeat)
                .map(|q| q.id),
        );
        abandoned.sort_unstable();
        for id in abandoned {
            self.events.push_back(Event::TelemetryAbandoned { id });
        }
        self.expiries.clear();
        for (request, op) in core::mem::take(&mut self.twin) {
            self.fail_twin(request, &op.kind, TwinError::Closed);
        }
        self.set_state(ConnectionState::Stopped(reason));
    }

    fn fail_twin(&mut self, request: RequestId, kind: &TwinKind, error: TwinError) {
        match kind {
            TwinKind::Get => self.events.push_back(Event::TwinReceived {
                request,
                result: Err(error),
            }),
            TwinKind::Patch(_) => self.events.push_back(Event::ReportedUpdated {
                request,
                result: Err(error),
            }),
            TwinKind::Resync => {}
        }
    }

    fn oldest_ack_deadline(&self) -> Option<Timestamp> {
        self.in_flight
            .first_key_value()
            .map(|(_, f)| f.at + self.config.ack_timeout)
    }

    fn publish(&mut self, now: Timestamp, sent: Sent, topic: String, payload: Bytes) {
        let id = PublishId(self.next_id);
        self.next_id += 1;
        self.transmits.push_back(Transmit::Publish {
            id,
            topic,
            payload,
            qos: QoS::AtLeastOnce,
        });
        self.in_flight.insert(id, InFlight { sent, at: now });
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            if let Some(pos) = self.queue.iter().position(|q| q.id == id) {
                if let Some(q) = self.queue.remove(pos) {
                    if !q.heartbeat {
                        self.events.push_back(Event::TelemetryExpired { id });
                    }
                }
            }
        }
        let overdue: Vec<RequestId> = self
            .twin
            .iter()
            .filter(|(_, op)| op.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            if let Some(op) = self.twin.remove(&id) {
                if op.kind == TwinKind::Resync {
                    if self.conn == Conn::Up {
                        self.resync_failed(now);
                    }
                } else {
                    self.fail_twin(id, &op.kind, TwinError::Timeout);
                }
            }
        }
    }

    fn drive(&mut self, now: Timestamp) {
        if self.conn == Conn::Stopped {
            return;
        }
        self.expire(now);
        match self.conn {
            Conn::Down { reconnect_at } if now >= reconnect_at => {
                self.conn = Conn::Connecting;
                self.transmits.push_back(Transmit::Connect);
            }
            Conn::Subscribing { timeout_at } if now >= timeout_at => {
                self.transmits.push_back(Transmit::Disconnect);
                self.lost(now, DisconnectReason::SubscribeFailed);
                self.drive(now);
            }
            Conn::Up => self.drive_up(now),
            _ => {}
        }
    }

    fn drive_up(&mut self, now: Timestamp) {
        if self.oldest_ack_deadline().is_some_and(|at| now >= at) {
            self.transmits.push_back(Transmit::Disconnect);
            self.lost(now, DisconnectReason::AckTimeout);
            self.drive(now);
            return;
        }
        if self.drain.is_none() && self.renew_at.is_some_and(|at| now >= at) {
            self.renew_at = None;
            self.drain = Some((Drain::Renew, now + self.config.drain_timeout));
        }
        if let Some(heartbeat) = self.config.heartbeat.clone() {
            if self.heartbeat_at.is_some_and(|at| now >= at) {
                self.heartbeat_at = Some(now + heartbeat.interval);
                if !self.closing && self.pending_telemetry() < self.config.queue_capacity {
                    let bag = dps_core::hub::MessageProperties::new()
                        .property(heartbeat.key, heartbeat.value)
                        .to_string();
                    self.enqueue(now, &bag, Bytes::new(), Some(heartbeat.interval), true);
                }
            }
        }
        if self.resync_at.is_some_and(|at| now >= at) {
            if self.closing {
                self.resync_at = None;
            } else {
                self.start_resync(now);
            }
        }
        if self.drain.map(|(d, _)| d) != Some(Drain::Renew) {
            self.pump(now);
        }
        match self.drain {
            Some((Drain::Renew, until)) if self.in_flight.is_empty() || now >= until => {
                self.renew();
            }
            Some((Drain::Close, until))
                if now >= until
                    || (self.in_flight.is_empty()
                        && self.queue.is_empty()
                        && self.control.is_empty()) =>
            {
                self.stop(StopReason::Closed);
            }
            _ => {}
        }
    }

    fn pump(&mut self, now: Timestamp) {
        while let Some(control) = self.control.pop_front() {
            match &control {
                Control::Twin(id) => {
                    let Some(op) = self.twin.get(id) else {
                        continue;
                    };
                    let rid = id.to_string();
                    let (topic, payload) = match &op.kind {
                        TwinKind::Get | TwinKind::Resync => {
                            (TwinGetTopic::new(&rid).to_string(), Bytes::new())
                        }
                        TwinKind::Patch(body) => {
                            (TwinReportedTopic::new(&rid).to_string(), body.clone())
                        }
                    };
                    self.publish(now, Sent::Control(control), topic, payload);
                }
                Control::Method { topic, payload, .. } => {
                    let (topic, payload) = (topic.clone(), payload.clone());
                    self.publish(now, Sent::Control(control), topic, payload);
                }
            }
        }
        let window = self.config.max_in_flight.max(1);
        while self.telemetry_in_flight < window {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            if let Some(at) = q.expires_at {
                self.expiries.remove(&(at, q.id));
                if at <= now {
                    if !q.heartbeat {
                        self.events.push_back(Event::TelemetryExpired { id: q.id });
                    }
                    continue;
                }
            }
            self.telemetry_in_flight += 1;
            let (topic, payload) = (q.topic.clone(), q.payload.clone());
            self.publish(now, Sent::Telemetry(q), topic, payload);
        }
    }

    fn on_message(&mut self, now: Timestamp, topic: &str, payload: &[u8]) {
        if self.conn == Conn::Stopped {
            return self.ignore(topic, IgnoreReason::Stopped);
        }
        match parse_twin_topic(topic) {
            Ok(message) => return self.on_twin(now, topic, message, payload),
            Err(TopicError::NoMatch) => {}
            Err(_) => return self.ignore(topic, IgnoreReason::MalformedTopic),
        }
        match parse_method_request(topic) {
            Ok(request) => {
                let name = request
                    .decoded_name()
                    .map_or_else(|_| request.name.to_string(), |n| n.into_owned());
                let command = split_command(&name);
                let request = MethodRequest {
                    component: command.component.map(ToString::to_string),
                    command: command.command.to_string(),
                    rid: request.rid.to_string(),
                    payload: Bytes::copy_from_slice(payload),
                    name,
                };
                self.events.push_back(Event::MethodRequest(request));
                return;
            }
            Err(TopicError::NoMatch) => {}
            Err(_) => return self.ignore(topic, IgnoreReason::MalformedTopic),
        }
        match parse_c2d_topic(topic) {
            Ok(c2d) => {
                if c2d.device_id != self.config.device_id || self.config.is_module() {
                    return self.ignore(topic, IgnoreReason::OtherIdentity);
                }
                let message =
                    ReceivedMessage::decode(c2d.properties, Bytes::copy_from_slice(payload), None);
                self.events.push_back(Event::C2d(message));
                return;
            }
            Err(TopicError::NoMatch) => {}
            Err(_) => return self.ignore(topic, IgnoreReason::MalformedTopic),
        }
        match parse_input_topic(topic) {
            Ok(input) => {
                if input.device_id != self.config.device_id
                    || Some(input.module_id) != self.config.module_id.as_deref()
                {
                    return self.ignore(topic, IgnoreReason::OtherIdentity);
                }
                let message = ReceivedMessage::decode(
                    input.properties,
                    Bytes::copy_from_slice(payload),
                    Some(input.input_name.to_string()),
                );
                self.events.push_back(Event::Input(message));
            }
            Err(TopicError::NoMatch) => self.ignore(topic, IgnoreReason::UnknownTopic),
            Err(_) => self.ignore(topic, IgnoreReason::MalformedTopic),
        }
    }

    fn on_twin(&mut self, now: Timestamp, topic: &str, message: TwinMessage<'_>, payload: &[u8]) {
        if let TwinMessage::DesiredPatch { version } = message {
            let body = match serde_json::from_slice::<Value>(payload) {
                Ok(body @ Value::Object(_)) => body,
                _ => return self.ignore(topic, IgnoreReason::InvalidBody),
            };
            let version = body
                .get("$version")
                .and_then(Value::as_u64)
                .or_else(|| version.and_then(|v| v.parse().ok()))
                .unwrap_or_default();
            self.last_desired = Some(self.last_desired.map_or(version, |v| v.max(version)));
            self.events.push_back(Event::DesiredPatch { version, body });
            return;
        }
        let request = message
            .decoded_rid()
            .ok()
            .flatten()
            .and_then(|rid| rid.parse::<u64>().ok())
            .map(RequestId);
        let Some((request, op)) = request.and_then(|r| self.twin.remove(&r).map(|op| (r, op)))
        else {
            return self.ignore(topic, IgnoreReason::UnknownRequest);
        };
        match (op.kind, message) {
            (TwinKind::Resync, TwinMessage::GetResponse { .. }) => match Twin::parse(payload) {
                Some(twin) => {
                    self.resync_failures = 0;
                    let version = twin.desired_version();
                    let missed = match (self.last_desired, version) {
                        (Some(last), Some(v)) => Some(v.saturating_sub(last)),
                        _ => None,
                    };
                    if let Some(v) = version {
                        self.last_desired = Some(self.last_desired.map_or(v, |l| l.max(v)));
                    }
                    self.events.push_back(Event::TwinResync { twin, missed });
                }
                None => self.resync_failed(now),
            },
            (TwinKind::Resync, _) => self.resync_failed(now),
            (TwinKind::Get, TwinMessage::GetResponse { .. }) => {
                let result = Twin::parse(payload).ok_or(TwinError::InvalidResponse);
                if let Ok(Some(v)) = result.as_ref().map(Twin::desired_version) {
                    self.last_desired = Some(self.last_desired.map_or(v, |l| l.max(v)));
                }
                self.events
                    .push_back(Event::TwinReceived { request, result });
            }
            (
                kind @ (TwinKind::Get | TwinKind::Patch(_)),
                TwinMessage::RequestError { status, .. },
            ) => self.fail_twin(request, &kind, TwinError::Status { status }),
            (TwinKind::Patch(_), TwinMessage::ReportedAck { version, .. })
            | (TwinKind::Patch(_), TwinMessage::GetResponse { version, .. }) => {
                let result = version
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(TwinError::InvalidResponse);
                self.events
                    .push_back(Event::ReportedUpdated { request, result });
            }
            (kind, _) => self.fail_twin(request, &kind, TwinError::InvalidResponse),
        }
    }

    fn ignore(&mut self, topic: &str, reason: IgnoreReason) {
        self.events.push_back(Event::Ignored {
            topic: topic.to_string(),
            reason,
        });
    }
}

/// The filters a session with `config` subscribes to.
fn subscriptions(config: &SessionConfig) -> Vec<String> {
    let features = config.features;
    let mut filters = Vec::new();
    match &config.module_id {
        None if features.c2d => {
            filters.push(C2dSubscription::new(&config.device_id).to_string());
        }
        Some(module) if features.inputs => {
            filters.push(InputSubscription::new(&config.device_id, module).to_string());
        }
        _ => {}
    }
    if features.twin {
        filters.push(TWIN_RESPONSE_SUBSCRIPTION.to_string());
        filters.push(TWIN_DESIRED_SUBSCRIPTION.to_string());
    }
    if features.methods {
        filters.push(METHODS_SUBSCRIPTION.to_string());
    }
    filters
}
