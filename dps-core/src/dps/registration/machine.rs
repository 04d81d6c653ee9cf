//! The registration state machine.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::config::RegistrationConfig;
use super::event::{ConnectFailure, Event, IgnoreReason, RequestKind, RetryReason, Transmit};
use super::outcome::{Assignment, Outcome, RegistrationError};
use crate::dps::model::{ModelError, RegistrationOperationStatus, RegistrationStatus};
use crate::dps::response::{Response, ResponseBody, ResponseError};
use crate::dps::topic::{QueryTopic, RegisterTopic, ResponseTopic, SUBSCRIBE_TOPIC, TopicError};
use crate::retry::{JitterSource, calculate_retry_delay, is_retriable};
use crate::time::Timestamp;

/// How many answered or abandoned `$rid`s are remembered, to tell late duplicates from strangers.
const STALE_RIDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Conn {
    /// No connection; open one at `reconnect_at`.
    Down { reconnect_at: Timestamp },
    /// `Transmit::Connect` is out; waiting for the driver's report.
    Connecting,
    /// `Transmit::Subscribe` is out; waiting for SUBACK until `timeout_at`.
    Subscribing { timeout_at: Timestamp },
    /// Connected and subscribed.
    Up,
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
    timeout_at: Timestamp,
}

/// One device registration, as a deterministic state machine with no I/O.
///
/// See the [module docs](super) for the driving contract and a complete driver.
#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    request_body: Vec<u8>,
    jitter: JitterSource,
    deadline: Timestamp,
    conn: Conn,
    step: Step,
    /// Earliest time the next request may go out.
    send_at: Timestamp,
    in_flight: Option<InFlight>,
    next_rid: u64,
    stale_rids: VecDeque<u64>,
    /// Consecutive failures, for the exponential backoff; reset by any useful answer.
    failures: u32,
    last_problem: Option<RetryReason>,
    last_retry_after: Option<Duration>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    outcome: Option<Outcome>,
    finished: bool,
}

impl Registration {
    /// Starts a registration at `now`. `seed` feeds the backoff jitter: give each device its own
    /// random seed (a fixed one in tests).
    ///
    /// The first transmit is [`Transmit::Connect`].
    #[must_use]
    pub fn new(config: RegistrationConfig, now: Timestamp, seed: u64) -> Self {
        let request_body = config.request.to_json().into_bytes();
        let deadline = now + config.timing.deadline;
        let mut this = Self {
            config,
            request_body,
            jitter: JitterSource::new(seed),
            deadline,
            conn: Conn::Down { reconnect_at: now },
            step: Step::Register,
            send_at: now,
            in_flight: None,
            next_rid: 1,
            stale_rids: VecDeque::with_capacity(STALE_RIDS),
            failures: 0,
            last_problem: None,
            last_retry_after: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            outcome: None,
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

    /// The connection is up (CONNACK accepted). Call after a [`Transmit::Connect`].
    pub fn handle_connected(&mut self, now: Timestamp) {
        if self.finished || self.conn != Conn::Connecting {
            return;
        }
        self.conn = Conn::Subscribing {
            timeout_at: now + self.config.timing.request_timeout,
        };
        self.transmits.push_back(Transmit::Subscribe {
            topic_filter: SUBSCRIBE_TOPIC,
        });
        self.drive(now);
    }

    /// The connection attempt failed. Credentials refusals end the registration; anything else
    /// is retried with backoff until the deadline.
    pub fn handle_connect_failed(&mut self, now: Timestamp, failure: ConnectFailure) {
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
            ConnectFailure::Refused { .. } | ConnectFailure::Network => {
                self.conn_lost(now, RetryReason::ConnectFailed(failure));
            }
        }
        self.drive(now);
    }

    /// SUBACK arrived for [`Transmit::Subscribe`].
    pub fn handle_subscribed(&mut self, now: Timestamp) {
        if self.finished || !matches!(self.conn, Conn::Subscribing { .. }) {
            return;
        }
        self.conn = Conn::Up;
        self.drive(now);
    }

    /// The connection dropped (or a subscription was refused). The request in flight, if any,
    /// is abandoned and repeated after reconnecting.
    pub fn handle_disconnected(&mut self, now: Timestamp) {
        if self.finished || matches!(self.conn, Conn::Down { .. }) {
            return;
        }
        self.conn_lost(now, RetryReason::ConnectionLost);
        self.drive(now);
    }

    /// A PUBLISH arrived. Responses to the request in flight advance the registration; anything
    /// else is reported as [`Event::Ignored`] and changes nothing.
    pub fn handle_publish(&mut self, now: Timestamp, topic: &str, payload: &[u8]) {
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
        self.drive(now);
    }

    /// Time passed. Call when [`poll_timeout`](Self::poll_timeout) is reached; extra calls are
    /// harmless.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.drive(now);
    }

