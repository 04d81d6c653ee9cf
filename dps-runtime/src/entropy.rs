//! Randomness from the top: the seed of a machine's jitter.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::SystemTime;

/// A source of seeds for the machines' jitter (backoff, renewal): different per client, so a
/// fleet's retries and renewals spread out instead of arriving together.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// A fresh seed.
    fn seed(&self) -> u64;
}

/// The operating system's random numbers (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a unit type: the operating system is the whole configuration"
)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn seed(&self) -> u64 {
        getrandom::u64().unwrap_or_else(|error| {
            // No OS randomness (a sandbox without getrandom): the process's randomly keyed
            // hasher over the wall clock still differs per client and per process.
            tracing::debug!(%error, "no OS randomness; seeding from the keyed hasher");
            let mut hasher = RandomState::new().build_hasher();
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            hasher.write_u128(nanos);
            hasher.finish()
        })
    }
}

/// Always the same seed: replayable runs in tests.
#[derive(Debug, Clone, Copy)]
#[expect(
    clippy::exhaustive_structs,
    reason = "a newtype: the seed is the whole value"
)]
pub struct FixedEntropy(pub u64);

impl Entropy for FixedEntropy {
    fn seed(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_seeds_differ_and_fixed_ones_do_not() {
        let seeds: Vec<u64> = (0..4).map(|_| OsEntropy.seed()).collect();
        assert!(seeds.windows(2).any(|w| w[0] != w[1]), "{seeds:?}");
        assert_eq!(FixedEntropy(7).seed(), FixedEntropy(7).seed());
    }
}
