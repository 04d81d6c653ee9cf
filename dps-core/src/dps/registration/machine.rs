//! The registration state machine.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use core::time::Duration;

use bytes::Bytes;

use super::config::RegistrationConfig;
use super::event::{Event, IgnoreReason, RequestKind, RetryReason};
use super::outcome::{Assignment, Outcome, RegistrationError};
use crate::dps::model::{ModelError, RegistrationOperationStatus, RegistrationStatus};
use crate::dps::response::{Response, ResponseBody, ResponseError};
use crate::dps::topic::{QueryTopic, RegisterTopic, ResponseTopic, SUBSCRIBE_TOPIC, TopicError};
use crate::mqtt::{
    ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine, PublishId, QoS, Transmit,
};
use crate::retry::{JitterSource, calculate_retry_delay, is_retriable};
use crate::time::{Timer as TimerKind, TimerTable, Timestamp};

/// How many answered or abandoned `$rid`s are remembered, to tell late duplicates from strangers.
const STALE_RIDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    /// No connection; open one when [`Timer::Reconnect`] fires.
    Down,
    /// `Transmit::Connect` is out; waiting for the driver's report.
    Connecting,
    /// `Transmit::Subscribe` is out; waiting for SUBACK until [`Timer::Subscribe`].
    Subscribing,
    /// Connected and subscribed.
    Up,
}

/// The registration's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The overall deadline ([`Timing::deadline`](super::Timing::deadline)).
    Deadline,
    /// Open the next connection.
    Reconnect,
    /// No SUBACK in time.
    Subscribe,
    /// No answer to the request in flight in time.
    Request,
    /// The next request may go out (armed only while connected with nothing in flight).
    Send,
}

impl TimerKind for Timer {
    const ALL: &'static [Self] = &[
        Self::Deadline,
        Self::Reconnect,
        Self::Subscribe,
        Self::Request,
        Self::Send,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Register,
    Poll { operation_id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    rid: u64,
    kind: RequestKind,
}

/// One device registration, as a deterministic state machine with no I/O.
///
/// See the [module docs](super) for the driving contract and a complete driver.
#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    request_body: Bytes,
    jitter: JitterSource,
    timers: TimerTable<Timer>,
    conn: Conn,
    step: Step,
    /// Earliest time the next request may go out.
    send_at: Timestamp,
    in_flight: Option<InFlight>,
    next_rid: u64,
    next_publish: u64,
    stale_rids: VecDeque<u64>,
    /// Consecutive failures, for the exponential backoff; reset by any useful answer.
    failures: u32,
    /// Connection attempts that failed in a row; reset by a CONNACK.
    connect_failures: u32,
    last_problem: Option<RetryReason>,
    last_retry_after: Option<Duration>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    finished: bool,
}

impl Registration {
    /// Starts a registration at `now`. `seed` feeds the backoff jitter: give each device its own
    /// random seed (a fixed one in tests).
    ///
    /// The first transmit is [`Transmit::Connect`].
    #[must_use]
    pub fn new(config: RegistrationConfig, now: Timestamp, seed: u64) -> Self {
        let request_body = Bytes::from(config.request.to_json().into_bytes());
        let mut timers = TimerTable::new(now);
        timers.set(Timer::Deadline, now + config.timing.deadline);
        timers.set(Timer::Reconnect, now);
        let mut this = Self {
            config,
            request_body,
            jitter: JitterSource::new(seed),
            timers,
            conn: Conn::Down,
            step: Step::Register,
            send_at: now,
            in_flight: None,
            next_rid: 1,
            next_publish: 1,
            // Both grow when used: most registrations never retire a request, and their
            // transmits leave one at a time (thousands of registrations wait at once, #16).
            stale_rids: VecDeque::new(),
            failures: 0,
            connect_failures: 0,
            last_problem: None,
            last_retry_after: None,
            transmits: VecDeque::with_capacity(1),
            events: VecDeque::new(),
            finished: false,
        };
        this.drive(now);
        this
    }

    /// The configuration this registration runs with.
    #[must_use]
    pub const fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// True once the registration has ended ([`Event::Finished`] is queued or was drained).
    #[must_use]
    pub const fn is_finished(&self) -> bool {
        self.finished
    }

