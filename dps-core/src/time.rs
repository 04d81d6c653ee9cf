//! The core's own monotonic clock type.
//!
//! `dps-core` never reads a clock. Drivers pass [`Timestamp`]s in: any monotonic source works, as
//! long as one state machine always sees times measured from the same origin (for example the
//! time elapsed since the driver started, or a hardware tick counter converted to a `Duration`).
//! Wall-clock time, needed only for SAS token expiry, is passed separately as Unix seconds.
//!
//! **Time never goes backwards** for a machine: a `now` earlier than one it already saw is
//! treated as the one it saw ([`TimerTable::advance`]), so a clock that steps back cannot
//! re-fire or skip a timer.
//!
//! Each machine keeps its timers in one [`TimerTable`] over its own timer enum (quinn-proto's
//! `TimerTable` is the model): `poll_timeout` is the table's [`next`](TimerTable::next), and
//! `handle_timeout` walks the [`expired`](TimerTable::expired) ones.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
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

/// A machine's timer enum: every timer it has, each with its own slot in a [`TimerTable`].
pub trait Timer: Copy + Eq + fmt::Debug + 'static {
    /// Every timer, in the order expiries are walked when several are due at once.
    const ALL: &'static [Self];

    /// The timer's slot: its position in [`ALL`](Self::ALL).
    fn index(self) -> usize;
}

/// One deadline per timer of `T`, plus the latest `now` the machine has seen.
#[derive(Clone, PartialEq, Eq)]
pub struct TimerTable<T: Timer> {
    deadlines: Vec<Option<Timestamp>>,
    now: Timestamp,
    kind: PhantomData<T>,
}

impl<T: Timer> TimerTable<T> {
    /// A table with every timer stopped, at `now`.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            deadlines: vec![None; T::ALL.len()],
            now,
            kind: PhantomData,
        }
    }

    /// Moves the table's clock to `now` and returns the time to act on: `now`, or the latest
    /// time seen when `now` is earlier (time never goes backwards).
    pub fn advance(&mut self, now: Timestamp) -> Timestamp {
        self.now = self.now.max(now);
        self.now
    }

    /// The latest time seen.
    #[must_use]
    pub const fn now(&self) -> Timestamp {
        self.now
    }

    /// Arms `timer` to fire at `at` (replacing any earlier setting).
    pub fn set(&mut self, timer: T, at: Timestamp) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    /// Arms `timer` at `at`, or stops it when `at` is `None`.
    pub fn set_or_stop(&mut self, timer: T, at: Option<Timestamp>) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = at;
        }
    }

    /// Stops `timer`.
    pub fn stop(&mut self, timer: T) {
        self.set_or_stop(timer, None);
    }

    /// Stops every timer.
    pub fn stop_all(&mut self) {
        self.deadlines.iter_mut().for_each(|d| *d = None);
    }

    /// When `timer` fires, if armed.
    #[must_use]
    pub fn get(&self, timer: T) -> Option<Timestamp> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    /// Whether `timer` is armed and due at `now`.
    #[must_use]
    pub fn is_expired(&self, timer: T, now: Timestamp) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline: what `poll_timeout` returns.
    #[must_use]
    pub fn next(&self) -> Option<Timestamp> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The timers due at `now`, in [`Timer::ALL`] order (they stay armed: handling one stops
    /// or re-arms it).
    pub fn expired(&self, now: Timestamp) -> impl Iterator<Item = T> + '_ {
        T::ALL
            .iter()
            .copied()
            .filter(move |t| self.is_expired(*t, now))
    }
}

impl<T: Timer> fmt::Debug for TimerTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for timer in T::ALL {
            if let Some(at) = self.get(*timer) {
                map.entry(timer, &at);
            }
        }
        map.finish()
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

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum T {
        A,
        B,
    }

    impl Timer for T {
        const ALL: &'static [Self] = &[Self::A, Self::B];
        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn table_is_the_minimum_and_time_never_goes_back() {
        let mut table = TimerTable::<T>::new(Timestamp::ZERO);
        assert_eq!(table.next(), None);
        table.set(T::B, Timestamp::from_millis(20));
        table.set(T::A, Timestamp::from_millis(30));
        assert_eq!(table.next(), Some(Timestamp::from_millis(20)));
        assert_eq!(
            table
                .expired(Timestamp::from_millis(25))
                .collect::<Vec<_>>(),
            [T::B]
        );
        table.stop(T::B);
        assert_eq!(table.next(), Some(Timestamp::from_millis(30)));
        assert_eq!(
            table.advance(Timestamp::from_millis(40)),
            Timestamp::from_millis(40)
        );
        assert_eq!(
            table.advance(Timestamp::from_millis(10)),
            Timestamp::from_millis(40)
        );
        table.stop_all();
        assert_eq!(table.next(), None);
    }
}
