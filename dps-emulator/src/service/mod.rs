//! The DPS service API: enrollments, enrollment groups and registration records, over REST (for
//! the official service SDKs) and as Rust functions (for the admin handle).

pub(crate) mod auth;
pub(crate) mod enrollments;
mod error;
pub(crate) mod rest;

pub use error::ServiceFailure;
