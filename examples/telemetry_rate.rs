//! Measures the QoS 1 telemetry rate of one `HubClient` connection against the embedded
//! emulator: 256-byte bodies with system and application properties, every message
//! acknowledged (PUBACK) by the hub.
//!
//! ```text
//! cargo run --release --example telemetry_rate [-- COUNT [MAX_IN_FLIGHT [ws]]]
//! ```
//!
//! The emulator runs in the same process, so the figure includes its work too.

use std::time::Instant;

use dps_emulator::model::{HubAuthType, HubAuthentication, SymmetricKeyAttestation};
use dps_emulator::{DeviceIdentity, Emulator, EmulatorConfig, HubEventKind};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hub_client::{Features, HubClient, Message, SendError, TlsConfig, WebSocketTransport};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let window: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    let websocket = args.next().is_some_and(|a| a == "ws");

    let dir = tempfile::tempdir()?;
    let emulator = Emulator::start(EmulatorConfig::new(dir.path())).await?;
    let hub_name = emulator.default_hub().to_owned();
    emulator
        .create_device(
            &hub_name,
            DeviceIdentity {
                device_id: "rate-1".into(),
                authentication: HubAuthentication {
                    kind: HubAuthType::Sas,
                    symmetric_key: Some(SymmetricKeyAttestation {
                        primary_key: Some(KEY.into()),
                        secondary_key: None,
                    }),
                    x509_thumbprint: None,
                },
                ..DeviceIdentity::default()
            },
        )
        .await?;
    let tls = TlsConfig::default()
        .webpki_roots(false)
        .add_root(emulator.ca_der().clone());
    let mut builder = HubClient::builder(
        &hub_name,
        "rate-1",
        dps_auth::SymmetricKey::from_base64(KEY)?,
    )
    .tls(tls)
    .features(Features::NONE)
    .queue_capacity(4 * window.max(256))
    .max_in_flight(window);
    builder = if websocket {
        builder
            .endpoint(format!("localhost:{}", emulator.https_addr().port()))
            .transport(WebSocketTransport::new())
    } else {
        builder.endpoint(format!("localhost:{}", emulator.mqtt_addr().port()))
    };
    let hub = builder.connect().await?;

    let body = vec![b'x'; 256];
    let started = Instant::now();
    let mut receipts = FuturesUnordered::new();
    let mut sent = 0;
    while sent < count || !receipts.is_empty() {
        while sent < count {
            let message = Message::new(body.clone())
                .message_id(sent.to_string())
                .content_type("application/octet-stream")
                .property("sensor", "rate")
                .property("seq", sent.to_string());
            match hub.try_send(message) {
                Ok(receipt) => {
                    receipts.push(receipt);
                    sent += 1;
                }
                Err(SendError::QueueFull { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(result) = receipts.next().await {
            result?;
        }
    }
    let elapsed = started.elapsed();
    hub.close().await;

    let received = emulator
        .hub_events(&hub_name, 0)
        .iter()
        .filter(|e| e.kind == HubEventKind::Telemetry)
        .count();
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{count} QoS 1 messages (256-byte body, 4 properties) over {} with {window} in flight: {:.2} s, {rate:.0} msg/s, {:.1} MB/s of bodies; the hub's feed holds the last {received}",
        if websocket {
            "MQTT/WebSocket"
        } else {
            "MQTT/TLS"
        },
        elapsed.as_secs_f64(),
        rate * 256.0 / 1e6,
    );
    Ok(())
}
