//! `dps provision`: register a device and print its assignment as JSON.

use std::time::Duration;

use dps_auth::{Authenticator, GroupKey, SymmetricKey, X509Identity};
use dps_client::{
    MqttTransport, ProvisioningClient, ProvisioningError, TlsConfig, WebSocketTransport,
};

use super::token_key::{TokenCsr, TokenKeyArgs};
use super::{bad_key, print_line, secret_argument};
use crate::cli::{ProvisionArgs, TransportKind};
use crate::exit::{CliError, ExitCode};

pub(crate) fn run(args: &ProvisionArgs) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format_args!("cannot start the async runtime: {e}")))?;
    runtime.block_on(provision(args))
}

async fn provision(args: &ProvisionArgs) -> Result<(), CliError> {
    let mut tls = TlsConfig::default();
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            CliError::invalid_input(format_args!(
                "cannot read --ca-file {}: {e}",
                path.display()
            ))
        })?;
        tls = tls.add_root_pem(&pem).map_err(|e| {
            CliError::invalid_input(format_args!("--ca-file {}: {e}", path.display()))
        })?;
    }

    let csr = match &args.csr_out {
        Some(dir) => Some(Csr::generate(&args.registration_id, dir)?),
        None => None,
    };

    let token_csr = match &args.csr_key_uri {
        Some(uri) => Some(TokenCsr::generate(
            uri,
            args.pkcs11.pkcs11_module.as_deref(),
            &args.registration_id,
        )?),
        None => None,
    };

    let client = with_credential(args, |auth| {
        let mut client = ProvisioningClient::new(&args.id_scope, &args.registration_id, auth)
            .endpoint(&args.endpoint)
            .tls(tls.clone())
            .deadline(Duration::from_secs(args.timeout));
        if let Some(payload) = &args.payload {
            client = client.payload_json(payload);
        }
        if let Some(csr) = &csr {
            client = client.csr(&csr.der);
        }
        if let Some(csr) = &token_csr {
            client = client.csr(csr.der());
        }
        match args.transport {
            TransportKind::Mqtt => client.transport(MqttTransport::new()),
            TransportKind::Ws => client.transport(WebSocketTransport::new()),
        }
    })?;

    let assignment = client.register().await.map_err(classify)?;
    if let Some(csr) = &csr {
        csr.write_chain(assignment.issued_certificate_chain())?;
    }
    if let Some(csr) = &token_csr {
        csr.store_chain(assignment.issued_certificate_chain())?;
    }
    let json = serde_json::to_string_pretty(assignment.registration_state())
        .map_err(|e| CliError::failure(format_args!("cannot format the result: {e}")))?;
    print_line(&json)
}

fn with_credential(
    args: &ProvisionArgs,
    build: impl Fn(Box<dyn Authenticator>) -> ProvisioningClient,
) -> Result<ProvisioningClient, CliError> {
    let credential = &args.credential;
    let token = TokenKeyArgs {
        key_uri: args.pkcs11.key_uri.as_deref(),
        group_key_uri: credential.group_key_uri.as_deref(),
        cert: credential.cert.as_deref(),
        module: args.pkcs11.pkcs11_module.as_ref(),
    };
    if token.given() {
        if args.key.is_some()
            || credential.symmetric_key.is_some()
            || credential.group_key.is_some()
        {
            return Err(CliError::invalid_input(
                "--key-uri and --group-key-uri replace --key, --symmetric-key and --group-key",
            ));
        }
        return Ok(build(token.authenticator(Some(&args.registration_id))?));
    }
    if let Some(key) = &credential.symmetric_key {
        let key = secret_argument(key, "--symmetric-key")?;
        let key =
            SymmetricKey::from_base64(key.trim()).map_err(|e| bad_key("--symmetric-key", e))?;
        return Ok(build(Box::new(key)));
    }
    if let Some(key) = &credential.group_key {
        let key = secret_argument(key, "--group-key")?;
        let group = GroupKey::from_base64(key.trim()).map_err(|e| bad_key("--group-key", e))?;
        let derived = group
            .derive(&args.registration_id)
            .map_err(|e| CliError::invalid_input(format_args!("--registration-id: {e}")))?;
        return Ok(build(Box::new(derived)));
    }
    let (Some(cert), Some(key)) = (&credential.cert, &args.key) else {
        return Err(CliError::invalid_input(
            "give --symmetric-key, --group-key, --cert with --key, --key-uri or --group-key-uri",
        ));
    };
    let read = |path: &std::path::Path, option: &str| {
        std::fs::read(path).map_err(|e| {
            CliError::invalid_input(format_args!("cannot read {option} {}: {e}", path.display()))
        })
    };
    let identity = X509Identity::from_pem(&read(cert, "--cert")?, &read(key, "--key")?)
        .and_then(|identity| identity.with_registration_id_check(&args.registration_id))
        .map_err(|e| CliError::invalid_input(format_args!("--cert/--key: {e}")))?;
    Ok(build(Box::new(identity)))
}

