//! # hub-client
//!
//! The Azure IoT Hub device client.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod message;
pub mod proto;

pub use message::{Message, ReceivedMessage};
pub use proto::SendError;
