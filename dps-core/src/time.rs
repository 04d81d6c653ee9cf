//! The core's own monotonic clock type.
//!
//! `dps-core` never reads a clock. Drivers pass [`Timestamp`]s in: any monotonic source works, as
//! long as one state machine always sees times measured from the same origin (for example the
//! time elapsed since the driver started, or a hardware tick counter converted to a `Duration`).
//! Wall-clock time, needed only for SAS token expiry, is passed separately as Unix seconds.

use core::fmt;
use core::ops::{Add, AddAssign};
use core::time::Duration;

/// A point on the driver's monotonic clock: the time elapsed since an arbitrary origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(Duration);

impl Timestamp {
    /// The origin of the clock.
    pub const ZERO: Self = Self(Duration::ZERO);

    /// A timestamp `since_origin` after the clock's origin.
    #[must_use]
    pub const fn from_duration(since_origin: Duration) -> Self {
        Self(since_origin)
    }

    /// A timestamp `millis` milliseconds after the origin.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// The time elapsed since the clock's origin.
    #[must_use]
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// `self + duration`, saturating at the end of time instead of overflowing.
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration))
    }
}

#[cfg(feature = "std")]
impl Timestamp {
    /// The time from `origin` to `now` on the standard monotonic clock, for drivers that use
    /// [`std::time::Instant`]: keep one `origin` per state machine.
    #[must_use]
    pub fn from_instants(origin: std::time::Instant, now: std::time::Instant) -> Self {
        Self(now.saturating_duration_since(origin))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Self;

    fn add(self, rhs: Duration) -> Self {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T+{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1500);
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(500)),
            Duration::from_secs(1)
        );
        assert_eq!(Timestamp::ZERO.saturating_duration_since(t), Duration::ZERO);
        let end = Timestamp::from_duration(Duration::MAX);
        assert_eq!(end + Duration::from_secs(1), end);
    }
}
