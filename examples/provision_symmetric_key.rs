//! Provision a device with a symmetric key (individual enrollment), as the Python quickstart
//! does.
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::Target::from_env_or_emulator().await?;
    let registration_id = common::registration_id("symm-key-rust-device-001");
    let key = SymmetricKey::from_base64(&target.symmetric_key(&registration_id).await?)?;

    print!("registering {registration_id} ... ");
    let started = Instant::now();
    let assignment = ProvisioningClient::new(&target.id_scope, &registration_id, key)
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
    Ok(())
}
