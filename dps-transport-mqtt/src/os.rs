//! What the async drivers over this transport take from the operating system and hand to the
//! sans-IO cores, which must never read a clock or gather entropy themselves.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch: the wall clock SAS token expiry is measured on.
#[must_use]
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A seed for a core's jitter, from the process's randomly keyed hasher: different for every
/// call, so a fleet's retries and renewals spread out, without a random-number dependency.
#[must_use]
pub fn random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}
