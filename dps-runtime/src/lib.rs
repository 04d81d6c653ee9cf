//! # dps-runtime
//!
//! The one tokio driver of the dps-rs clients: [`run`] performs what any
//! [`Machine`](dps_core::mqtt::Machine) asks (the DPS registration, the IoT Hub session) on a
//! [`Transport`](dps_transport_mqtt::Transport) connection and feeds back what happens, as the
//! driving contract in `dps-core`'s crate docs describes. `dps-client` and `hub-client` are this
//! driver plus their public handles.
//!
//! - [`Connector`]: where each connection goes; a [`Link`] for a machine that always connects
//!   to the same place.
//! - [`Link`]: how to connect (transport, endpoint, MQTT identity, an authenticator that mints
//!   fresh credentials on every connect), a plain configuration struct.
//! - [`Shared`]: the machine and the application's side of it ([`Application`]) behind one
//!   mutex, so handles can call the machine (send telemetry, accept a delivery) while the driver
//!   task runs; [`Shared::with`] wakes the driver after such a call.
//! - [`Clock`] and [`Entropy`]: time and randomness from the top ([`SystemClock`],
//!   [`OsEntropy`] by default), so tests can run a virtual clock and fixed seeds.
//!
//! An application with no room for a delivery holds it ([`Application::room`]): the driver
//! then reads no further incoming message until there is room, and the delivery is accepted
//! (acknowledged) only once the application has it.
//!
//! The transport never acknowledges an incoming publish by itself: the driver sends PUBACK when
//! the machine emits [`Transmit::Ack`](dps_core::mqtt::Transmit::Ack).
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod driver;
mod entropy;
mod gate;
mod link;
mod problems;
mod shared;

pub use clock::{Clock, SystemClock};
pub use driver::run;
pub use entropy::{Entropy, FixedEntropy, OsEntropy};
pub use link::{Connector, Failure, Link};
pub use problems::Problems;
pub use shared::{Application, Driven, Room, Shared};
