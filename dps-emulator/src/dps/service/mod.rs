//! The DPS service side: enrollments, enrollment groups and registration records, over REST
//! (for the official service SDKs) and as Rust functions (for [`Emulator`](crate::Emulator)).

pub(crate) mod api;
pub(crate) mod enrollments;
// The lifecycle knobs (#12): key rotation, moving a device.
pub(crate) mod keys;
pub(crate) mod moves;