    /// The next action for the driver, if any. Drain until `None` after every `handle_*` call.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any. Drain until `None` after every `handle_*` call.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) at the latest, or `None` once the
    /// registration has finished. May change after any `handle_*` call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.finished {
            return None;
        }
        let next = match (&self.conn, self.in_flight) {
            (Conn::Down { reconnect_at }, _) => Some(*reconnect_at),
            (Conn::Connecting, _) => None,
            (Conn::Subscribing { timeout_at }, _) => Some(*timeout_at),
            (Conn::Up, Some(f)) => Some(f.timeout_at),
            (Conn::Up, None) => Some(self.send_at),
        };
        Some(next.map_or(self.deadline, |t| t.min(self.deadline)))
    }

    /// True once the registration has ended (an outcome is, or was, available).
    #[must_use]
    pub const fn is_finished(&self) -> bool {
        self.finished
    }

    /// The result, once [`Event::Finished`] was reported. Returns it only once.
    pub fn take_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
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
                state: state.cloned(),
            })),
            RegistrationStatus::Unassigned => self.finish(Err(RegistrationError::Unassigned {
                state: state.cloned(),
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
        if at > self.deadline {
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
        if at > self.deadline {
            self.finish(Err(self.deadline_error()));
            return;
        }
        // `send_at` is kept: an abandoned request was due already and goes out again as soon as
        // the connection is back, while a pending `retry-after` is still honoured.
        self.conn = Conn::Down { reconnect_at: at };
        self.events.push_back(Event::Retrying {
            reason,
            attempt: self.failures,
            retry_in: wait,
        });
    }

    fn drive(&mut self, now: Timestamp) {
        if self.finished {
            return;
        }
        if now >= self.deadline {
            self.finish(Err(self.deadline_error()));
            return;
        }
        match self.conn {
            Conn::Down { reconnect_at } if now >= reconnect_at => {
                self.conn = Conn::Connecting;
                self.transmits.push_back(Transmit::Connect);
            }
            Conn::Subscribing { timeout_at } if now >= timeout_at => {
                self.transmits.push_back(Transmit::Disconnect);
                self.conn_lost(now, RetryReason::SubscribeTimeout);
            }
            Conn::Up => {
                if let Some(f) = self.in_flight {
                    if now >= f.timeout_at {
                        self.in_flight = None;
                        self.retire(f.rid);
                        self.last_retry_after = None;
                        self.retry(now, RetryReason::RequestTimeout);
                    }
                }
                if !self.finished && self.in_flight.is_none() && now >= self.send_at {
                    self.send(now);
                }
            }
            _ => {}
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
                Vec::new(),
            ),
        };
        self.transmits
            .push_back(Transmit::Publish { topic, payload });
        self.in_flight = Some(InFlight {
            rid,
            kind,
            timeout_at: now + self.config.timing.request_timeout,
        });
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
        if !matches!(self.conn, Conn::Down { .. }) {
            self.transmits.push_back(Transmit::Disconnect);
        }
        self.outcome = Some(outcome);
        self.events.push_back(Event::Finished);
    }
}
