//! Provision a device of a symmetric-key enrollment group: the device's key is derived from the
//! group key (HMAC-SHA256 of the registration id), so a factory only needs the group key.
//!
//! Azure settings: `PROVISIONING_HOST`, `PROVISIONING_IDSCOPE`, `PROVISIONING_REGISTRATION_ID`,
//! `PROVISIONING_GROUP_KEY`. Without them it runs against the embedded emulator.

mod common;

use dps_auth::GroupKey;
use dps_client::ProvisioningClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::Target::from_env_or_emulator().await?;
    let registration_id = common::registration_id("group-device-001");
    let group = GroupKey::from_base64(&target.group_key("demo-group").await?)?;
    let device_key = group.derive(&registration_id)?;

    let assignment = ProvisioningClient::new(&target.id_scope, &registration_id, device_key)
        .endpoint(&target.endpoint)
        .tls(target.tls.clone())
        .deadline(target.deadline())
        .register()
        .await?;
    println!(
        "{registration_id}: assigned to {} as {}",
        assignment.assigned_hub(),
        assignment.device_id()
    );
    Ok(())
}
