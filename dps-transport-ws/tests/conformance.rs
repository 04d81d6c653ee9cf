//! The transport conformance suite (`dps_testkit::conformance`), run over MQTT over WebSocket
//! against the emulator's HTTPS port.

use std::sync::Arc;

use dps_testkit::conformance::{Port, Setup};
use dps_transport_ws::WebSocketTransport;

fn setup() -> Setup {
    Setup {
        transport: Arc::new(WebSocketTransport::new()),
        port: Port::Https,
    }
}

dps_testkit::conformance_suite!(setup());
