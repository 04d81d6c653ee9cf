//! `dps registry`: device identities in an IoT Hub's identity registry through the service API
//! (api-version 2021-04-12), against Azure or the emulator.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::enroll::{SERVICE_EXIT_CODES, ServiceOptions};
use super::print_line;
use super::service_api::{ServiceConnection, block_on, segment};
use crate::exit::CliError;

/// The IoT Hub service API version the official service SDKs use.
const API_VERSION: &str = "2021-04-12";

/// Arguments of `dps registry`.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// What to do.
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Create a device identity; prints it as the hub stored it (with generated keys).
    #[command(after_help = SERVICE_EXIT_CODES)]
    Create(CreateArgs),
    /// Print a device identity (keys included).
    #[command(after_help = SERVICE_EXIT_CODES)]
    Get(DeviceArgs),
    /// Disable a device: it can no longer connect; prints the updated identity.
    #[command(after_help = SERVICE_EXIT_CODES)]
    Disable(DisableArgs),
    /// Enable a disabled device; prints the updated identity.
    #[command(after_help = SERVICE_EXIT_CODES)]
    Enable(DeviceArgs),
    /// Delete a device identity.
    #[command(after_help = SERVICE_EXIT_CODES)]
    Delete(DeviceArgs),
}

#[derive(Debug, Args)]
struct DeviceArgs {
    /// The device id.
    #[arg(long, value_name = "ID")]
    device_id: String,
    #[command(flatten)]
    service: ServiceOptions,
}

#[derive(Debug, Args)]
struct DisableArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Why (kept as `statusReason`).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// SAS authentication with this primary key (base64; both keys are generated when no
    /// credential option is given); `-` reads standard input. Needs --secondary-key.
    #[arg(long, value_name = "BASE64", requires = "secondary_key", conflicts_with_all = ["x509_thumbprint", "certificate_authority"])]
    symmetric_key: Option<String>,
    /// The secondary key (base64) with --symmetric-key.
    #[arg(long, value_name = "BASE64", requires = "symmetric_key")]
    secondary_key: Option<String>,
    /// Self-signed X.509 authentication: the certificate's SHA-1 or SHA-256 thumbprint (hex).
    #[arg(long, value_name = "HEX", conflicts_with = "certificate_authority")]
    x509_thumbprint: Option<String>,
    /// CA-signed X.509 authentication (the device presents a chain to a verified CA).
    #[arg(long)]
    certificate_authority: bool,
    /// An IoT Edge device.
    #[arg(long)]
    edge: bool,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

/// Runs `dps registry`.
pub(crate) fn run(args: &RegistryArgs) -> Result<(), CliError> {
    let answer = block_on(async {
        match &args.command {
            RegistryCommand::Create(a) => create(a).await,
            RegistryCommand::Get(d) => {
                d.service
                    .connect()?
                    .call("GET", &path(&d.device_id), None, None)
                    .await
            }
            RegistryCommand::Disable(a) => {
                set_status(&a.device, "disabled", a.reason.as_deref()).await
            }
            RegistryCommand::Enable(d) => set_status(d, "enabled", None).await,
            RegistryCommand::Delete(d) => {
                d.service
                    .connect()?
                    .call("DELETE", &path(&d.device_id), None, Some("*"))
                    .await
            }
        }
    })?;
    if answer.is_null() {
        return Ok(());
    }
    print_line(&answer.to_string())
}

fn path(device_id: &str) -> String {
    format!("/devices/{}?api-version={API_VERSION}", segment(device_id))
}

async fn create(a: &CreateArgs) -> Result<Value, CliError> {
    let connection: ServiceConnection = a.device.service.connect()?;
    let authentication = if let Some(thumbprint) = &a.x509_thumbprint {
        json!({ "type": "selfSigned", "x509Thumbprint": { "primaryThumbprint": thumbprint } })
    } else if a.certificate_authority {
        json!({ "type": "certificateAuthority" })
    } else {
        let mut keys = serde_json::Map::new();
        if let Some(primary) = &a.symmetric_key {
            let primary = super::secret_argument(primary, "--symmetric-key")?;
            keys.insert("primaryKey".into(), json!(primary.trim()));
        }
        if let Some(secondary) = &a.secondary_key {
            keys.insert("secondaryKey".into(), json!(secondary.trim()));
        }
        json!({ "type": "sas", "symmetricKey": keys })
    };
    let body = json!({
        "deviceId": a.device.device_id,
        "status": if a.disabled { "disabled" } else { "enabled" },
        "authentication": authentication,
        "capabilities": { "iotEdge": a.edge },
    });
    connection
        .call("PUT", &path(&a.device.device_id), Some(&body), None)
        .await
}

/// Reads the identity and writes it back with the new status, conditional on its etag so a
/// concurrent change is not overwritten.
async fn set_status(d: &DeviceArgs, status: &str, reason: Option<&str>) -> Result<Value, CliError> {
    let connection = d.service.connect()?;
    let mut device = connection
        .call("GET", &path(&d.device_id), None, None)
        .await?;
    let etag = device
        .get("etag")
        .and_then(Value::as_str)
        .map(|e| format!("\"{}\"", e.trim_matches('"')));
    device["status"] = json!(status);
    if let Some(reason) = reason {
        device["statusReason"] = json!(reason);
    }
    connection
        .call(
            "PUT",
            &path(&d.device_id),
            Some(&device),
            etag.as_deref().or(Some("*")),
        )
        .await
}
