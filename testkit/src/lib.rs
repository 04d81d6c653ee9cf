//! # dps-testkit
//!
//! What the workspace's tests share, written once (issue 10), never published:
//!
//! - [`pki`]: test certificate authorities, leaves, self-signed devices and CSRs (rcgen);
//! - [`emulator`]: the DPS + IoT Hub emulator in-process on ephemeral ports in a temporary
//!   directory, with enrollment helpers that hand back the raw pieces a client needs (endpoint,
//!   CA, keys, identities);
//! - [`conformance`]: the transport conformance suite run by `dps-transport-mqtt` and
//!   `dps-transport-ws` ([`conformance_suite!`]), with its small test servers.
//!
//! Failures panic with a message: this crate exists for tests, where a panic is the report.
//! It must never be a dependency of `dps-core` (it depends on crates that depend on it).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conformance;
pub mod emulator;
pub mod pki;
