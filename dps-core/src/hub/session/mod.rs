//! The IoT Hub session: every protocol rule of the device side of IoT Hub, with no I/O, no
//! clock and no entropy, so it runs anywhere and is tested deterministically.
//!
//! [`HubSession`] implements [`Machine`]: it is driven exactly as the DPS
//! [`Registration`](crate::dps::Registration) is (see the [crate docs](crate#the-driving-contract)),
//! plus the application's calls ([`send_telemetry`](HubSession::send_telemetry),
//! [`get_twin`](HubSession::get_twin), [`update_reported`](HubSession::update_reported),
//! [`respond_method`](HubSession::respond_method), [`accept`](HubSession::accept),
//! [`close`](HubSession::close)), after each of which the driver drains it the same way.
//!
//! Time comes in twice: `now` ([`Timestamp`], any monotonic clock) for every timer, and Unix
//! seconds in [`Connected`] to place the token renewal.
//!
//! # Rules (hub-device-protocol §3)
//! - **Subscriptions**: every feature's filter in one SUBSCRIBE after the first connect, and
//!   after every connect whose CONNACK says `session_present = false`. Connections use clean
//!   session false so the hub keeps cloud-to-device messages.
//! - **Delivery**: a cloud-to-device message, a module input, a desired patch or a method
//!   request is acknowledged (PUBACK, [`Transmit::Ack`]) only when the application accepts its
//!   [`Delivery`]; one never accepted is redelivered by the hub on a later connection. Twin
//!   responses, consumed by the session itself, are acknowledged at once.
//! - **Twin resync**: after every connect the twin is read again and [`Event::TwinResync`]
//!   reports how many desired versions were missed while offline.
//! - **Telemetry**: QoS 1, at most [`max_in_flight`](SessionConfig::max_in_flight) awaiting
//!   PUBACK; a bounded queue holds the rest while disconnected; messages in flight when the
//!   connection drops are sent again (at least once, none lost). Every accepted message ends in
//!   exactly one of [`Event::TelemetryAcked`], [`Event::TelemetryExpired`] or
//!   [`Event::TelemetryAbandoned`]. A full queue and an oversized message (256 KiB) are refused
//!   at once.
//! - **Renewal**: with an expiring token, the session drains its in-flight window and reconnects
//!   at a jittered 70–80 % of the token lifetime ([`Renewal`]).
//! - **Reconnects**: exponential backoff with jitter ([`Backoff`]); CONNACK 1, 2, 4 and 5 (bad
//!   credentials, disabled device) stop the session with [`StopReason::Refused`]; a publish
//!   without PUBACK for [`ack_timeout`](SessionConfig::ack_timeout) replaces the connection.
//! - **Requests**: twin requests carry the session's own `$rid`s and time out after
//!   [`request_timeout`](SessionConfig::request_timeout); unknown `$rid`s are ignored, never
//!   trusted. Requests and method responses interrupted by a disconnect are sent again.
//! - **The end**: [`Event::Stopped`] is always the last event.
//! - **QoS 2** cannot be expressed: `dps_core::mqtt::QoS` has no such variant.
//!
//! # Example
//! ```
//! use dps_core::Timestamp;
//! use dps_core::hub::{Event, Features, HubSession, Message, SessionConfig};
//! use dps_core::mqtt::{Connected, Machine as _, Transmit};
//!
//! let now = Timestamp::ZERO;
//! let config = SessionConfig::device("dev-1").features(Features::NONE);
//! let mut session = HubSession::new(config, now, 7);
//! assert_eq!(session.poll_transmit(), Some(Transmit::Connect { clean_session: false }));
//!
//! // The driver connected: CONNACK 0, no session, a token valid for an hour.
//! session.handle_connected(now, Connected::new(false, Some(1_700_003_600), 1_700_000_000));
//! let id = session.send_telemetry(now, Message::new("22.5").property("unit", "C"))?;
//! let Some(Transmit::Publish { id: publish, topic, .. }) = session.poll_transmit() else {
//!     unreachable!()
//! };
//! assert_eq!(topic, "devices/dev-1/messages/events/unit=C");
//!
//! // PUBACK.
//! session.handle_puback(now, publish);
//! let events: Vec<Event> = core::iter::from_fn(|| session.poll_event()).collect();
//! assert!(events.contains(&Event::TelemetryAcked { id }));
//! // The renewal is due between 42 and 48 minutes from now.
//! let renewal = session.poll_timeout().unwrap().as_duration().as_secs();
//! assert!((2520..=2880).contains(&renewal), "{renewal}");
//! # Ok::<(), dps_core::hub::SendError>(())
//! ```

