//! # dps-core
//!
//! The protocol core of the Azure IoT Hub Device Provisioning Service (DPS) and IoT Hub device
//! protocols over MQTT, with no I/O.
//!
//! `dps-core` performs no I/O, spawns nothing, never reads a clock and never gathers entropy.
//! Bytes come in and go out as values, time comes in as an argument ([`Timestamp`] for timers,
//! Unix seconds for token expiry), and randomness comes in as a seed. Every protocol rule can
//! therefore be tested deterministically, and the same code runs on a server, a gateway, or a
//! microcontroller (`#![no_std]` with `alloc`; the default `std` feature only adds std
//! conveniences, build with `default-features = false` for bare metal).
//!
//! ## Which crate do I need?
//! - A Rust device or gateway on tokio: the async clients and transports built on this crate,
//!   with `dps-auth` for keys, SAS tokens and X.509 identities.
//! - Your own network stack (an embedded gateway): this crate, plus a signer for the SAS token
//!   (`dps-auth`'s `Signer`, or your secure element).
//!
//! ## What is in here
//! | module | what |
//! |---|---|
//! | [`mqtt`] | the vocabulary both machines speak ([`Transmit`](mqtt::Transmit), the inputs) and the [`Machine`](mqtt::Machine) trait |
//! | [`dps`] | DPS topics, CONNECT fields, JSON bodies, and the [`Registration`](dps::Registration) state machine |
//! | [`hub`] | IoT Hub topics, property bags, CONNECT fields |
//! | [`sas`] | SAS token text: resources, string-to-sign, token formatting and parsing (signing is yours) |
//! | [`ids`] | registration, device and module id rules |
//! | [`retry`] | status classification, the backoff formula, a seeded jitter source |
//! | [`encoding`], [`query`] | percent-encoding and `k=v&..` lists as the services use them |
//!
//! Stateless codecs mirror the Embedded C SDK (`az_iot_provisioning_client`): they format topics
//! into any buffer (they are [`Display`](core::fmt::Display) types) and parse received topics by
//! borrowing from them, allocating nothing.
//!
//! ## The driving contract
//! Both machines, the DPS [`Registration`](dps::Registration) and the IoT Hub
//! [`HubSession`](hub::HubSession), implement one trait, [`mqtt::Machine`], and follow the
//! `handle_*` / `poll_*` shape of quinn-proto. A reader who can drive one can drive the other,
//! and one driver (`dps-runtime`'s, or the one below) runs both:
//! 1. Create the machine with `new(config, now, seed)`; `seed` feeds its jitter (a random one
//!    per device, a fixed one in tests).
//! 2. After creating it and after **every** input, drain
//!    [`poll_transmit`](mqtt::Machine::poll_transmit) until `None`, performing each
//!    [`Transmit`](mqtt::Transmit) on the connection in order and reporting its result with the
//!    matching input, and drain [`poll_event`](mqtt::Machine::poll_event) until `None`. Inputs are
//!    the `handle_*` calls (the same verbs on both machines: `handle_connected`,
//!    `handle_connect_failed`, `handle_subscribed`, `handle_publish`, `handle_puback`,
//!    `handle_publish_failed`, `handle_disconnected`, `handle_timeout`) and the application's
//!    own calls that take `now` (sending telemetry, accepting a delivery, closing).
//! 3. Then wait for whichever comes first: a received PUBLISH, a PUBACK, a lost connection, an
//!    application call, or the instant [`poll_timeout`](mqtt::Machine::poll_timeout) returned
//!    ([`handle_timeout`](mqtt::Machine::handle_timeout); calling it early or twice is harmless).
//!    `poll_timeout` only moves after an input, never with time alone; it is `None` once the
//!    machine has finished, or while nothing at all is scheduled (then wait for an input).
//! 4. The last event carries the outcome: `Event::Finished(Outcome)` for the registration,
//!    `Event::Stopped(StopReason)` for the hub session; [`is_finished`](mqtt::Machine::is_finished)
//!    is then true and nothing more is transmitted after the final `Disconnect`.
//!
//! **Time** never goes backwards: a `now` earlier than one a machine already saw counts as that
//! one. Each machine keeps its timers in one [`TimerTable`](time::TimerTable).
//!
//! **Acknowledgements** are the machine's: the transport never PUBACKs an incoming QoS 1
//! PUBLISH on its own, the machine emits [`Transmit::Ack`](mqtt::Transmit::Ack). The
//! registration acknowledges its responses at once; the hub session acknowledges a
//! cloud-to-device message, a module input, a desired patch or a method request only when the
//! application accepted it ([`HubSession::accept`](hub::HubSession::accept) with the event's
//! [`Delivery`](hub::Delivery)), so nothing the hub sent is acknowledged before someone has it.
//!
//! The machine decides *what* to send and *when*; the driver only moves bytes and tells time.
//!
//! ## A complete synchronous driver
//! `Link` stands for your MQTT connection (TLS, CONNECT with a fresh SAS token each time,
//! QoS 1). The generic `run` below is all the glue there is, for either machine; the doc test
//! runs the registration against a tiny in-memory DPS, then the hub session against a tiny
//! in-memory hub.
//!
//! ```
//! use core::time::Duration;
//! use dps_core::Timestamp;
//! use dps_core::dps::registration::{Event, Registration, RegistrationConfig};
//! use dps_core::mqtt::{
//!     ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine, Transmit,
//! };
//!
//! /// What the driver needs from an MQTT connection.
//! trait Link {
//!     fn now(&self) -> Timestamp;
//!     fn connect(&mut self, clean_session: bool) -> Result<Connected, ConnectFailure>;
//!     fn subscribe(&mut self, filters: &[String]) -> bool;
//!     /// Publishes at QoS 1; `false` when the connection broke.
//!     fn publish(&mut self, topic: &str, payload: &[u8]) -> bool;
//!     fn ack(&mut self, packet_id: u16);
//!     fn disconnect(&mut self);
//!     /// Waits up to `timeout` for a PUBLISH.
//!     fn receive(&mut self, timeout: Duration) -> Result<Option<IncomingPublish>, ConnectionLoss>;
//! }
//!
//! /// Runs `machine` until it finishes, handing each event to `on_event` (which may call the
//! /// machine back, for example to accept a delivery).
//! fn run<M: Machine>(
//!     machine: &mut M,
//!     link: &mut impl Link,
//!     mut on_event: impl FnMut(&mut M, Timestamp, M::Event),
//! ) {
//!     loop {
//!         let mut busy = false;
//!         while let Some(transmit) = machine.poll_transmit() {
//!             busy = true;
//!             match transmit {
//!                 Transmit::Connect { clean_session } => match link.connect(clean_session) {
//!                     Ok(connected) => machine.handle_connected(link.now(), connected),
//!                     Err(failure) => machine.handle_connect_failed(link.now(), failure),
//!                 },
//!                 Transmit::Subscribe { filters } => {
//!                     let granted = link.subscribe(&filters);
//!                     machine.handle_subscribed(link.now(), granted);
//!                 }
//!                 Transmit::Publish { id, topic, payload, .. } => {
//!                     match link.publish(&topic, &payload) {
//!                         true => machine.handle_puback(link.now(), id),
//!                         false => machine.handle_publish_failed(link.now(), id),
//!                     }
//!                 }
//!                 Transmit::Ack { packet_id } => link.ack(packet_id),
//!                 Transmit::Disconnect => link.disconnect(),
//!                 _ => {}
//!             }
//!         }
//!         while let Some(event) = machine.poll_event() {
//!             busy = true;
//!             on_event(machine, link.now(), event);
//!         }
//!         if busy {
//!             continue; // an input or a callback may have queued more
//!         }
//!         if machine.is_finished() {
//!             return;
//!         }
//!         let wait = machine
//!             .poll_timeout()
//!             .map_or(Duration::MAX, |at| at.saturating_duration_since(link.now()));
//!         match link.receive(wait) {
//!             Ok(Some(publish)) => machine.handle_publish(link.now(), publish),
//!             Ok(None) => machine.handle_timeout(link.now()),
//!             Err(loss) => machine.handle_disconnected(link.now(), loss),
//!         }
//!     }
//! }
//!
//! // A stand-in DPS: answers "assigning" with retry-after=1, then "assigned".
//! struct FakeDps { now: Timestamp, inbox: Vec<IncomingPublish>, requests: u32, acks: u32 }
//! impl Link for FakeDps {
//!     fn now(&self) -> Timestamp { self.now }
//!     fn connect(&mut self, _: bool) -> Result<Connected, ConnectFailure> {
//!         Ok(Connected::new(false, None, 1_700_000_000))
//!     }
//!     fn subscribe(&mut self, _: &[String]) -> bool { true }
//!     fn ack(&mut self, _: u16) { self.acks += 1 }
//!     fn disconnect(&mut self) {}
//!     fn publish(&mut self, topic: &str, _payload: &[u8]) -> bool {
//!         let rid = topic.split("$rid=").nth(1).unwrap().split('&').next().unwrap();
//!         self.requests += 1;
//!         let (status, body) = if self.requests == 1 {
//!             ("202", r#"{"operationId":"op-1","status":"assigning"}"#.to_string())
//!         } else {
//!             ("200", r#"{"operationId":"op-1","status":"assigned","registrationState":
//!                 {"assignedHub":"my-hub.azure-devices.net","deviceId":"my-device"}}"#.to_string())
//!         };
//!         let topic = format!("$dps/registrations/res/{status}/?$rid={rid}&retry-after=1");
//!         self.inbox.push(IncomingPublish::new(topic, body, Some(self.requests as u16)));
//!         true
//!     }
//!     fn receive(&mut self, timeout: Duration) -> Result<Option<IncomingPublish>, ConnectionLoss> {
//!         if self.inbox.is_empty() {
//!             self.now += timeout; // nothing arrives: the wait runs out
//!             return Ok(None);
//!         }
//!         Ok(Some(self.inbox.remove(0)))
//!     }
//! }
//!
//! let mut link = FakeDps { now: Timestamp::ZERO, inbox: Vec::new(), requests: 0, acks: 0 };
//! let mut registration = Registration::new(RegistrationConfig::new("my-device"), link.now(), 7);
//! let mut outcome = None;
//! run(&mut registration, &mut link, |_, _, event| {
//!     if let Event::Finished(result) = event {
//!         outcome = Some(result);
//!     }
//! });
//! let assignment = outcome.unwrap().unwrap();
//! assert_eq!(assignment.assigned_hub(), "my-hub.azure-devices.net");
//! assert_eq!(link.now(), Timestamp::from_millis(1000)); // one poll, after retry-after
//! assert_eq!(link.acks, 2); // both responses acknowledged
//!
//! // The same `run` drives the hub session. A stand-in hub acknowledges every publish and
//! // pushes one cloud-to-device message once the device subscribed.
//! use dps_core::hub::{Event as HubEvent, Features, HubSession, Message, SessionConfig};
//!
//! struct FakeHub { now: Timestamp, inbox: Vec<IncomingPublish>, published: Vec<String>, acks: Vec<u16> }
//! impl Link for FakeHub {
//!     fn now(&self) -> Timestamp { self.now }
//!     fn connect(&mut self, clean_session: bool) -> Result<Connected, ConnectFailure> {
//!         assert!(!clean_session); // the hub keeps messages for a persistent session
//!         Ok(Connected::new(false, None, 1_700_000_000))
//!     }
//!     fn subscribe(&mut self, _: &[String]) -> bool {
//!         let c2d = "devices/dev-1/messages/devicebound/a=1";
//!         self.inbox.push(IncomingPublish::new(c2d, "hello", Some(7)));
//!         true
//!     }
//!     fn publish(&mut self, topic: &str, _: &[u8]) -> bool { self.published.push(topic.into()); true }
//!     fn ack(&mut self, packet_id: u16) { self.acks.push(packet_id) }
//!     fn disconnect(&mut self) {}
//!     fn receive(&mut self, timeout: Duration) -> Result<Option<IncomingPublish>, ConnectionLoss> {
//!         if self.inbox.is_empty() {
//!             self.now += timeout;
//!             return Ok(None);
//!         }
//!         Ok(Some(self.inbox.remove(0)))
//!     }
//! }
//!
//! let mut hub = FakeHub { now: Timestamp::ZERO, inbox: Vec::new(), published: Vec::new(), acks: Vec::new() };
//! let features = Features::NONE.c2d(true);
//! let mut session = HubSession::new(SessionConfig::device("dev-1").features(features), hub.now(), 7);
//! let mut received = Vec::new();
//! run(&mut session, &mut hub, |session, now, event| {
//!     if let HubEvent::C2d { message, delivery } = event {
//!         received.push(message.payload_str().map(String::from));
//!         // The application has it: now (and only now) it is acknowledged to the hub.
//!         if let Some(delivery) = delivery {
//!             session.accept(now, delivery);
//!         }
//!         session.send_telemetry(now, Message::new("thanks")).unwrap();
//!         session.close(now); // sends what is queued, then stops
//!     }
//! });
//! assert_eq!(received, [Some("hello".to_string())]);
//! assert_eq!(hub.acks, [7]);
//! assert_eq!(hub.published, ["devices/dev-1/messages/events/"]);
//! assert!(session.is_finished());
//! ```
#![no_std]
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod device;
pub mod dps;
pub mod encoding;
pub mod hub;
pub mod ids;
pub mod mqtt;
pub mod query;
pub mod retry;
pub mod sas;
pub mod time;

pub use time::Timestamp;
