//! Timestamps in the service's format: ISO 8601 UTC with 7 fractional digits
//! (`2020-04-10T03:11:13.0276997Z`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `SystemTime::now()` in the service's format.
pub(crate) fn now_utc() -> String {
    format_utc(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// Formats a time since the Unix epoch as `YYYY-MM-DDThh:mm:ss.fffffffZ`.
pub(crate) fn format_utc(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    let ticks = since_epoch.subsec_nanos() / 100;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ticks:07}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_service() {
        // 2020-04-10T03:11:13.0276997Z
        let t = Duration::new(1_586_488_273, 27_699_700);
        assert_eq!(format_utc(t), "2020-04-10T03:11:13.0276997Z");
        assert_eq!(format_utc(Duration::ZERO), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(
            format_utc(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.0000000Z"
        );
    }
}
