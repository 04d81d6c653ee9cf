//! Cloud-to-device messages, with their properties decoded.
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set it talks to Azure (send messages from the portal or
//! `az iot device c2d-message send` within a minute); without it it starts the local emulator
//! and sends three messages itself.
//!
//! ```text
//! cargo run --example c2d
//! ```

mod common;

use std::time::Duration;

use dps_emulator::CloudToDeviceMessage;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (target, builder) = common::HubTarget::from_env_or_emulator(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "c2d-device-001",
        None,
    )
    .await?;
    let hub = builder.connect().await?;
    let mut messages = hub.c2d_messages()?;

    let expected = if let Some(emulator) = &target.emulator {
        for (i, color) in ["red", "green", "dark blue"].into_iter().enumerate() {
            emulator
                .send_c2d(
                    &target.hub,
                    &target.device_id,
                    CloudToDeviceMessage::new(format!(r#"{{"led":"{color}"}}"#))
                        .message_id(format!("cmd-{i}"))
                        .content_type("application/json")
                        .property("color", color),
                )
                .await?;
        }
        3
    } else {
        usize::MAX
    };

    let wait = if target.emulator.is_some() { 5 } else { 60 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut received = 0;
    while received < expected {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.recv()).await else {
            break;
        };
        received += 1;
        println!(
            "message {:?}: {} (content type {:?}, color {:?})",
            message.message_id(),
            message.payload_str().unwrap_or("<binary>"),
            message.content_type(),
            message.property("color"),
        );
    }
    hub.close().await;
    Ok(())
}
