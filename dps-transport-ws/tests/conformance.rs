//! The transport conformance suite of `dps-transport-mqtt` (shared source), run over MQTT over
//! WebSocket against the emulator's HTTPS port.

#[macro_use]
#[path = "../../dps-transport-mqtt/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{Port, Setup};
use dps_transport_ws::WebSocketTransport;

fn setup() -> Setup {
    Setup {
        transport: Arc::new(WebSocketTransport::new()),
        port: Port::Https,
    }
}

conformance_suite!(setup());
