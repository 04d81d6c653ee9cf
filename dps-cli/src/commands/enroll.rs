//! `dps enroll`: individual enrollments and enrollment groups through the DPS service API
//! (api-version 2021-10-01), with symmetric keys or X.509 certificates, against Azure or the
//! emulator: a shell-only enrollment recipe.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::print_line;
use super::service_api::{ServiceConnection, block_on, segment};
use crate::exit::CliError;

/// The DPS service API version the official service SDKs use.
const API_VERSION: &str = "2021-10-01";

/// Exit codes of `dps enroll` and `dps registry`, shown after their `--help`.
pub(crate) const SERVICE_EXIT_CODES: &str = "\
Exit codes:
  0  success (the service's JSON answer on standard output)
  1  failure while running the command
  2  usage error
  3  invalid input: connection string, key, certificate file
 10  the service refused the credentials (401/403)
 14  the service rejected the request (other 4xx: not found, conflict, bad input)
 12  the service failed (5xx)
 16  no answer in time
 17  transport (TLS trust, host name, connection)";

/// Arguments of `dps enroll`.
#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// What to do.
    #[command(subcommand)]
    command: EnrollCommand,
}

/// How to reach a service.
#[derive(Debug, Args)]
pub(crate) struct ServiceOptions {
    /// The service's connection string with a shared access policy
    /// (`HostName=..;SharedAccessKeyName=..;SharedAccessKey=..`); `-` reads standard input.
    #[arg(long, value_name = "CS")]
    pub(crate) connection_string: String,
    /// An extra trusted root (PEM), e.g. the emulator's ca.pem; the public roots stay trusted.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
}

impl ServiceOptions {
    pub(super) fn connect(&self) -> Result<ServiceConnection, CliError> {
        ServiceConnection::new(
            &self.connection_string,
            "--connection-string",
            self.ca_file.as_deref(),
        )
    }
}

#[derive(Debug, Subcommand)]
enum EnrollCommand {
    /// Create or replace an individual enrollment; prints it as the service stored it (with
    /// generated keys).
    #[command(after_help = SERVICE_EXIT_CODES)]
    Individual(IndividualArgs),
    /// Create or replace an enrollment group; prints it as the service stored it.
    #[command(after_help = SERVICE_EXIT_CODES)]
    Group(GroupArgs),
    /// Print an individual enrollment or a group (keys included).
    #[command(after_help = SERVICE_EXIT_CODES)]
    Get(TargetArgs),
    /// Delete an individual enrollment or a group.
    #[command(after_help = SERVICE_EXIT_CODES)]
    Delete(TargetArgs),
}

/// How the devices of an enrollment attest.
#[derive(Debug, Args)]
struct AttestationArgs {
    /// Symmetric-key attestation with this primary key (base64; both keys are generated when
    /// neither this nor --certificate is given); `-` reads standard input. The service takes
    /// both keys or neither, so it needs --secondary-key.
    #[arg(
        long,
        value_name = "BASE64",
        conflicts_with = "certificate",
        requires = "secondary_key"
    )]
    symmetric_key: Option<String>,
    /// The secondary key (base64) with --symmetric-key.
    #[arg(long, value_name = "BASE64", requires = "symmetric_key")]
    secondary_key: Option<String>,
    /// X.509 attestation: the device certificate (individual) or the signing root or
    /// intermediate certificate (group), PEM.
    #[arg(long, value_name = "PEM")]
    certificate: Option<PathBuf>,
}

/// Settings shared by individual enrollments and groups.
#[derive(Debug, Args)]
struct SettingsArgs {
    /// A hub devices may be assigned to (repeatable; default: every linked hub).
    #[arg(long = "iot-hub", value_name = "HOST")]
    iot_hubs: Vec<String>,
    /// The initial twin, JSON (`{"tags":{..},"properties":{"desired":{..}}}`).
    #[arg(long, value_name = "JSON")]
    initial_twin: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
    /// Replace only if the stored etag is this one.
    #[arg(long, value_name = "ETAG")]
    if_match: Option<String>,
}

#[derive(Debug, Args)]
struct IndividualArgs {
    /// The registration id.
    #[arg(long, value_name = "ID")]
    registration_id: String,
    /// The device id to create in the hub (default: the registration id).
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    #[command(flatten)]
    attestation: AttestationArgs,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    service: ServiceOptions,
}

