//! `dps upload`: upload a file (or standard input) through a device's hub and print the blob's
//! URL.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hub_client::upload::{FileUploader, UploadError};
use hub_client::{ConnectionString, ProxyConfig, TlsConfig};

use super::{print_line, secret_argument};
use crate::exit::{CliError, ExitCode};

/// Arguments of `dps upload`.
#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// The file to upload; `-` reads standard input (then --name is required).
    #[arg(value_name = "PATH")]
    pub(crate) path: PathBuf,
    /// The device connection string (`HostName=..;DeviceId=..;SharedAccessKey=..`); `-` reads
    /// the first line of standard input (not with `-` as PATH).
    #[arg(long, value_name = "CS")]
    pub(crate) connection_string: String,
    /// The blob name (the hub stores it under the device id); default: the file's name.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Send the hub requests to `HOST[:PORT]` (the local emulator's HTTPS port, a gateway);
    /// the token still names the hub.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub(crate) endpoint: Option<String>,
    /// An extra trusted root (PEM), e.g. the emulator's ca.pem; the public roots stay trusted.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Reach the hub and the storage account through this HTTP proxy
    /// (`http://[user:pass@]host:port`).
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,
    /// The block size in bytes: larger content goes in blocks of it.
    #[arg(long, value_name = "BYTES", default_value_t = hub_client::upload::DEFAULT_BLOCK_SIZE)]
    pub(crate) block_size: usize,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub(crate) timeout: u64,
}

pub(crate) fn run(args: &UploadArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(upload(args))
}

async fn upload(args: &UploadArgs) -> Result<(), CliError> {
    let from_stdin = args.path.as_os_str() == "-";
    if from_stdin && args.connection_string == "-" {
        return Err(CliError::invalid_input(
            "standard input cannot hold both the content and --connection-string",
        ));
    }
    let name = match (&args.name, from_stdin) {
        (Some(name), _) => name.clone(),
        (None, true) => {
            return Err(CliError::invalid_input(
                "--name is required when the content comes from standard input",
            ));
        }
        (None, false) => args
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| CliError::invalid_input("PATH has no usable file name: give --name"))?,
    };
    let cs = secret_argument(&args.connection_string, "--connection-string")?;
    let cs: ConnectionString = cs
        .trim()
        .parse()
        .map_err(|e| CliError::invalid_input(format_args!("--connection-string: {e}")))?;
    if cs.module_id().is_some() {
        return Err(CliError::invalid_input(
            "file upload is for devices: the hub offers it to no module identity",
        ));
    }
    let mut builder = FileUploader::builder(cs.host_name(), cs.device_id(), cs.key().clone())
        .tls(tls(args)?)
        .block_size(args.block_size)
        .on_progress(|p| progress(format_args!("{} bytes stored", p.bytes_uploaded)));
    if let Some(endpoint) = args.endpoint.as_deref().or(cs.gateway_host_name()) {
        builder = builder.endpoint(endpoint);
    }
    if let Some(proxy) = &args.proxy {
        builder = builder.proxy(ProxyConfig::new(proxy));
    }
    let uploader = builder.build().map_err(classify)?;

    let work = async {
        if from_stdin {
            uploader.upload_file(&name, tokio::io::stdin()).await
        } else {
            uploader.upload_path(&name, &args.path).await
        }
    };
    let uploaded = tokio::time::timeout(Duration::from_secs(args.timeout), work)
        .await
        .map_err(|_| {
            CliError::new(
                ExitCode::Timeout,
                format_args!("the upload did not finish within {} s", args.timeout),
            )
        })?
        .map_err(classify)?;
    progress(format_args!(
        "uploaded {} bytes as {}",
        uploaded.size, uploaded.blob_name
    ));
    print_line(&uploaded.blob_url)
}

fn tls(args: &UploadArgs) -> Result<TlsConfig, CliError> {
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

/// The exit code and one-line message of a failed upload.
fn classify(error: UploadError) -> CliError {
    let code = match &error {
        UploadError::Hub { status: 401, .. } => ExitCode::Unauthorized,
        UploadError::Transport { source, .. } if source.is_retriable() => ExitCode::Timeout,
        UploadError::Transport { .. } => ExitCode::Transport,
        UploadError::Timeout { .. } => ExitCode::Timeout,
        UploadError::Config(_) | UploadError::Credentials(_) | UploadError::Read(_) => {
            ExitCode::InvalidInput
        }
        _ => ExitCode::Failure,
    };
    CliError::new(code, error)
}

fn progress(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