mod config;
mod connection;
mod event;
mod handoff;
mod methods;
mod renewal;
mod telemetry;
mod twin;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use bytes::Bytes;

pub use config::{Backoff, Features, Heartbeat, Renewal, SessionConfig};
pub use event::{
    ConnectionState, Delivery, DisconnectReason, Event, IgnoreReason, MessageId, MethodCall,
    RequestId, SendError, StopReason, Twin, TwinError,
};
pub use twin::MAX_REPORTED_PATCH_SIZE;

pub(crate) use handoff::Handoff;

use connection::{Conn, Drain, subscriptions};
use telemetry::Queued;
use twin::TwinOp;

use crate::hub::message::ReceivedMessage;
use crate::hub::{
    TopicError, parse_c2d_topic, parse_input_topic, parse_method_request, parse_twin_topic,
};
use crate::mqtt::{
    ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine, PublishId, QoS, Transmit,
};
use crate::retry::JitterSource;
use crate::time::{Timer as TimerKind, TimerTable, Timestamp};

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

/// The session's timers. The ones that follow collections (the oldest publish awaiting PUBACK,
/// the earliest message expiry, the earliest twin deadline) are re-armed from them after every
/// input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Open the next connection.
    Reconnect,
    /// No SUBACK in time.
    Subscribe,
    /// A drain (renewal or close) gives up waiting for PUBACKs.
    Drain,
    /// The token renewal is due.
    Renew,
    /// The oldest publish waited too long for its PUBACK.
    Ack,
    /// The next heartbeat message.
    Heartbeat,
    /// The next attempt to re-read the twin.
    Resync,
    /// The earliest queued message expires.
    Expiry,
    /// The earliest twin request times out.
    TwinRequest,
}

impl TimerKind for Timer {
    const ALL: &'static [Self] = &[
        Self::Reconnect,
        Self::Subscribe,
        Self::Drain,
        Self::Renew,
        Self::Ack,
        Self::Heartbeat,
        Self::Resync,
        Self::Expiry,
        Self::TwinRequest,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One device's (or module's) session with IoT Hub, as a deterministic state machine with no