#[derive(Debug, Args)]
struct GroupArgs {
    /// The enrollment group id.
    #[arg(long, value_name = "ID")]
    group_id: String,
    #[command(flatten)]
    attestation: AttestationArgs,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    service: ServiceOptions,
}

#[derive(Debug, Args)]
#[group(id = "target", required = true, multiple = false, args = ["registration_id", "group_id"])]
struct TargetArgs {
    /// An individual enrollment.
    #[arg(long, value_name = "ID")]
    registration_id: Option<String>,
    /// An enrollment group.
    #[arg(long, value_name = "ID")]
    group_id: Option<String>,
    #[command(flatten)]
    service: ServiceOptions,
}

/// Runs `dps enroll`.
pub(crate) fn run(args: &EnrollArgs) -> Result<(), CliError> {
    let answer = block_on(async {
        match &args.command {
            EnrollCommand::Individual(a) => {
                let mut body = json!({ "registrationId": a.registration_id });
                if let Some(device_id) = &a.device_id {
                    body["deviceId"] = json!(device_id);
                }
                let path = format!("/enrollments/{}", segment(&a.registration_id));
                put(
                    &a.service,
                    &path,
                    body,
                    &a.attestation,
                    &a.settings,
                    "clientCertificates",
                )
                .await
            }
            EnrollCommand::Group(a) => {
                let body = json!({ "enrollmentGroupId": a.group_id });
                let path = format!("/enrollmentGroups/{}", segment(&a.group_id));
                put(
                    &a.service,
                    &path,
                    body,
                    &a.attestation,
                    &a.settings,
                    "signingCertificates",
                )
                .await
            }
            EnrollCommand::Get(t) => {
                let connection = t.service.connect()?;
                connection.call("GET", &query(&target(t)), None, None).await
            }
            EnrollCommand::Delete(t) => {
                let connection = t.service.connect()?;
                connection
                    .call("DELETE", &query(&target(t)), None, Some("*"))
                    .await
            }
        }
    })?;
    if answer.is_null() {
        return Ok(());
    }
    print_line(&answer.to_string())
}

fn target(t: &TargetArgs) -> String {
    match (&t.registration_id, &t.group_id) {
        (Some(id), _) => format!("/enrollments/{}", segment(id)),
        (None, Some(id)) => format!("/enrollmentGroups/{}", segment(id)),
        // clap requires exactly one of them.
        (None, None) => "/enrollments/".to_owned(),
    }
}

fn query(path: &str) -> String {
    format!("{path}?api-version={API_VERSION}")
}

async fn put(
    service: &ServiceOptions,
    path: &str,
    mut body: Value,
    attestation: &AttestationArgs,
    settings: &SettingsArgs,
    certificates_member: &str,
) -> Result<Value, CliError> {
    let connection = service.connect()?;
    body["attestation"] = attestation_json(attestation, certificates_member)?;
    if !settings.iot_hubs.is_empty() {
        body["iotHubs"] = json!(settings.iot_hubs);
    }
    if let Some(twin) = &settings.initial_twin {
        body["initialTwin"] = serde_json::from_str(twin).map_err(|e| {
            CliError::invalid_input(format_args!("--initial-twin is not JSON: {e}"))
        })?;
    }
    body["provisioningStatus"] = json!(if settings.disabled {
        "disabled"
    } else {
        "enabled"
    });
    connection
        .call(
            "PUT",
            &query(path),
            Some(&body),
            settings.if_match.as_deref(),
        )
        .await
}

fn attestation_json(args: &AttestationArgs, certificates_member: &str) -> Result<Value, CliError> {
    if let Some(path) = &args.certificate {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            CliError::invalid_input(format_args!(
                "cannot read --certificate {}: {e}",
                path.display()
            ))
        })?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(CliError::invalid_input(format_args!(
                "--certificate {} is not a PEM certificate",
                path.display()
            )));
        }
        let mut x509 = serde_json::Map::new();
        x509.insert(
            certificates_member.to_owned(),
            json!({ "primary": { "certificate": pem } }),
        );
        return Ok(json!({ "type": "x509", "x509": x509 }));
    }
    let mut keys = serde_json::Map::new();
    if let Some(primary) = &args.symmetric_key {
        let primary = super::secret_argument(primary, "--symmetric-key")?;
        keys.insert("primaryKey".into(), json!(primary.trim()));
        if let Some(secondary) = &args.secondary_key {
            keys.insert("secondaryKey".into(), json!(secondary.trim()));
        }
    }
    Ok(json!({ "type": "symmetricKey", "symmetricKey": keys }))
}
