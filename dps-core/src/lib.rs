//! # dps-core
//!
//! The sans-IO protocol core of the Azure IoT Device Provisioning Service (DPS) and IoT Hub
//! device protocols over MQTT. (Crate docs are completed in `lib_docs.md`.)
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