    fn on_publish(&mut self, now: Timestamp, topic: &str, payload: &[u8]) {
        if self.finished {
            self.ignore(IgnoreReason::Finished, None);
            return;
        }
        let parsed_topic = match ResponseTopic::parse(topic) {
            Ok(parsed) => parsed,
            Err(TopicError::NoMatch) => {
                self.ignore(IgnoreReason::NotDps, None);
                return;
            }
            Err(err) => {
                self.ignore(IgnoreReason::MalformedTopic(err), None);
                return;
            }
        };
        let rid = parsed_topic.rid.parse::<u64>().ok();
        let in_flight = match (self.in_flight, rid) {
            (Some(f), Some(rid)) if f.rid == rid => f,
            (_, Some(rid)) if self.stale_rids.contains(&rid) => {
                self.ignore(IgnoreReason::StaleRid, Some(parsed_topic.rid.to_string()));
                return;
            }
            _ => {
                self.ignore(IgnoreReason::UnknownRid, Some(parsed_topic.rid.to_string()));
                return;
            }
        };
        self.retire(in_flight.rid);
        self.last_retry_after = parsed_topic
            .retry_after
            .map(|s| Duration::from_secs(u64::from(s)));

        match Response::parse(topic, payload) {
            Ok(response) => self.handle_response(now, in_flight.kind, &response),
            Err(ResponseError::Body(ModelError::MissingField("operationId"))) => {
                self.step = Step::Register;
                self.retry(now, RetryReason::MissingOperationId);
            }
            Err(err) => self.retry(now, RetryReason::InvalidResponse(err)),
        }
    }

    fn handle_response(&mut self, now: Timestamp, kind: RequestKind, response: &Response<'_>) {
        let status = response.effective_status();
        match &response.body {
            ResponseBody::Operation(op) if status < 300 => self.handle_operation(now, op),
            body => {
                let error = match body {
                    ResponseBody::Error(e) => Some(e.clone()),
                    ResponseBody::Operation(_) => None,
                };
                if is_retriable(status) {
                    let reason = if status == 429 {
                        RetryReason::Throttled { status }
                    } else {
                        RetryReason::ServerError { status }
                    };
                    self.retry(now, reason);
                } else if matches!(status, 401 | 403) {
                    self.finish(Err(RegistrationError::Unauthorized { status, error }));
                } else if status == 404 && kind == RequestKind::Poll {
                    self.step = Step::Register;
                    self.retry(now, RetryReason::OperationNotFound);
                } else {
                    self.finish(Err(RegistrationError::Rejected { status, error }));
                }
            }
        }
    }

    fn handle_operation(&mut self, now: Timestamp, op: &RegistrationOperationStatus) {
        let state = op.registration_state.as_ref();
        match op.status {
            RegistrationStatus::Assigned => {
                let assignment = state
                    .cloned()
                    .and_then(|s| Assignment::from_state(op.operation_id.clone(), s));
                // `Response::parse` guarantees both names for an assigned status.
                match assignment {
                    Some(a) => self.finish(Ok(a)),
                    None => self.retry(
                        now,
                        RetryReason::InvalidResponse(ResponseError::Body(
                            ModelError::MissingField("assignedHub"),
                        )),
                    ),
                }
            }
            RegistrationStatus::Failed => self.finish(Err(RegistrationError::failed(state))),
            RegistrationStatus::Disabled => self.finish(Err(RegistrationError::Disabled {
                state: state.cloned().map(Box::new),
            })),
            RegistrationStatus::Unassigned => self.finish(Err(RegistrationError::Unassigned {
                state: state.cloned().map(Box::new),
            })),
            RegistrationStatus::Assigning => {
                self.failures = 0;
                self.last_problem = None;
                let timing = &self.config.timing;
                let wait =
                    timing.clamp(self.last_retry_after.unwrap_or(timing.default_retry_after));
                if op.operation_id.is_empty() {
                    self.step = Step::Register;
                    self.retry_in(now, RetryReason::MissingOperationId, wait);
                    return;
                }
                self.step = Step::Poll {
                    operation_id: op.operation_id.clone(),
                };
                if self.schedule(now, wait) {
                    self.events.push_back(Event::Assigning {
                        operation_id: op.operation_id.clone(),
                        retry_in: wait,
                    });
                }
            }
        }
    }

    /// Counts a failure and schedules the same step again after backoff (at least the service's
    /// `retry-after`, when it sent one).
    fn retry(&mut self, now: Timestamp, reason: RetryReason) {
        let backoff = self.next_backoff();
        let wait = self
            .config
            .timing
            .clamp(backoff.max(self.last_retry_after.unwrap_or_default()));
        self.retry_in(now, reason, wait);
    }

    fn retry_in(&mut self, now: Timestamp, reason: RetryReason, wait: Duration) {
        self.last_problem = Some(reason.clone());
        if self.schedule(now, wait) {
            self.events.push_back(Event::Retrying {
                reason,
                attempt: self.failures,
                retry_in: wait,
            });
        }
    }

    /// Sets the next send time; ends the registration instead when that is past the deadline.
    fn schedule(&mut self, now: Timestamp, wait: Duration) -> bool {
        let at = now + wait;
        if self.past_deadline(at) {
            self.finish(Err(self.deadline_error()));
            return false;
        }
        self.send_at = at;
        true
    }

