//! The heartbeat pattern of the identity registry: each device sends a small message per
//! interval (`HubClientBuilder::heartbeat`), and the back end keeps, per device, the time of
//! its last heartbeat, so a silent device stands out (the registry's `connectionState` is not
//! meant for liveness; see identity-registry.md, "Device heartbeat").
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set it runs the device side against Azure for ten
//! heartbeats (read them on your hub's Event Hubs-compatible endpoint). Without it, it starts
//! the local emulator with three devices, stops one of them, and reads the emulator's events
//! feed as the back end:
//!
//! ```text
//! cargo run --example heartbeat
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use dps_emulator::model::{DeviceStatus, HubAuthType, HubAuthentication, SymmetricKeyAttestation};
use dps_emulator::{DeviceIdentity, EmulatorFixture, HubEventKind};
use hub_client::{Heartbeat, HubClient, TlsConfig};

const INTERVAL: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(connection_string) = std::env::var("IOTHUB_DEVICE_CONNECTION_STRING") {
        let hub = HubClient::from_connection_string(&connection_string)?
            .heartbeat(Heartbeat::every(INTERVAL))
            .connect()
            .await?;
        println!("connected as {}: sending 10 heartbeats", hub.device_id());
        tokio::time::sleep(INTERVAL * 10 + INTERVAL / 2).await;
        hub.close().await;
        return Ok(());
    }

    println!("(no IOTHUB_DEVICE_CONNECTION_STRING found: starting the local emulator)");
    let emulator = EmulatorFixture::start().await?;
    let hub_name = emulator.default_hub().to_owned();
    let endpoints = emulator.endpoints();
    let tls = TlsConfig::default()
        .webpki_roots(false)
        .add_root(endpoints.ca_der.clone());

    // The device side: three devices, each with a heartbeat per second.
    let mut devices = Vec::new();
    for device_id in ["pump-1", "pump-2", "pump-3"] {
        let created = emulator
            .create_device(
                &hub_name,
                DeviceIdentity {
                    device_id: device_id.into(),
                    status: DeviceStatus::Enabled,
                    authentication: HubAuthentication {
                        kind: HubAuthType::Sas,
                        symmetric_key: Some(SymmetricKeyAttestation::default()),
                        x509_thumbprint: None,
                    },
                    ..DeviceIdentity::default()
                },
            )
            .await?;
        let key = created
            .authentication
            .symmetric_key
            .and_then(|k| k.primary_key)
            .ok_or("the emulator generates keys")?;
        let client = HubClient::builder(
            &hub_name,
            device_id,
            dps_auth::SymmetricKey::from_base64(&key)?,
        )
        .endpoint(&endpoints.mqtt_endpoint)
        .tls(tls.clone())
        .heartbeat(Heartbeat::every(INTERVAL))
        .connect()
        .await?;
        devices.push(client);
    }
    println!("3 devices connected, a heartbeat each per {INTERVAL:?}");
    tokio::time::sleep(INTERVAL * 3).await;

    // One device goes silent.
    let silent = devices.remove(1);
    println!("{} stops", silent.device_id());
    silent.close().await;
    let checkpoint = emulator
        .hub_events(&hub_name, 0)
        .last()
        .map_or(0, |e| e.sequence_number);
    tokio::time::sleep(INTERVAL * 3).await;

    // The back end: per device, the last heartbeat and how many arrived; a device with no
    // heartbeat in the last three intervals is reported silent.
    let mut last: BTreeMap<String, (String, usize, bool)> = BTreeMap::new();
    for event in emulator.hub_events(&hub_name, 0) {
        let is_heartbeat = event.kind == HubEventKind::Telemetry
            && event.properties.get("heartbeat").map(String::as_str) == Some("true");
        if is_heartbeat {
            let entry = last.entry(event.device_id.clone()).or_default();
            entry.0 = event.enqueued_time.clone();
            entry.1 += 1;
            entry.2 |= event.sequence_number > checkpoint;
        }
    }
    for (device_id, (time, count, recent)) in &last {
        let note = if *recent { "" } else { "  <- silent" };
        println!("  {device_id}: {count} heartbeats, last at {time}{note}");
    }
    for device in devices {
        device.close().await;
    }
    emulator.shutdown().await;
    Ok(())
}
