//! The sans-IO IoT Hub session: every protocol rule of the client, with no I/O, no clock and no
//! entropy, so it runs anywhere and is tested deterministically.
//!
//! [`HubSession`] follows the same contract as `dps_core`'s registration machine:
//! 1. Create it with [`HubSession::new`]`(config, now, seed)`.
//! 2. After creating it and after **every** call that takes `now` (the `handle_*` inputs and the
//!    application actions), drain [`poll_transmit`](HubSession::poll_transmit) until `None`,
//!    performing each [`Transmit`] in order and reporting its outcome with the matching
//!    `handle_*` call, and drain [`poll_event`](HubSession::poll_event) until `None`.
//! 3. Then wait for whichever comes first: a received PUBLISH
//!    ([`handle_message`](HubSession::handle_message)), a PUBACK
//!    ([`handle_published`](HubSession::handle_published)), a lost connection
//!    ([`handle_disconnected`](HubSession::handle_disconnected)), an application action, or the
//!    instant [`poll_timeout`](HubSession::poll_timeout) returned
//!    ([`handle_timeout`](HubSession::handle_timeout)).
//!
//! Time comes in twice: `now` ([`Timestamp`](dps_core::Timestamp), any monotonic clock) for
//! every timer, and Unix seconds in [`handle_connected`](HubSession::handle_connected) to place
//! the token renewal.
//!
//! # Rules
//! - **Subscriptions**: every feature's filter in one SUBSCRIBE after the first connect, and
//!   after every connect whose CONNACK says `session_present = false`. Connections use clean
//!   session false so the hub keeps cloud-to-device messages.
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
//! - **QoS 2** cannot be expressed: [`QoS`] has no such variant.
//!
//! # Example
//! ```
//! use dps_core::Timestamp;
//! use hub_client::Message;
//! use hub_client::proto::{Event, Features, HubSession, SessionConfig, Transmit};
//!
//! let now = Timestamp::ZERO;
//! let config = SessionConfig::device("dev-1").features(Features::NONE);
//! let mut session = HubSession::new(config, now, 7);
//! assert_eq!(session.poll_transmit(), Some(Transmit::Connect));
//!
//! // The driver connected: CONNACK 0, no session, a token valid for an hour.
//! session.handle_connected(now, false, Some(1_700_003_600), 1_700_000_000);
//! let id = session.send_telemetry(now, Message::new("22.5").property("unit", "C"))?;
//! let Some(Transmit::Publish { id: publish, topic, .. }) = session.poll_transmit() else {
//!     unreachable!()
//! };
//! assert_eq!(topic, "devices/dev-1/messages/events/unit=C");
//!
//! // PUBACK.
//! session.handle_published(now, publish);
//! let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
//! assert!(events.contains(&Event::TelemetryAcked { id }));
//! // The renewal is due between 42 and 48 minutes from now.
//! let renewal = session.poll_timeout().unwrap().as_duration().as_secs();
//! assert!((2520..=2880).contains(&renewal), "{renewal}");
//! # Ok::<(), hub_client::SendError>(())
//! ```

mod config;
mod event;
mod session;

pub use config::{Backoff, Features, Heartbeat, Renewal, SessionConfig};
pub use event::{
    ConnectFailure, ConnectionLoss, ConnectionState, DisconnectReason, Event, IgnoreReason,
    MessageId, MethodRequest, PublishId, QoS, RequestId, SendError, StopReason, Transmit, Twin,
    TwinError,
};
pub use session::{HubSession, MAX_REPORTED_PATCH_SIZE};