    fn next_backoff(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let timing = self.config.timing;
        let jitter = self.jitter.jitter(timing.max_jitter);
        calculate_retry_delay(
            Duration::ZERO,
            self.failures - 1,
            timing.backoff_base,
            timing.retry_after_ceiling,
            jitter,
        )
    }

    fn conn_lost(&mut self, now: Timestamp, reason: RetryReason) {
        if let Some(f) = self.in_flight.take() {
            self.retire(f.rid);
        }
        let backoff = self.next_backoff();
        let wait = self.config.timing.clamp(backoff);
        self.last_problem = Some(reason.clone());
        let at = now + wait;
        if self.past_deadline(at) {
            self.finish(Err(self.deadline_error()));
            return;
        }
        // `send_at` is kept: an abandoned request was due already and goes out again as soon as
        // the connection is back, while a pending `retry-after` is still honoured.
        self.conn = Conn::Down;
        self.timers.stop(Timer::Subscribe);
        self.timers.set(Timer::Reconnect, at);
        self.events.push_back(Event::Retrying {
            reason,
            attempt: self.failures,
            retry_in: wait,
        });
    }

    fn past_deadline(&self, at: Timestamp) -> bool {
        self.timers.get(Timer::Deadline).is_some_and(|d| at > d)
    }

    fn drive(&mut self, now: Timestamp) {
        if self.finished {
            return;
        }
        if self.timers.is_expired(Timer::Deadline, now) {
            self.finish(Err(self.deadline_error()));
            return;
        }
        match self.conn {
            Conn::Down if self.timers.is_expired(Timer::Reconnect, now) => {
                self.timers.stop(Timer::Reconnect);
                self.conn = Conn::Connecting;
                self.transmits.push_back(Transmit::Connect {
                    clean_session: true,
                });
            }
            Conn::Subscribing if self.timers.is_expired(Timer::Subscribe, now) => {
                self.transmits.push_back(Transmit::Disconnect);
                self.conn_lost(now, RetryReason::SubscribeTimeout);
            }
            Conn::Up => {
                if self.in_flight.is_some() && self.timers.is_expired(Timer::Request, now) {
                    if let Some(f) = self.in_flight.take() {
                        self.retire(f.rid);
                    }
                    self.last_retry_after = None;
                    self.retry(now, RetryReason::RequestTimeout);
                }
                if !self.finished && self.in_flight.is_none() && now >= self.send_at {
                    self.send(now);
                }
            }
            _ => {}
        }
        self.arm();
    }

    /// Keeps the timers that follow from the state in step with it.
    fn arm(&mut self) {
        if self.finished {
            self.timers.stop_all();
            return;
        }
        let waiting = self.conn == Conn::Up && self.in_flight.is_none();
        self.timers
            .set_or_stop(Timer::Send, waiting.then_some(self.send_at));
        if self.in_flight.is_none() {
            self.timers.stop(Timer::Request);
        }
    }

    fn send(&mut self, now: Timestamp) {
        let rid = self.next_rid;
        self.next_rid += 1;
        let rid_text = rid.to_string();
        let (kind, topic, payload) = match &self.step {
            Step::Register => (
                RequestKind::Register,
                RegisterTopic::new(&rid_text).to_string(),
                self.request_body.clone(),
            ),
            Step::Poll { operation_id } => (
                RequestKind::Poll,
                QueryTopic::new(&rid_text, operation_id).to_string(),
                Bytes::new(),
            ),
        };
        let id = PublishId::new(self.next_publish);
        self.next_publish += 1;
        self.transmits.push_back(Transmit::Publish {
            id,
            topic,
            payload,
            qos: QoS::AtLeastOnce,
        });
        self.in_flight = Some(InFlight { rid, kind });
        self.timers
            .set(Timer::Request, now + self.config.timing.request_timeout);
        self.events.push_back(Event::RequestSent { kind, rid });
    }

    fn retire(&mut self, rid: u64) {
        if self.in_flight.is_some_and(|f| f.rid == rid) {
            self.in_flight = None;
        }
        if self.stale_rids.len() == STALE_RIDS {
            self.stale_rids.pop_front();
        }
        self.stale_rids.push_back(rid);
    }

    fn ignore(&mut self, reason: IgnoreReason, rid: Option<String>) {
        self.events.push_back(Event::Ignored { reason, rid });
    }

    fn deadline_error(&self) -> RegistrationError {
        match &self.last_problem {
            Some(RetryReason::Throttled { status } | RetryReason::ServerError { status }) => {
                RegistrationError::Throttled {
                    status: *status,
                    retry_after: self.last_retry_after,
                }
            }
            other => RegistrationError::Timeout {
                last_problem: other.clone(),
            },
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.in_flight = None;
        self.timers.stop_all();
        if self.conn != Conn::Down {
            self.transmits.push_back(Transmit::Disconnect);
        }
        self.events.push_back(Event::Finished(outcome));
    }
}

impl Machine for Registration {
    type Event = Event;

