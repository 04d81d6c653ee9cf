//! A module identity: send to an output (`$.on`), receive on an input, as an IoT Edge module or
//! a hub-routed module does.
//!
//! With `IOTHUB_MODULE_CONNECTION_STRING` set (`HostName=..;DeviceId=..;ModuleId=..;
//! SharedAccessKey=..`, optionally `GatewayHostName=..`) it talks to Azure or an Edge hub;
//! without it it starts the local emulator, creates a device with a module, and routes a message
//! to the module's input itself.
//!
//! ```text
//! cargo run --example module
//! ```

mod common;

use std::time::Duration;

use dps_emulator::CloudToDeviceMessage;
use hub_client::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (target, builder) = common::HubTarget::from_env_or_emulator(
        "IOTHUB_MODULE_CONNECTION_STRING",
        "edge-device-001",
        Some("filter"),
    )
    .await?;
    let module = builder.connect().await?;
    println!(
        "connected as module {} of {}",
        module.module_id().unwrap_or("?"),
        module.device_id()
    );
    let mut inputs = module.inputs()?;

    module
        .send(Message::json(&serde_json::json!({ "temperature": 41.2 }))?.output("alerts"))
        .await?;
    println!("sent an alert to output 'alerts'");

    if let (Some(emulator), Some(module_id)) = (&target.emulator, &target.module_id) {
        emulator.send_to_module_input(
            &target.hub,
            &target.device_id,
            module_id,
            "input1",
            CloudToDeviceMessage::new(r#"{"temperature":19.5}"#).message_id("routed-1"),
        )?;
    }
    let wait = if target.emulator.is_some() { 5 } else { 60 };
    if let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(wait), inputs.recv()).await
    {
        println!(
            "input {:?}: {}",
            message.input_name(),
            message.payload_str().unwrap_or("<binary>")
        );
    }
    module.close().await;
    target.print_received_telemetry();
    Ok(())
}
