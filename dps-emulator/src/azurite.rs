//! Running **Azurite** (the Azure Storage emulator from npm) next to the emulator, as the
//! storage account linked to the hub: started on loopback over HTTPS with the emulator's own
//! server certificate (which covers `localhost` and `127.0.0.1`), so devices that trust the
//! emulator's CA trust Azurite too.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_emulator::azurite::Azurite;
//! use dps_emulator::{Emulator, EmulatorConfig, FileUploadConfig};
//!
//! let data = std::path::Path::new("./.dps-emulator");
//! let azurite = Azurite::start(data).await?;          // Azurite's blob service, HTTPS
//! let config = EmulatorConfig::new(data)
//!     .file_upload(FileUploadConfig::default().with_storage(azurite.account()));
//! let emulator = Emulator::start(config).await?;      // uploads now land in Azurite
//! # Ok(()) }
//! ```
//!
//! The `azurite-blob` program is looked up in `AZURITE_BLOB_BIN`, then in
//! `target/azurite/node_modules/.bin/` of the workspace (where `.ci/run` installs it with
//! `npm install --prefix target/azurite azurite`), then on `PATH`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::blob::StorageAccount;
use crate::tls::{SERVER_CERT_FILE, SERVER_KEY_FILE, TlsMaterial};

/// Azurite's well-known development account (public and documented; never a production key).
pub const ACCOUNT_NAME: &str = "devstoreaccount1";
/// The key of [`ACCOUNT_NAME`].
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long Azurite gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why Azurite could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzuriteError {
    /// No `azurite-blob` program was found.
    #[error(
        "azurite-blob was not found (set AZURITE_BLOB_BIN, or run `npm install --prefix target/azurite azurite`)"
    )]
    NotInstalled,
    /// The certificate or a directory could not be prepared.
    #[error("cannot prepare Azurite's files: {0}")]
    Setup(String),
    /// The program could not be started, or did not listen in time.
    #[error("Azurite did not start: {0}")]
    Start(String),
}

/// A running Azurite blob service; stopped when dropped.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    port: u16,
    ca_file: PathBuf,
}

impl Azurite {
    /// The `azurite-blob` program, if one can be found.
    #[must_use]
    pub fn find() -> Option<PathBuf> {
        if let Some(bin) = std::env::var_os("AZURITE_BLOB_BIN").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(bin));
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
        let local = workspace.join("target/azurite/node_modules/.bin/azurite-blob");
        if local.is_file() {
            return Some(local);
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("azurite-blob"))
                .find(|candidate| candidate.is_file())
        })
    }

    /// Starts Azurite's blob service on a free loopback port, storing in `data_dir/azurite`,
    /// serving HTTPS with the server certificate of the emulator data directory `data_dir`
    /// (created if missing).
    ///
    /// # Errors
    /// [`AzuriteError::NotInstalled`] when the program is missing, else why it did not start.
    pub async fn start(data_dir: &Path) -> Result<Self, AzuriteError> {
        let program = Self::find().ok_or(AzuriteError::NotInstalled)?;
        // The emulator's data directory: laid out as the emulator does it (its store first),
        // so the emulator started on it later finds its TLS material next to its store.
        crate::emulator::prepare_data_dir(data_dir)
            .map_err(|e| AzuriteError::Setup(e.to_string()))?;
        let tls = TlsMaterial::load_or_create(data_dir, "localhost")
            .map_err(|e| AzuriteError::Setup(e.to_string()))?;
        let location = data_dir.join("azurite");
        std::fs::create_dir_all(&location)
            .map_err(|e| AzuriteError::Setup(format!("{}: {e}", location.display())))?;
        // A free port: bound, read, released, then handed to Azurite.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| AzuriteError::Setup(format!("no free port: {e}")))?
            .port();
        let mut command = Command::new(&program);
        command
            .arg("--blobHost")
            .arg("127.0.0.1")
            .arg("--blobPort")
            .arg(port.to_string())
            .arg("--location")
            .arg(&location)
            .arg("--cert")
            .arg(data_dir.join(SERVER_CERT_FILE))
            .arg("--key")
            .arg(data_dir.join(SERVER_KEY_FILE))
            .arg("--silent")
            .arg("--skipApiVersionCheck")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| AzuriteError::Start(format!("{}: {e}", program.display())))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(AzuriteError::Start(format!("it exited with {status}")));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(AzuriteError::Start(format!(
                    "not listening on port {port} after {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(port, "Azurite blob service ready");
        Ok(Self {
            child,
            port,
            ca_file: tls.ca_path(),
        })
    }

    /// The blob endpoint, `https://127.0.0.1:{port}/devstoreaccount1`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT_NAME}", self.port)
    }

    /// The port of the blob service.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account to link to the hub ([`FileUploadConfig::with_storage`](crate::FileUploadConfig::with_storage)).
    #[must_use]
    pub fn account(&self) -> StorageAccount {
        StorageAccount::new(ACCOUNT_NAME, ACCOUNT_KEY, self.endpoint()).with_ca_file(&self.ca_file)
    }

    /// Stops Azurite.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
