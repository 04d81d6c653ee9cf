//! `dps send`: send telemetry to IoT Hub as a device, and print a JSON summary.

use std::io::Write as _;
use std::time::{Duration, Instant};

use dps_auth::SymmetricKey;
use hub_client::{
    ConnectionState, Features, HubClient, HubClientBuilder, HubError, Message, MqttTransport,
    SendError, StopReason, TlsConfig, WebSocketTransport,
};

use super::token_key::TokenKeyArgs;
use super::{bad_key, print_line, secret_argument};
use crate::cli::{SendArgs, TransportKind};
use crate::exit::{CliError, ExitCode};

pub(crate) fn run(args: &SendArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(send(args))
}

async fn send(args: &SendArgs) -> Result<(), CliError> {
    let deadline = Duration::from_secs(args.timeout);
    let started = Instant::now();
    let payload = match &args.payload {
        Some(json) => Some(
            serde_json::from_str::<serde_json::Value>(json)
                .map_err(|e| CliError::invalid_input(format_args!("--payload is not JSON: {e}")))?,
        ),
        None => None,
    };
    let mut properties = Vec::new();
    for property in &args.properties {
        let Some((key, value)) = property.split_once('=') else {
            return Err(CliError::invalid_input(format_args!(
                "--property {property:?} is not KEY=VALUE"
            )));
        };
        properties.push((key.to_owned(), value.to_owned()));
    }

    let mut builder = builder(args)?
        .tls(tls(args)?)
        .features(Features::NONE)
        .initial_connect_timeout(deadline)
        .queue_capacity(usize::try_from(args.count).unwrap_or(usize::MAX).max(1));
    if let Some(endpoint) = &args.endpoint {
        builder = builder.endpoint(endpoint);
    }
    builder = match args.transport {
        TransportKind::Mqtt => builder.transport(MqttTransport::new()),
        TransportKind::Ws => builder.transport(WebSocketTransport::new()),
    };
    let hub = builder.connect().await.map_err(classify)?;

    let mut receipts = Vec::new();
    for n in 1..=args.count {
        let body = payload
            .clone()
            .unwrap_or_else(|| serde_json::json!({ "messageNumber": n }));
        let mut message = Message::json(&body)
            .map_err(|e| CliError::failure(format_args!("cannot encode the payload: {e}")))?;
        for (key, value) in &properties {
            message = message.property(key, value);
        }
        receipts.push((n, hub.try_send(message).map_err(|e| send_failed(&hub, e))?));
    }
    let remaining = deadline.saturating_sub(started.elapsed());
    let acknowledged = tokio::time::timeout(remaining, async {
        for (n, receipt) in receipts {
            receipt.await.map_err(|e| send_failed(&hub, e))?;
            progress(format_args!("sent message #{n}"));
        }
        Ok::<_, CliError>(())
    })
    .await;
    match acknowledged {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(CliError::new(
                ExitCode::Timeout,
                format_args!(
                    "{} message(s) not acknowledged within {} s",
                    hub.pending(),
                    args.timeout
                ),
            ));
        }
    }
    hub.close().await;
    let summary = serde_json::json!({
        "deviceId": hub.device_id(),
        "moduleId": hub.module_id(),
        "sent": args.count,
        "elapsedMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    print_line(&summary.to_string())
}

/// A builder from the connection string, or from the registration file and key.
fn builder(args: &SendArgs) -> Result<HubClientBuilder, CliError> {
    if let Some(cs) = &args.identity.connection_string {
        let cs = secret_argument(cs, "--connection-string")?;
        return HubClient::from_connection_string(cs.trim()).map_err(classify);
    }
    let token = TokenKeyArgs {
        key_uri: args.pkcs11.key_uri.as_deref(),
        group_key_uri: args.group_key_uri.as_deref(),
        cert: args.cert.as_deref(),
        module: args.pkcs11.pkcs11_module.as_ref(),
    };
    let Some(path) = &args.identity.from_registration else {
        return Err(CliError::invalid_input(
            "give --connection-string, or --from-registration with --symmetric-key or --key-uri",
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::invalid_input(format_args!(
            "cannot read --from-registration {}: {e}",
            path.display()
        ))
    })?;
    let registration: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CliError::invalid_input(format_args!(
            "--from-registration {} is not JSON: {e}",
            path.display()
        ))
    })?;
    let field = |name: &str| {
        registration
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                CliError::invalid_input(format_args!(
                    "--from-registration {} has no {name} (is it what `dps provision` printed?)",
                    path.display()
                ))
            })
    };
    let (hub, device_id) = (field("assignedHub")?, field("deviceId")?);
    if token.given() {
        if args.symmetric_key.is_some() {
            return Err(CliError::invalid_input(
                "--key-uri and --group-key-uri replace --symmetric-key",
            ));
        }
        let auth = token.authenticator(Some(&device_id))?;
        return Ok(HubClient::builder(hub, device_id, auth));
    }
    let Some(key) = &args.symmetric_key else {
        return Err(CliError::invalid_input(
            "--from-registration needs --symmetric-key, --key-uri or --group-key-uri",
        ));
    };
    let key = secret_argument(key, "--symmetric-key")?;
    let key = SymmetricKey::from_base64(key.trim()).map_err(|e| bad_key("--symmetric-key", e))?;
    Ok(HubClient::builder(hub, device_id, key))
}

fn tls(args: &SendArgs) -> Result<TlsConfig, CliError> {
    let tls = TlsConfig::default();
    let Some(path) = &args.ca_file else {
        return Ok(tls);
    };
    let pem = std::fs::read(path).map_err(|e| {
        CliError::invalid_input(format_args!(
            "cannot read --ca-file {}: {e}",
            path.display()
        ))
    })?;
    tls.add_root_pem(&pem)
        .map_err(|e| CliError::invalid_input(format_args!("--ca-file {}: {e}", path.display())))
}

/// The exit code and one-line message for a client that could not connect.
fn classify(error: HubError) -> CliError {
    let code = match &error {
        HubError::Refused { .. } => ExitCode::Unauthorized,
        HubError::Transport(e) if e.is_retriable() => ExitCode::Timeout,
        HubError::Transport(_) => ExitCode::Transport,
        HubError::Timeout { .. } => ExitCode::Timeout,
        HubError::ConnectionString(_) | HubError::Config(_) | HubError::Credentials(_) => {
            ExitCode::InvalidInput
        }
        _ => ExitCode::Failure,
    };
    CliError::new(code, error)
}

/// The exit code for a message that was refused or not acknowledged.
fn send_failed(hub: &HubClient, error: SendError) -> CliError {
    match hub.connection_state() {
        Some(ConnectionState::Stopped(StopReason::Refused { code })) => CliError::new(
            ExitCode::Unauthorized,
            format_args!(
                "the hub refused the device (connack {code}): check the key and that the device is enabled"
            ),
        ),
        _ => CliError::failure(format_args!("sending failed: {error}")),
    }
}

fn progress(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
