//! Provision a device with a symmetric key (individual enrollment), then send ten telemetry
//! messages to the hub it was assigned to, as the Python quickstart does.
//!
//! With `PROVISIONING_HOST`, `PROVISIONING_IDSCOPE`, `PROVISIONING_REGISTRATION_ID` and
//! `PROVISIONING_SYMMETRIC_KEY` set, it talks to Azure; without them it starts the local
//! emulator, enrolls a demo device, and provisions against it:
//!
//! ```text
//! cargo run --example provision_symmetric_key
//! ```

mod common;

use std::time::Instant;

use dps_auth::SymmetricKey;
use dps_client::ProvisioningClient;
use hub_client::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::Target::from_env_or_emulator().await?;
    let registration_id = common::registration_id("symm-key-rust-device-001");
    let key = SymmetricKey::from_base64(&target.symmetric_key(&registration_id).await?)?;

    print!("registering {registration_id} ... ");
    let started = Instant::now();
    let assignment = ProvisioningClient::new(&target.id_scope, &registration_id, key.clone())
        .endpoint(&target.endpoint)
        .tls(target.tls.clone())
        .deadline(target.deadline())
        .register()
        .await?;
    println!(
        "assigned to {} as {} ({}) in {} ms",
        assignment.assigned_hub(),
        assignment.device_id(),
        assignment
            .substatus()
            .map_or("-".into(), ToString::to_string),
        started.elapsed().as_millis()
    );

    // The same key authenticates with the assigned hub; tokens are minted (and renewed) by the
    // client.
    let hub = target.hub_client(&assignment, key).connect().await?;
    for i in 1..=10 {
        print!("sending message #{i} ... ");
        let message =
            Message::json(&serde_json::json!({ "temperature": 20.0 + f64::from(i) / 10.0 }))?
                .message_id(format!("{registration_id}-{i}"))
                .property("tempAlert", if i > 8 { "true" } else { "false" });
        hub.send(message).await?;
        println!("done sending message #{i}");
    }
    hub.close().await;
    Ok(())
}
