//! Provision over MQTT over WebSocket on port 443, the way through firewalls that only allow
//! HTTPS, optionally via an HTTP proxy (`HTTPS_PROXY=http://[user:password@]host:port`).
//!
//! Azure settings as for `provision_symmetric_key`; without them it uses the embedded emulator.

mod common;

use dps_auth::SymmetricKey;
use dps_client::{ProvisioningClient, ProxyConfig, WebSocketTransport};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = common::Target::from_env_or_emulator().await?;
    let registration_id = common::registration_id("websocket-device-001");
    let key = SymmetricKey::from_base64(&target.symmetric_key(&registration_id).await?)?;

    let transport = match std::env::var("HTTPS_PROXY").ok().filter(|p| !p.is_empty()) {
        Some(proxy) => {
            let proxy = ProxyConfig::new(proxy);
            // The proxy's Debug output never shows its credentials.
            println!("(through {proxy:?})");
            WebSocketTransport::via_proxy(proxy)
        }
        None => WebSocketTransport::new(),
    };
    let assignment = ProvisioningClient::new(&target.id_scope, &registration_id, key)
        .endpoint(&target.websocket_endpoint)
        .transport(transport)
        .tls(target.tls.clone())
        .deadline(target.deadline())
        .register()
        .await?;
    println!(
        "{registration_id}: assigned to {} as {} over WebSocket",
        assignment.assigned_hub(),
        assignment.device_id()
    );
    Ok(())
}
