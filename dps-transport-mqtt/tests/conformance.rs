//! The transport conformance suite (`tests/common`) for MQTT over TLS, against the DPS emulator,
//! an echo server on the emulator's frame, and small TLS servers that must be refused.

#[macro_use]
mod common;

use std::sync::Arc;

use common::{Port, Setup};
use dps_transport_mqtt::MqttTransport;

fn setup() -> Setup {
    Setup {
        transport: Arc::new(MqttTransport::new()),
        port: Port::Mqtt,
    }
}

conformance_suite!(setup());