/// I/O: it decides what to send and when, keeps the offline queue, reconnects, renews tokens,
/// resubscribes and correlates requests. See the [module docs](self) for its rules.
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
    /// A drain in progress; it gives up at `Timer::Drain`.
    drain: Option<Drain>,
    closing: bool,
    failures: u32,
    next_id: u64,
    queue: VecDeque<Queued>,
    expiries: BTreeSet<(Timestamp, MessageId)>,
    in_flight: BTreeMap<PublishId, InFlight>,
    telemetry_in_flight: usize,
    control: VecDeque<Control>,
    twin: BTreeMap<RequestId, TwinOp>,
    resync_failures: u32,
    last_desired: Option<u64>,
    heartbeat_at: Option<Timestamp>,
    state: Option<ConnectionState>,
    /// Numbers the connections, so an acceptance meant for an earlier one is dropped (packet
    /// ids are per connection; the hub redelivers what was not acknowledged).
    connection: u32,
    /// Keep unacknowledged telemetry at a stop, for the next session of the device.
    keep_on_stop: bool,
    timers: TimerTable<Timer>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl HubSession {
    /// Gives back the nodes of maps that have emptied: a `BTreeMap` keeps its last node (over
    /// 1 KiB for the publishes in flight) when its last entry goes, which every idle
    /// connection would otherwise hold. A busy session refills them at most once per burst.
    pub(super) fn release_if_idle(&mut self) {
        if self.in_flight.is_empty() {
            self.in_flight = BTreeMap::new();
        }
        if self.twin.is_empty() {
            self.twin = BTreeMap::new();
        }
    }

    /// Starts a session at `now`; the first transmit is [`Transmit::Connect`] (clean session false). `seed` feeds the
    /// backoff and renewal jitter: give each device its own random seed (a fixed one in tests).
    #[must_use]
    pub fn new(config: SessionConfig, now: Timestamp, seed: u64) -> Self {
        let mut this = Self::build(config, now, seed);
        this.drive(now);
        this
    }

    fn build(config: SessionConfig, now: Timestamp, seed: u64) -> Self {
        let filters = subscriptions(&config);
        let mut timers = TimerTable::new(now);
        timers.set(Timer::Reconnect, now);
        Self {
            config,
            filters,
            jitter: JitterSource::new(seed),
            conn: Conn::Down,
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
            resync_failures: 0,
            last_desired: None,
            heartbeat_at: None,
            state: None,
            connection: 0,
            keep_on_stop: false,
            timers,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
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

    /// The application has taken the item `delivery` came with (a cloud-to-device message, a
    /// module input, a desired patch or a method request): acknowledge it to the hub. An
    /// acceptance for an earlier connection is dropped: the hub redelivers the item.
    pub fn accept(&mut self, now: Timestamp, delivery: Delivery) {
        let now = self.timers.advance(now);
        self.ack(Some(delivery));
        self.drive(now);
    }

    /// Closes the session: no new work is accepted; while connected, what is queued is still
    /// sent and acknowledged (up to [`drain_timeout`](SessionConfig::drain_timeout)), then the
    /// connection is closed and the session stops with [`StopReason::Closed`]. Whatever is left
    /// is failed.
    pub fn close(&mut self, now: Timestamp) {
        let now = self.timers.advance(now);
        if self.conn == Conn::Stopped {
            return;
        }
        self.closing = true;
        if self.conn == Conn::Up {
            self.drain = Some(Drain::Close);
            self.timers
                .set(Timer::Drain, now + self.config.drain_timeout);
        } else {
            self.stop(StopReason::Closed);
        }
        self.drive(now);
    }

    fn ack(&mut self, delivery: Option<Delivery>) {
        let live = matches!(self.conn, Conn::Subscribing | Conn::Up);
        if let Some(delivery) = delivery.filter(|d| live && d.connection == self.connection) {
            self.transmits.push_back(Transmit::Ack {
                packet_id: delivery.packet_id,
            });
        }
    }

    fn next_request(&mut self) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        id
    }

    fn set_state(&mut self, state: ConnectionState) {
        self.state = Some(state);
        self.events.push_back(Event::ConnectionState(state));
    }

    fn publish(&mut self, now: Timestamp, sent: Sent, topic: String, payload: Bytes) {
        let id = PublishId::new(self.next_id);
        self.next_id += 1;
        self.transmits.push_back(Transmit::Publish {
            id,
            topic,
            payload,
            qos: QoS::AtLeastOnce,
        });
        self.in_flight.insert(id, InFlight { sent, at: now });
    }

    /// Acts on whatever is due at `now`, then re-arms the timers.
    fn drive(&mut self, now: Timestamp) {
        self.step(now);
        self.arm();
    }

    fn step(&mut self, now: Timestamp) {
        if self.conn == Conn::Stopped {
            return;
        }
        self.expire(now);
        match self.conn {
            Conn::Down if self.timers.is_expired(Timer::Reconnect, now) => {
                self.timers.stop(Timer::Reconnect);
                self.conn = Conn::Connecting;
                self.transmits.push_back(Transmit::Connect {
                    clean_session: false,
                });
            }
            Conn::Subscribing if self.timers.is_expired(Timer::Subscribe, now) => {
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
            self.drain = Some(Drain::Renew);
            self.timers
                .set(Timer::Drain, now + self.config.drain_timeout);
        }
        if let Some(heartbeat) = self.config.heartbeat.clone() {
            if self.heartbeat_at.is_some_and(|at| now >= at) {
                self.heartbeat_at = Some(now + heartbeat.interval);
                if !self.closing && self.pending_telemetry() < self.config.queue_capacity {
                    let bag = crate::hub::MessageProperties::new()
                        .property(heartbeat.key, heartbeat.value)
                        .to_string();
                    self.enqueue(now, bag, Bytes::new(), Some(heartbeat.interval), true);
                }
            }
        }
        if self.timers.is_expired(Timer::Resync, now) {
            if self.closing {
                self.timers.stop(Timer::Resync);
            } else {
                self.start_resync(now);
            }
        }
        if self.drain != Some(Drain::Renew) {
            self.pump(now);
        }
        match self.drain {
            Some(Drain::Renew)
                if self.in_flight.is_empty() || self.timers.is_expired(Timer::Drain, now) =>
            {
                self.renew();
            }
            Some(Drain::Close)
                if self.timers.is_expired(Timer::Drain, now)
                    || (self.in_flight.is_empty()
                        && self.queue.is_empty()
                        && self.control.is_empty()) =>
            {
                self.stop(StopReason::Closed);
            }
            _ => {}
        }
    }

    /// Re-arms the timers that follow the state rather than being set by a transition: the
    /// renewal and the heartbeat (suspended while not connected, the renewal also while a drain
    /// runs), and the ones that follow collections (the oldest publish awaiting PUBACK, the
    /// earliest message expiry, the earliest twin deadline). `poll_timeout` is the table's
    /// minimum.
    fn arm(&mut self) {
        if self.conn == Conn::Stopped {
            self.timers.stop_all();
            return;
        }
        let up = self.conn == Conn::Up;
        let renew = self.renew_at.filter(|_| up && self.drain.is_none());
        self.timers.set_or_stop(Timer::Renew, renew);
        let heartbeat = self
            .heartbeat_at
            .filter(|_| up && self.config.heartbeat.is_some());
        self.timers.set_or_stop(Timer::Heartbeat, heartbeat);
        let ack = self
            .in_flight
            .first_key_value()
            .map(|(_, f)| f.at + self.config.ack_timeout)
            .filter(|_| up);
        self.timers.set_or_stop(Timer::Ack, ack);
        let expiry = self.expiries.first().map(|(at, _)| *at);
        self.timers.set_or_stop(Timer::Expiry, expiry);
        let twin = self.twin.values().map(|op| op.deadline).min();
        self.timers.set_or_stop(Timer::TwinRequest, twin);
    }

    fn on_message(&mut self, now: Timestamp, publish: IncomingPublish) {
        let delivery = publish.packet_id.map(|packet_id| Delivery {
            connection: self.connection,
            packet_id,
        });
        let (topic, payload) = (publish.topic.as_str(), publish.payload);
        if self.conn == Conn::Stopped {
            // Nothing follows the final event; the hub redelivers on another session.
            return;
        }
        match parse_twin_topic(topic) {
            Ok(message) => return self.on_twin(now, topic, message, &payload, delivery),
            Err(TopicError::NoMatch) => {}
            Err(_) => return self.ignore(topic, IgnoreReason::MalformedTopic, delivery),
        }
        match parse_method_request(topic) {
            Ok(request) => return self.on_method(&request, payload, delivery),
            Err(TopicError::NoMatch) => {}
            Err(_) => return self.ignore(topic, IgnoreReason::MalformedTopic, delivery),
        }
        match parse_c2d_topic(topic) {
            Ok(c2d) => {
                if c2d.device_id != self.config.device_id || self.config.is_module() {
                    return self.ignore(topic, IgnoreReason::OtherIdentity, delivery);
                }
                let message = ReceivedMessage::decode(c2d.properties, payload, None);
                self.events.push_back(Event::C2d { message, delivery });
                return;
            }
            Err(TopicError::NoMatch) => {}
            Err(_) => return self.ignore(topic, IgnoreReason::MalformedTopic, delivery),
        }
        match parse_input_topic(topic) {
            Ok(input) => {
                if input.device_id != self.config.device_id
                    || Some(input.module_id) != self.config.module_id.as_deref()
                {
                    return self.ignore(topic, IgnoreReason::OtherIdentity, delivery);
                }
                let message = ReceivedMessage::decode(
                    input.properties,
                    payload,
                    Some(input.input_name.to_string()),
                );
                self.events.push_back(Event::Input { message, delivery });
            }
            Err(TopicError::NoMatch) => self.ignore(topic, IgnoreReason::UnknownTopic, delivery),
            Err(_) => self.ignore(topic, IgnoreReason::MalformedTopic, delivery),
        }
    }

    /// Reports an ignored publish and acknowledges it: redelivering it would change nothing.
    fn ignore(&mut self, topic: &str, reason: IgnoreReason, delivery: Option<Delivery>) {
        self.ack(delivery);
        self.events.push_back(Event::Ignored {
            topic: topic.to_string(),
            reason,
        });
    }
}

impl Machine for HubSession {
    type Event = Event;

    /// The connection is up: `connected` carries the CONNACK session-present flag and, for an
    /// expiring token, its Unix expiry and the wall clock, which together place the renewal.
    fn handle_connected(&mut self, now: Timestamp, connected: Connected) {
        let now = self.timers.advance(now);
        if self.conn != Conn::Connecting {
            return;
        }
        self.connection = self.connection.wrapping_add(1);
        let session_present = connected.session_present;
        self.token_expires_at = None;
        self.renew_at = None;
        if let Some(expiry) = connected.credentials_expire_at {
            let remaining = Duration::from_secs(expiry.saturating_sub(connected.unix_now));
            self.token_expires_at = Some(now + remaining);
            self.renew_at = Some(now + self.renewal_delay(remaining));
        }
        if !self.filters.is_empty() && (!self.subscribed_once || !session_present) {
            self.conn = Conn::Subscribing;
            self.timers
                .set(Timer::Subscribe, now + self.config.subscribe_timeout);
            self.transmits.push_back(Transmit::Subscribe {
                filters: self.filters.clone(),
            });
        } else {
            self.go_up(now);
        }
        self.drive(now);
    }

    /// CONNACK 3 and network failures are retried; other refusals and unrecoverable failures
    /// stop the session.
    fn handle_connect_failed(&mut self, now: Timestamp, failure: ConnectFailure) {
        let now = self.timers.advance(now);
        if self.conn != Conn::Connecting {
            return;
        }
        self.go_down(now);
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

    /// SUBACK: messages flow. A refused filter drops the connection
    /// ([`DisconnectReason::SubscribeFailed`]).
    fn handle_subscribed(&mut self, now: Timestamp, granted: bool) {
        let now = self.timers.advance(now);
        if !matches!(self.conn, Conn::Subscribing) {
            return;
        }
        if granted {
            self.subscribed_once = true;
            self.go_up(now);
        } else {
            self.transmits.push_back(Transmit::Disconnect);
            self.lost(now, DisconnectReason::SubscribeFailed);
        }
        self.drive(now);
    }

    fn handle_publish(&mut self, now: Timestamp, publish: IncomingPublish) {
        let now = self.timers.advance(now);
        self.on_message(now, publish);
        self.drive(now);
    }

    /// The hub acknowledged the publish `id`. Unknown ids (from an earlier connection) are
    /// ignored.
    fn handle_puback(&mut self, now: Timestamp, id: PublishId) {
        let now = self.timers.advance(now);
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
            self.release_if_idle();
        }
        self.drive(now);
    }

    /// The publish `id` failed (the connection broke under it). Its content is queued again;
    /// the connection counts as lost. Unknown ids are ignored.
    fn handle_publish_failed(&mut self, now: Timestamp, id: PublishId) {
        let now = self.timers.advance(now);
        let Some(failed) = self.in_flight.remove(&id) else {
            return;
        };
        self.requeue(failed.sent);
        if matches!(self.conn, Conn::Up | Conn::Subscribing) {
            self.transmits.push_back(Transmit::Disconnect);
            self.lost(now, DisconnectReason::Network);
        }
        self.drive(now);
    }

    /// The established connection ended (or the attempt in progress was dropped).
    fn handle_disconnected(&mut self, now: Timestamp, loss: ConnectionLoss) {
        let now = self.timers.advance(now);
        match self.conn {
            Conn::Up | Conn::Subscribing | Conn::Connecting => {}
            Conn::Down | Conn::Stopped => return,
        }
        let expired = self.token_expires_at.is_some_and(|at| now >= at);
        let reason = match loss {
            _ if expired => DisconnectReason::TokenExpired,
            // An oversized message is redelivered by the hub: a protocol failure, retried as
            // one (the hub itself never sends more than 256 KiB).
            ConnectionLoss::Network | ConnectionLoss::TooLarge { .. } => DisconnectReason::Network,
            ConnectionLoss::ClosedByService => DisconnectReason::ClosedByService,
        };
        self.lost(now, reason);
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

    /// `None` once stopped, and while a connect attempt is out with nothing else timed.
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    fn is_finished(&self) -> bool {
        self.conn == Conn::Stopped
    }
}