/// The exit code and one-line message for each failure class.
fn classify(error: ProvisioningError) -> CliError {
    let code = match &error {
        ProvisioningError::Unauthorized { .. } => ExitCode::Unauthorized,
        ProvisioningError::Disabled { .. } => ExitCode::Disabled,
        ProvisioningError::Failed { .. } => ExitCode::Failed,
        ProvisioningError::Unassigned { .. } => ExitCode::Unassigned,
        ProvisioningError::Rejected { .. } => ExitCode::Rejected,
        ProvisioningError::Throttled { .. } => ExitCode::Throttled,
        ProvisioningError::Timeout { .. } => ExitCode::Timeout,
        ProvisioningError::Transport(_) | ProvisioningError::Unreachable { .. } => {
            ExitCode::Transport
        }
        ProvisioningError::Credentials(_) | ProvisioningError::Config(_) => ExitCode::InvalidInput,
        _ => ExitCode::Failure,
    };
    CliError::new(code, error)
}

/// A generated key pair and CSR for certificate issuance.
struct Csr {
    der: Vec<u8>,
    key_pem: String,
    dir: std::path::PathBuf,
    registration_id: String,
}

impl Csr {
    fn generate(registration_id: &str, dir: &std::path::Path) -> Result<Self, CliError> {
        let key = rcgen::KeyPair::generate()
            .map_err(|e| CliError::failure(format_args!("cannot generate a key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CliError::failure(format_args!("cannot build the CSR: {e}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, registration_id);
        let csr = params
            .serialize_request(&key)
            .map_err(|e| CliError::failure(format_args!("cannot build the CSR: {e}")))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failure(format_args!("cannot create {}: {e}", dir.display())))?;
        Ok(Self {
            der: csr.der().to_vec(),
            key_pem: key.serialize_pem(),
            dir: dir.to_owned(),
            registration_id: registration_id.to_owned(),
        })
    }

    fn write_chain(&self, chain: &[String]) -> Result<(), CliError> {
        use base64::Engine as _;
        if chain.is_empty() {
            return Err(CliError::new(
                ExitCode::Failed,
                "the service issued no certificate",
            ));
        }
        let mut pem = String::new();
        for cert in chain {
            let der = base64::engine::general_purpose::STANDARD
                .decode(cert)
                .map_err(|_| {
                    CliError::new(ExitCode::Failed, "the issued certificate is not base64")
                })?;
            pem.push_str("-----BEGIN CERTIFICATE-----\n");
            let text = base64::engine::general_purpose::STANDARD.encode(der);
            for line in text.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap_or_default());
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
        }
        let write = |name: String, text: &str, private: bool| {
            let path = self.dir.join(name);
            write_file(&path, text, private).map_err(|e| {
                CliError::failure(format_args!("cannot write {}: {e}", path.display()))
            })
        };
        // The private key is readable by its owner only (#11).
        write(
            format!("{}.key.pem", self.registration_id),
            &self.key_pem,
            true,
        )?;
        write(format!("{}.cert.pem", self.registration_id), &pem, false)
    }
}

/// Writes `text` to `path`; a `private` file is owner-only (mode 0600 on Unix) from the moment
/// it exists, and an existing file is narrowed to that mode too.
fn write_file(path: &std::path::Path, text: &str, private: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        // `mode` applies only when the file is created.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_csr_private_key_is_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("dev-1.key.pem");
        // An earlier, world-readable file is narrowed too.
        std::fs::write(&key_path, "old").unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let csr = Csr::generate("dev-1", dir.path()).unwrap();
        csr.write_chain(&["AAEC".to_owned()]).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_path), 0o600);
        assert!(
            std::fs::read_to_string(&key_path)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert!(dir.path().join("dev-1.cert.pem").exists());
    }
}