    /// The connection is up: subscribe to the response topic.
    fn handle_connected(&mut self, now: Timestamp, _connected: Connected) {
        let now = self.timers.advance(now);
        if self.finished || self.conn != Conn::Connecting {
            return;
        }
        self.conn = Conn::Subscribing;
        self.connect_failures = 0;
        self.timers
            .set(Timer::Subscribe, now + self.config.timing.request_timeout);
        self.transmits.push_back(Transmit::Subscribe {
            filters: alloc::vec![SUBSCRIBE_TOPIC.to_string()],
        });
        self.drive(now);
    }

    /// Credentials refusals (CONNACK 4, 5) and unusable identities (1, 2) end the registration;
    /// anything else is retried with backoff until the deadline.
    fn handle_connect_failed(&mut self, now: Timestamp, failure: ConnectFailure) {
        let now = self.timers.advance(now);
        if self.finished || self.conn != Conn::Connecting {
            return;
        }
        match failure {
            ConnectFailure::Refused {
                code: code @ (4 | 5),
            } => {
                self.finish(Err(RegistrationError::Unauthorized {
                    status: u16::from(code),
                    error: None,
                }));
            }
            ConnectFailure::Refused {
                code: code @ (1 | 2),
            } => {
                self.finish(Err(RegistrationError::ConnectionRefused { code }));
            }
            ConnectFailure::Unrecoverable => {
                self.finish(Err(RegistrationError::Unrecoverable));
            }
            ConnectFailure::Refused { .. } | ConnectFailure::Network => {
                self.connect_failures = self.connect_failures.saturating_add(1);
                let bound = self.config.timing.max_connect_failures;
                if bound.is_some_and(|max| self.connect_failures >= max.max(1)) {
                    self.last_problem = Some(RetryReason::ConnectFailed(failure));
                    self.conn = Conn::Down;
                    self.finish(Err(RegistrationError::Unreachable {
                        attempts: self.connect_failures,
                        last: failure,
                    }));
                } else {
                    self.conn_lost(now, RetryReason::ConnectFailed(failure));
                }
            }
        }
        self.drive(now);
    }

    /// SUBACK: requests may go out; a refused subscription drops the connection.
    fn handle_subscribed(&mut self, now: Timestamp, granted: bool) {
        let now = self.timers.advance(now);
        if self.finished || self.conn != Conn::Subscribing {
            return;
        }
        self.timers.stop(Timer::Subscribe);
        if granted {
            self.conn = Conn::Up;
        } else {
            self.transmits.push_back(Transmit::Disconnect);
            self.conn_lost(now, RetryReason::SubscribeRefused);
        }
        self.drive(now);
    }

    /// Responses to the request in flight advance the registration; anything else is reported
    /// as [`Event::Ignored`] and changes nothing. Every QoS 1 publish is acknowledged at once:
    /// a response is consumed by the machine itself.
    fn handle_publish(&mut self, now: Timestamp, publish: IncomingPublish) {
        let now = self.timers.advance(now);
        if let Some(packet_id) = publish.packet_id {
            if matches!(self.conn, Conn::Subscribing | Conn::Up) {
                self.transmits.push_back(Transmit::Ack { packet_id });
            }
        }
        self.on_publish(now, &publish.topic, &publish.payload);
        self.drive(now);
    }

    /// Nothing waits for the PUBACK of a request: its response is the answer.
    fn handle_puback(&mut self, now: Timestamp, _id: PublishId) {
        let now = self.timers.advance(now);
        self.drive(now);
    }

    /// The connection broke under a request: it is repeated after reconnecting.
    fn handle_publish_failed(&mut self, now: Timestamp, _id: PublishId) {
        let now = self.timers.advance(now);
        if self.finished || !matches!(self.conn, Conn::Subscribing | Conn::Up) {
            return;
        }
        self.transmits.push_back(Transmit::Disconnect);
        self.conn_lost(now, RetryReason::ConnectionLost);
        self.drive(now);
    }

    /// The connection dropped. The request in flight, if any, is abandoned and repeated after
    /// reconnecting; a response too large to receive ends the registration, since asking
    /// again brings the same response.
    fn handle_disconnected(&mut self, now: Timestamp, loss: ConnectionLoss) {
        let now = self.timers.advance(now);
        if self.finished || self.conn == Conn::Down {
            return;
        }
        if let ConnectionLoss::TooLarge { size, limit } = loss {
            self.conn = Conn::Down;
            self.finish(Err(RegistrationError::ResponseTooLarge { size, limit }));
            return;
        }
        self.conn_lost(now, RetryReason::ConnectionLost);
        self.drive(now);
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.timers.advance(now);
        self.drive(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Always `Some` until the registration finishes: the deadline is always armed.
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}
