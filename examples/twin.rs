//! The device twin: read it, report properties, and follow desired-property changes (including
//! the full twin the client reads again after every reconnect).
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set it talks to Azure (change desired properties in the
//! portal within a minute); without it it starts the local emulator and plays the service.
//!
//! ```text
//! cargo run --example twin
//! ```

mod common;

use std::time::Duration;

use hub_client::DesiredUpdate;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (target, builder) = common::HubTarget::from_env_or_emulator(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "twin-device-001",
        None,
    )
    .await?;
    let hub = builder.connect().await?;
    let mut desired = hub.desired_patches()?;

    let twin = hub.get_twin().await?;
    println!("desired: {}", twin.desired);
    println!("reported: {}", twin.reported);
    let version = hub
        .update_reported(&json!({ "firmwareVersion": "1.2.0", "serialNumber": "SN-0001" }))
        .await?;
    println!("reported properties now at version {version}");

    // Play the service: change a desired property twice.
    if let Some(emulator) = &target.emulator {
        let (emulator_hub, device) = (target.hub.clone(), target.device_id.clone());
        for speed in [3, 4] {
            emulator
                .patch_desired(&emulator_hub, &device, json!({ "fanSpeed": speed }))
                .await?;
        }
    }

    let wait = if target.emulator.is_some() { 3 } else { 60 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    while let Ok(Some(update)) = tokio::time::timeout_at(deadline, desired.recv()).await {
        match update {
            DesiredUpdate::Patch { version, patch } => {
                println!("desired patch v{version}: {patch}");
                // Acknowledge a writable property, IoT Plug and Play style.
                if let Some(speed) = patch.get("fanSpeed") {
                    hub.update_reported(
                        &json!({ "fanSpeed": { "value": speed, "ac": 200, "av": version } }),
                    )
                    .await?;
                }
            }
            DesiredUpdate::Resync { twin, missed } => {
                println!(
                    "twin re-read (missed {missed:?} desired versions): {}",
                    twin.desired
                );
            }
            other => println!("{other:?}"),
        }
    }
    hub.close().await;
    Ok(())
}
