//! Authenticators.
#![forbid(unsafe_code)]
