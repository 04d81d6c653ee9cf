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
//! [`Registration`](dps::Registration) follows the `handle_*` / `poll_*` shape of quinn-proto:
//! 1. Create it with [`Registration::new`](dps::Registration::new)`(config, now, seed)`.
//! 2. After creating it and after **every** `handle_*` call, drain
//!    [`poll_transmit`](dps::Registration::poll_transmit) until `None`, performing each
//!    [`Transmit`](dps::registration::Transmit) on the connection in order and reporting its result
//!    with the matching `handle_*` call; and drain [`poll_event`](dps::Registration::poll_event)
//!    until `None`.
//! 3. Then wait for whichever comes first: a received PUBLISH
//!    ([`handle_publish`](dps::Registration::handle_publish)), a connection loss
//!    ([`handle_disconnected`](dps::Registration::handle_disconnected)), or the instant
//!    [`poll_timeout`](dps::Registration::poll_timeout) returned
//!    ([`handle_timeout`](dps::Registration::handle_timeout); calling it early or twice is harmless).
//! 4. When [`Event::Finished`](dps::registration::Event::Finished) comes out, take the result with
//!    [`take_outcome`](dps::Registration::take_outcome).
//!
//! The machine decides *what* to send and *when*; the driver only moves bytes and tells time.
//!
//! ## A complete synchronous driver
//! `Link` stands for your MQTT connection (TLS, CONNECT with a fresh SAS token each time,
//! QoS 1). The driver below is all the glue there is; the doc test runs it against a tiny
//! in-memory service.
//!
//! ```
//! use core::time::Duration;
//! use dps_core::Timestamp;
//! use dps_core::dps::registration::{ConnectFailure, Event, Outcome, Registration, RegistrationConfig, Transmit};
//!
//! /// What the driver needs from an MQTT connection.
//! trait Link {
//!     fn now(&self) -> Timestamp;
//!     fn connect(&mut self) -> Result<(), ConnectFailure>;
//!     fn subscribe(&mut self, filter: &str) -> bool;
//!     fn publish(&mut self, topic: &str, payload: &[u8]);
//!     fn disconnect(&mut self);
//!     /// Waits up to `timeout` for a PUBLISH; `Err(())` when the connection dropped.
//!     fn receive(&mut self, timeout: Duration) -> Result<Option<(String, Vec<u8>)>, ()>;
//! }
//!
//! fn register(link: &mut impl Link, config: RegistrationConfig, seed: u64) -> Outcome {
//!     let mut reg = Registration::new(config, link.now(), seed);
//!     loop {
//!         while let Some(transmit) = reg.poll_transmit() {
//!             match transmit {
//!                 Transmit::Connect => match link.connect() {
//!                     Ok(()) => reg.handle_connected(link.now()),
//!                     Err(failure) => reg.handle_connect_failed(link.now(), failure),
//!                 },
//!                 Transmit::Subscribe { topic_filter } => match link.subscribe(topic_filter) {
//!                     true => reg.handle_subscribed(link.now()),
//!                     false => reg.handle_disconnected(link.now()),
//!                 },
//!                 Transmit::Publish { topic, payload } => link.publish(&topic, &payload),
//!                 Transmit::Disconnect => link.disconnect(),
//!             }
//!         }
//!         while let Some(event) = reg.poll_event() {
//!             if event == Event::Finished {
//!                 return reg.take_outcome().expect("finished");
//!             }
//!             // Log the rest: retries, ignored messages, ...
//!         }
//!         let Some(deadline) = reg.poll_timeout() else { unreachable!() };
//!         let wait = deadline.saturating_duration_since(link.now());
//!         match link.receive(wait) {
//!             Ok(Some((topic, payload))) => reg.handle_publish(link.now(), &topic, &payload),
//!             Ok(None) => reg.handle_timeout(link.now()),
//!             Err(()) => reg.handle_disconnected(link.now()),
//!         }
//!     }
//! }
//!
//! // A stand-in service: answers "assigning" with retry-after=1, then "assigned".
//! struct FakeDps { now: Timestamp, inbox: Vec<(String, Vec<u8>)>, requests: u32 }
//! impl Link for FakeDps {
//!     fn now(&self) -> Timestamp { self.now }
//!     fn connect(&mut self) -> Result<(), ConnectFailure> { Ok(()) }
//!     fn subscribe(&mut self, _: &str) -> bool { true }
//!     fn disconnect(&mut self) {}
//!     fn publish(&mut self, topic: &str, _payload: &[u8]) {
//!         let rid = topic.split("$rid=").nth(1).unwrap().split('&').next().unwrap();
//!         self.requests += 1;
//!         let (status, body) = if self.requests == 1 {
//!             ("202", r#"{"operationId":"op-1","status":"assigning"}"#.to_string())
//!         } else {
//!             ("200", r#"{"operationId":"op-1","status":"assigned","registrationState":
//!                 {"assignedHub":"my-hub.azure-devices.net","deviceId":"my-device"}}"#.to_string())
//!         };
//!         let topic = format!("$dps/registrations/res/{status}/?$rid={rid}&retry-after=1");
//!         self.inbox.push((topic, body.into_bytes()));
//!     }
//!     fn receive(&mut self, timeout: Duration) -> Result<Option<(String, Vec<u8>)>, ()> {
//!         if self.inbox.is_empty() {
//!             self.now += timeout; // nothing arrives: the wait runs out
//!             return Ok(None);
//!         }
//!         Ok(Some(self.inbox.remove(0)))
//!     }
//! }
//!
//! let mut link = FakeDps { now: Timestamp::ZERO, inbox: Vec::new(), requests: 0 };
//! let assignment = register(&mut link, RegistrationConfig::new("my-device"), 7).unwrap();
//! assert_eq!(assignment.assigned_hub(), "my-hub.azure-devices.net");
//! assert_eq!(link.now(), Timestamp::from_millis(1000)); // one poll, after retry-after
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod dps;
pub mod encoding;
pub mod hub;
pub mod ids;
pub mod query;
pub mod retry;
pub mod sas;
pub mod time;

pub use time::Timestamp;
