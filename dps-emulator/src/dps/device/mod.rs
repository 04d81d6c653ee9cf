//! The DPS device side: CONNECT authentication, registration, allocation, certificate
//! issuance and fault injection.

pub(crate) mod allocation;
pub(crate) mod auth;
pub(crate) mod faults;
pub(crate) mod placement;
pub(crate) mod registrar;
pub(crate) mod reply;
pub(crate) mod runtime;
pub(crate) mod webhook;
