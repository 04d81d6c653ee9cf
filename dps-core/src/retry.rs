//! Status classification and retry delays, shared by the DPS and IoT Hub state machines.
//!
//! The delay formula is the one the Embedded C SDK documents (`az_iot_calculate_retry_delay`), so
//! that our behaviour can be checked against its vectors; jitter is an argument, never drawn here.

use core::time::Duration;

/// True when an HTTP-like status from a response topic means success (`< 400`, as the Embedded C
/// SDK's `az_iot_status_succeeded`).
#[must_use]
pub const fn is_success(status: u16) -> bool {
    status < 400
}

/// True when a request that got `status` should be retried after a delay: 429 and every 5xx.
///
/// This is wider than the Embedded C SDK (429 and 500 only): the reference lists 502, 503 and 504
/// as transient gateway errors that the other SDKs retry and that Embedded C users hit.
#[must_use]
pub const fn is_retriable(status: u16) -> bool {
    status == 429 || (status >= 500 && status <= 599)
}

/// Exponential backoff with jitter, minus the time the failed operation already took.
///
/// `delay = min(min_delay * 2^attempt, max_delay)`; the jitter is added only when it still fits
/// under `max_delay`; then `operation` (time already spent) is subtracted, floored at zero.
/// Attempts above 30 count as 30. All arithmetic saturates.
///
/// ```
/// use core::time::Duration;
/// use dps_core::retry::calculate_retry_delay;
/// let ms = Duration::from_millis;
/// assert_eq!(calculate_retry_delay(ms(5), 1, ms(500), ms(100_000), ms(1234)), ms(2229));
/// ```
#[must_use]
pub fn calculate_retry_delay(
    operation: Duration,
    attempt: u32,
    min_delay: Duration,
    max_delay: Duration,
    jitter: Duration,
) -> Duration {
    let factor = 1u32 << attempt.min(30);
    let mut delay = min_delay.saturating_mul(factor).min(max_delay);
    if max_delay.saturating_sub(delay) > jitter {
        delay += jitter;
    }
    delay.saturating_sub(operation)
}

/// A small deterministic pseudo-random source for jitter (SplitMix64).
///
/// The core never gathers entropy itself: the driver seeds it (from the OS, a hardware RNG, or a
/// fixed value in tests), so identical inputs replay identically.
#[derive(Debug, Clone)]
pub struct JitterSource {
    state: u64,
}

impl JitterSource {
    /// A source seeded with `seed`. Use a different seed per device so a fleet does not retry in
    /// lockstep.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration uniformly drawn from `[0, max]` at millisecond resolution.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if max_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.next_u64() % max_ms.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn official_retry_delay_vectors() {
        // azure-sdk-for-c test_az_iot_common.c, az_iot_calculate_retry_delay
        const I32_MAX: u64 = i32::MAX as u64;
        const I16_MAX: u32 = i16::MAX as u32;
        assert_eq!(
            calculate_retry_delay(ms(5), 1, ms(500), ms(100_000), ms(1234)),
            ms(2229)
        );
        assert_eq!(
            calculate_retry_delay(ms(5000), 1, ms(500), ms(100_000), ms(4321)),
            ms(321)
        );
        assert_eq!(
            calculate_retry_delay(ms(10000), 1, ms(500), ms(100_000), ms(4321)),
            ms(0)
        );
        assert_eq!(
            calculate_retry_delay(ms(5), 5, ms(500), ms(10000), ms(4321)),
            ms(9995)
        );
        let big = ms(I32_MAX - 1);
        assert_eq!(
            calculate_retry_delay(big, I16_MAX - 1, big, big, big),
            ms(0)
        );
        assert_eq!(
            calculate_retry_delay(ms(0), I16_MAX - 1, big, big, big),
            big
        );
    }

    #[test]
    fn official_status_vectors() {
        for s in [200, 204, 0, 350] {
            assert!(is_success(s), "{s}");
        }
        for s in [400, 504, 600] {
            assert!(!is_success(s), "{s}");
        }
        assert!(is_retriable(429) && is_retriable(500));
        assert!(!is_retriable(200) && !is_retriable(401));
    }

    #[test]
    fn gateway_errors_are_retriable() {
        for s in [502, 503, 504] {
            assert!(is_retriable(s));
        }
        assert!(!is_retriable(600));
    }

    #[test]
    fn jitter_is_bounded_and_replayable() {
        let mut a = JitterSource::new(7);
        let mut b = JitterSource::new(7);
        for _ in 0..1000 {
            let j = a.jitter(ms(250));
            assert!(j <= ms(250));
            assert_eq!(j, b.jitter(ms(250)));
        }
        assert_eq!(a.jitter(Duration::ZERO), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn delay_never_exceeds_max(op in 0u64..1_000_000, attempt in 0u32..100, min in 0u64..100_000, max in 0u64..1_000_000, jitter in 0u64..100_000) {
            let d = calculate_retry_delay(ms(op), attempt, ms(min), ms(max), ms(jitter));
            proptest::prop_assert!(d <= ms(max));
        }
    }
}
