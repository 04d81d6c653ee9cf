//! Send telemetry with application and system properties, watching the connection state.
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set (`HostName=..;DeviceId=..;SharedAccessKey=..`) it
//! talks to Azure; without it it starts the local emulator, creates a demo device, and shows
//! what the hub received:
//!
//! ```text
//! cargo run --example telemetry
//! ```

mod common;

use std::time::Duration;

use hub_client::{ConnectionState, Message, SendError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (target, builder) = common::HubTarget::from_env_or_emulator(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "telemetry-device-001",
        None,
    )
    .await?;
    let hub = builder
        .model_id("dtmi:com:example:Thermostat;1")
        .connect()
        .await?;
    println!("connected to {} as {}", target.hub, hub.device_id());

    // Connection changes arrive as a stream with typed reasons.
    let mut states = hub.connection_states()?;
    tokio::spawn(async move {
        while let Some(state) = states.recv().await {
            if !matches!(state, ConnectionState::Connected) {
                println!("  connection: {state:?}");
            }
        }
    });

    // `send` resolves once the hub acknowledged the message (QoS 1).
    for i in 1..=5 {
        let reading =
            serde_json::json!({ "temperature": 21.0 + f64::from(i) * 0.5, "humidity": 40 + i });
        let message = Message::json(&reading)?
            .message_id(format!("reading-{i}"))
            .component("thermostat1")
            .property("tempAlert", if i == 5 { "true" } else { "false" })
            .expires_in(Duration::from_secs(300));
        hub.send(message).await?;
        println!("sent reading-{i}");
    }

    // `try_send` never waits: it queues (even while offline) and returns a receipt.
    let receipts: Vec<_> = (6..=10)
        .map(|i| {
            hub.try_send(Message::new(format!("burst {i}")).message_id(format!("reading-{i}")))
        })
        .collect::<Result<_, SendError>>()?;
    for receipt in receipts {
        receipt.await?;
    }
    println!("sent a burst of 5 more");

    hub.close().await;
    target.print_received_telemetry();
    Ok(())
}
