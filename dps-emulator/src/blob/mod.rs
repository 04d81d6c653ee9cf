//! The blob storage behind the hub's file uploads: the built-in blob endpoint (served on the
//! emulator's HTTPS port, so uploads work with nothing installed), or an external storage
//! account such as Azurite, and the blob SAS tokens the hub hands to devices.

pub(crate) mod api;
mod config;
pub(crate) mod remote;
pub(crate) mod sas;
pub(crate) mod store;

pub use config::{FileUploadConfig, StorageAccount};

/// The name of the built-in storage account (the first path segment of its blob URLs).
pub const BUILTIN_ACCOUNT: &str = "dpsemulator";
