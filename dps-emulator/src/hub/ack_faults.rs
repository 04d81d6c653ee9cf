//! Telemetry acknowledgement faults for client tests (#11): withheld and delayed PUBACKs of
//! device telemetry, so a client's redelivery and its in-flight window can be tested against the
//! hub itself. Everything is off by default; counters count down as faults are served.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::PublishAck;

/// Faults to inject into the emulated hubs' device side (every linked hub). Set them at run
/// time with [`Emulator::set_telemetry_ack_faults`](crate::Emulator::set_telemetry_ack_faults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TelemetryAckFaults {
    /// Withhold the PUBACK of the next N telemetry messages. Each is recorded (it is on the
    /// events feed) but never acknowledged, as when an acknowledgement is lost: the device
    /// sends it again on a later connection, with the same message id.
    pub withhold_telemetry_acks: u32,
    /// Delay the PUBACK of the next N telemetry messages by [`ack_delay_ms`](Self::ack_delay_ms).
    pub delay_telemetry_acks: u32,
    /// How long a delayed PUBACK waits, in milliseconds.
    pub ack_delay_ms: u64,
    /// Serve a fault to one telemetry message in this many (0 and 1: every one), so that
    /// faults spread over a run and its devices instead of hitting the first messages.
    pub one_in: u32,
}

/// The live state: the faults and the telemetry messages seen so far.
#[derive(Debug, Default)]
pub(crate) struct AckFaultState {
    faults: TelemetryAckFaults,
    seen: u64,
    /// Faults served so far, for the tests' figures.
    withheld: u64,
    delayed: u64,
}

/// Faults served so far by the emulated hubs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TelemetryAckCounts {
    /// Telemetry PUBACKs withheld.
    pub withheld_acks: u64,
    /// Telemetry PUBACKs delayed.
    pub delayed_acks: u64,
}

impl AckFaultState {
    /// Replaces the faults (counters restart; what was served so far is still counted).
    pub(crate) fn set(&mut self, faults: TelemetryAckFaults) {
        self.faults = faults;
        self.seen = 0;
    }

    pub(crate) fn faults(&self) -> TelemetryAckFaults {
        self.faults.clone()
    }

    pub(crate) fn counts(&self) -> TelemetryAckCounts {
        TelemetryAckCounts {
            withheld_acks: self.withheld,
            delayed_acks: self.delayed,
        }
    }

    /// How to acknowledge the telemetry message just recorded.
    pub(crate) fn plan_telemetry_ack(&mut self) -> PublishAck {
        let f = &mut self.faults;
        if f.withhold_telemetry_acks == 0 && f.delay_telemetry_acks == 0 {
            return PublishAck::Now;
        }
        self.seen += 1;
        if self.seen % u64::from(f.one_in.max(1)) != 0 {
            return PublishAck::Now;
        }
        if f.withhold_telemetry_acks > 0 {
            f.withhold_telemetry_acks -= 1;
            self.withheld += 1;
            return PublishAck::Withhold;
        }
        f.delay_telemetry_acks -= 1;
        self.delayed += 1;
        PublishAck::After(Duration::from_millis(f.ack_delay_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_n_then_counted_down() {
        let mut state = AckFaultState::default();
        assert_eq!(state.plan_telemetry_ack(), PublishAck::Now);
        state.set(TelemetryAckFaults {
            withhold_telemetry_acks: 1,
            delay_telemetry_acks: 1,
            ack_delay_ms: 30,
            one_in: 2,
        });
        let plans: Vec<_> = (0..6).map(|_| state.plan_telemetry_ack()).collect();
        assert_eq!(
            plans,
            [
                PublishAck::Now,
                PublishAck::Withhold,
                PublishAck::Now,
                PublishAck::After(Duration::from_millis(30)),
                PublishAck::Now,
                PublishAck::Now,
            ]
        );
        assert_eq!(
            state.counts(),
            TelemetryAckCounts {
                withheld_acks: 1,
                delayed_acks: 1
            }
        );
    }
}
