//! The transport conformance suite (`dps_testkit::conformance`) for MQTT over TLS, against the
//! DPS emulator, an echo server on the emulator's frame, and small TLS servers that must be
//! refused.

use std::sync::Arc;

use dps_testkit::conformance::{Port, Setup};
use dps_transport_mqtt::MqttTransport;

fn setup() -> Setup {
    Setup {
        transport: Arc::new(MqttTransport::new()),
        port: Port::Mqtt,
    }
}

dps_testkit::conformance_suite!(setup());
