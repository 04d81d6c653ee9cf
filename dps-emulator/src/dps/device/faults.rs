//! Fault injection for client tests: throttling, server errors, and misbehaving responses.
//! Everything is off by default; counters count down as faults are served.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Faults to inject into DPS device responses. Set them in the config file (`faults`) or at
/// run time through [`Emulator::set_faults`](crate::Emulator::set_faults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Answer the next device requests (register or poll) with an error status.
    pub inject_status: Option<InjectStatus>,
    /// Limit device requests across the service; the excess is answered 429.
    pub rate_limit: Option<RateLimit>,
    /// Delay every response by this many milliseconds.
    pub delay_ms: u64,
    /// Send the next N responses twice.
    pub duplicate_responses: u32,
    /// Send no response to the next N requests.
    pub drop_responses: u32,
    /// Precede the next N responses by a copy carrying another `$rid`.
    pub wrong_rid_responses: u32,
    /// Send the next N responses with a truncated JSON body.
    pub malformed_responses: u32,
    /// Pad the next N responses with trailing whitespace (still valid JSON) to
    /// [`OVERSIZED_RESPONSE_BYTES`], over the 1 MiB a client accepts.
    pub oversized_responses: u32,
    /// Close each connection after it has sent this many PUBLISH packets.
    pub close_after_publishes: Option<u32>,
}

/// The body size of an oversized response: past the 1 MiB packet limit of this project's
/// client (and of most MQTT clients' defaults), so a client's handling of it can be tested.
pub const OVERSIZED_RESPONSE_BYTES: usize = (1 << 20) + 4096;

/// Error answers for the next `count` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectStatus {
    /// The status: 429 or a 5xx (any 4xx/5xx is allowed).
    pub status: u16,
    /// How many requests get it.
    pub count: u32,
    /// The `retry-after` to send with it, if any.
    #[serde(default)]
    pub retry_after: Option<u32>,
}

/// A fixed-window rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window, in seconds.
    pub per_seconds: u32,
    /// The `retry-after` sent with each 429.
    pub retry_after: u32,
}

/// What to do with one response, decided before it is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ResponsePlan {
    pub(crate) delay: Duration,
    pub(crate) drop: bool,
    pub(crate) duplicate: bool,
    pub(crate) wrong_rid: bool,
    pub(crate) malformed: bool,
    pub(crate) oversized: bool,
}

/// The live fault state: the plan plus the rate limiter's window.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    window_start: Instant,
    window_count: u32,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        Self {
            faults,
            window_start: Instant::now(),
            window_count: 0,
        }
    }

    /// An injected error status for this request, if any: `(status, retry_after)`.
    pub(crate) fn take_error(&mut self, now: Instant) -> Option<(u16, Option<u32>)> {
        if let Some(inject) = &mut self.faults.inject_status {
            if inject.count > 0 {
                inject.count -= 1;
                return Some((inject.status, inject.retry_after));
            }
        }
        let limit = self.faults.rate_limit?;
        if now.duration_since(self.window_start)
            >= Duration::from_secs(u64::from(limit.per_seconds))
        {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        (self.window_count > limit.requests).then_some((429, Some(limit.retry_after)))
    }

    /// How to deliver this response.
    pub(crate) fn plan_response(&mut self) -> ResponsePlan {
        let f = &mut self.faults;
        ResponsePlan {
            delay: Duration::from_millis(f.delay_ms),
            drop: take(&mut f.drop_responses),
            duplicate: take(&mut f.duplicate_responses),
            wrong_rid: take(&mut f.wrong_rid_responses),
            malformed: take(&mut f.malformed_responses),
            oversized: take(&mut f.oversized_responses),
        }
    }
}

fn take(counter: &mut u32) -> bool {
    let hit = *counter > 0;
    *counter = counter.saturating_sub(1);
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_down() {
        let mut state = FaultState::new(Faults {
            inject_status: Some(InjectStatus {
                status: 503,
                count: 2,
                retry_after: None,
            }),
            drop_responses: 1,
            ..Faults::default()
        });
        let now = Instant::now();
        assert_eq!(state.take_error(now), Some((503, None)));
        assert_eq!(state.take_error(now), Some((503, None)));
        assert_eq!(state.take_error(now), None);
        assert!(state.plan_response().drop);
        assert!(!state.plan_response().drop);
    }

    #[test]
    fn rate_limit_window() {
        let mut state = FaultState::new(Faults {
            rate_limit: Some(RateLimit {
                requests: 2,
                per_seconds: 10,
                retry_after: 4,
            }),
            ..Faults::default()
        });
        let t0 = Instant::now();
        assert_eq!(state.take_error(t0), None);
        assert_eq!(state.take_error(t0), None);
        assert_eq!(state.take_error(t0), Some((429, Some(4))));
        assert_eq!(state.take_error(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn config_shape() {
        let faults: Faults = serde_json::from_str(
            r#"{"injectStatus":{"status":429,"count":3,"retryAfter":1},"dropResponses":1}"#,
        )
        .unwrap();
        assert_eq!(faults.inject_status.unwrap().count, 3);
        assert!(serde_json::from_str::<Faults>(r#"{"bogus":1}"#).is_err());
    }
}
