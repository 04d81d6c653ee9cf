//! Telemetry acknowledgement faults on every hub (#11): withheld and delayed PUBACKs, for
//! clients' redelivery tests and the chaos soak.

use std::sync::{MutexGuard, PoisonError};

use super::Emulator;
use crate::hub::ack_faults::AckFaultState;
use crate::hub::{TelemetryAckCounts, TelemetryAckFaults};

impl Emulator {
    /// Replaces the telemetry acknowledgement faults of every hub (withheld and delayed
    /// PUBACKs); counters restart.
    pub fn set_telemetry_ack_faults(&self, faults: TelemetryAckFaults) {
        self.ack_fault_state().set(faults);
    }

    /// The telemetry acknowledgement faults, with their counters as they stand.
    pub fn telemetry_ack_faults(&self) -> TelemetryAckFaults {
        self.ack_fault_state().faults()
    }

    /// How many telemetry acknowledgement faults have been served since the emulator started.
    pub fn telemetry_ack_fault_counts(&self) -> TelemetryAckCounts {
        self.ack_fault_state().counts()
    }

    fn ack_fault_state(&self) -> MutexGuard<'_, AckFaultState> {
        self.hub
            .ack_faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
