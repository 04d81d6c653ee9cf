//! The workloads, one file each; the system ones are methods of [`Bench`](crate::bench::Bench).

pub(crate) mod curve;
pub(crate) mod fleet;
pub(crate) mod hub;
pub(crate) mod latency;
pub(crate) mod micro;
pub(crate) mod smoke;
