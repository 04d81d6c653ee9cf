//! Time from the top: the monotonic clock the machines' timers run on, and the wall clock SAS
//! expiry is measured on.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dps_core::Timestamp;

/// A source of time for one client. The machines never read a clock: the driver asks this one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time since an origin of the clock's choosing; never goes backwards.
    fn now(&self) -> Timestamp;
    /// Seconds since the Unix epoch: the wall clock SAS token expiry is measured on.
    fn unix_now(&self) -> u64;
}

/// The operating system's clocks: [`Instant`] since the clock was made, and [`SystemTime`].
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_instants(self.origin, Instant::now())
    }

    fn unix_now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_starts_at_its_origin_and_moves_forward() {
        let clock = SystemClock::new();
        let first = clock.now();
        assert!(first.as_duration() < std::time::Duration::from_secs(1));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(clock.now() > first);
        // 2023-11-14 or later: a real wall clock, not the monotonic one.
        assert!(clock.unix_now() > 1_700_000_000);
    }
}
