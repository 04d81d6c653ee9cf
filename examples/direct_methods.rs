//! Direct methods (and IoT Plug and Play commands): answer invocations with a status and a JSON
//! payload.
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set it talks to Azure (invoke methods from the portal or
//! `az iot hub invoke-device-method` within a minute); without it it starts the local emulator
//! and invokes two methods itself.
//!
//! ```text
//! cargo run --example direct_methods
//! ```

mod common;

use std::time::Duration;

use dps_emulator::MethodInvocation;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (target, builder) = common::HubTarget::from_env_or_emulator(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "methods-device-001",
        None,
    )
    .await?;
    let hub = builder.connect().await?;
    let mut requests = hub.method_requests()?;

    // The device side: answer whatever comes.
    let device = tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            println!(
                "method {} (component {:?}, command {}) with {}",
                request.name(),
                request.component(),
                request.command(),
                String::from_utf8_lossy(request.payload())
            );
            let answer = match request.command() {
                "getMaxMinReport" => (200, json!({ "maxTemp": 26.5, "minTemp": 18.0 })),
                "reboot" => (200, json!({ "rebooting": true })),
                _ => (404, json!({ "error": "unknown method" })),
            };
            if let Err(e) = request.respond(answer.0, answer.1).await {
                println!("could not answer: {e}");
            }
        }
    });

    // The service side, on the emulator.
    match &target.emulator {
        Some(emulator) => {
            for (name, payload) in [
                (
                    "thermostat1*getMaxMinReport",
                    json!({ "since": "2024-01-01T00:00:00Z" }),
                ),
                ("reboot", json!({ "delay": 5 })),
                ("selfDestruct", json!(null)),
            ] {
                let result = emulator
                    .invoke_method(
                        &target.hub,
                        &target.device_id,
                        MethodInvocation::new(name)
                            .payload(payload)
                            .response_timeout(10),
                    )
                    .await?;
                println!("  service got {} {}", result.status, result.payload);
            }
        }
        None => tokio::time::sleep(Duration::from_secs(60)).await,
    }
    hub.close().await;
    device.await?;
    Ok(())
}
