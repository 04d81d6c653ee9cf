//! Emulator settings: network, identity, behaviour knobs, and preloaded enrollments.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blob::FileUploadConfig;
use crate::dps::device::faults::Faults;
use crate::model::{EnrollmentGroup, IndividualEnrollment};

/// The id scope used when none is configured (fixed so that scripts can rely on it).
pub const DEFAULT_ID_SCOPE: &str = "0ne00000001";

/// How the emulated DPS behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Behaviour {
    /// The `retry-after` sent with 202 answers (default 3 s).
    pub retry_after_seconds: u32,
    /// How many operation-status polls it takes to get the result: 1 (the default) answers the
    /// first poll with it, 2 answers one poll `assigning` first, and so on; 0 answers the
    /// registration request itself with the result.
    pub polls_before_assignment: u32,
    /// Injected faults (all off by default).
    pub faults: Faults,
    /// Resource limits that keep unauthenticated or misbehaving clients from exhausting the
    /// emulator.
    pub limits: Limits,
    /// The lifetime of certificates the emulator issues, by DPS for a CSR and by the hubs over
    /// `$iothub/credentials`, in seconds (default 365 days).
    pub certificate_lifetime_seconds: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            retry_after_seconds: 3,
            polls_before_assignment: 1,
            faults: Faults::default(),
            limits: Limits::default(),
            certificate_lifetime_seconds: crate::certificates::DEFAULT_LIFETIME.as_secs(),
        }
    }
}

/// Resource limits (`behaviour.limits` in the config file). The defaults admit the load tests'
/// fleets (thousands of devices in flight) while bounding what a client that never
/// authenticates, never finishes a request or never reads can hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections on both ports together; beyond, new connections are closed at once
    /// (default 50,000).
    pub max_connections: usize,
    /// Connections that have not authenticated yet (TLS handshake, MQTT CONNECT, or an HTTP
    /// request with a valid token still to come); beyond, new connections are closed at once
    /// (default 10,000).
    pub max_unauthenticated_connections: usize,
    /// Time a client gets to send a request's headers (default 30 s).
    pub http_header_timeout_seconds: u64,
    /// Time a client gets to send a request's body (default 30 s).
    pub http_body_timeout_seconds: u64,
    /// Time a write may wait for a client that does not read, on HTTPS and MQTT, before the
    /// connection is closed (default 30 s).
    pub write_timeout_seconds: u64,
    /// Largest first packet (CONNECT) accepted on MQTT before authentication; a larger one
    /// closes the connection without being read (default 16 KiB; a CONNECT is well under 2).
    pub max_connect_packet_size: usize,
    /// Silence after which a connection with MQTT keep-alive 0 ("no keep-alive") is closed
    /// (default 1,800 s; connections with a keep-alive use 1.5 × keep-alive).
    pub idle_timeout_seconds: u64,
    /// Registration ids of devices that match no enrollment whose request counts are kept;
    /// the oldest is forgotten beyond (default 10,000).
    pub max_unknown_registration_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_unauthenticated_connections: 10_000,
            http_header_timeout_seconds: 30,
            http_body_timeout_seconds: 30,
            write_timeout_seconds: 30,
            max_connect_packet_size: 16 * 1024,
            idle_timeout_seconds: 1800,
            max_unknown_registration_ids: 10_000,
        }
    }
}

/// The contents of `--config FILE` (JSON or TOML).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Hubs linked to the DPS instance (default: the emulator's host name).
    pub linked_hubs: Vec<String>,
    /// Behaviour knobs.
    pub behaviour: Behaviour,
    /// Individual enrollments to create (or replace) at start.
    pub enrollments: Vec<IndividualEnrollment>,
    /// Enrollment groups to create (or replace) at start.
    pub enrollment_groups: Vec<EnrollmentGroup>,
    /// The hub's file upload settings (the linked storage account and the upload rules).
    pub file_upload: FileUploadConfig,
}

impl ConfigFile {
    /// Reads a JSON (`.json`) or TOML (anything else) file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })
        } else {
            toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Everything needed to start an emulator. Defaults suit tests: loopback, ephemeral ports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmulatorConfig {
    /// Address to listen on (default 127.0.0.1).
    pub bind: IpAddr,
    /// The DPS endpoint name and the default hub name (default `localhost`).
    pub hostname: String,
    /// MQTT over TLS port (0 = ephemeral).
    pub mqtt_port: u16,
    /// HTTPS port: MQTT over WebSocket and the REST APIs (0 = ephemeral).
    pub https_port: u16,
    /// Where state, keys and the CA live.
    pub data_dir: PathBuf,
    /// The DPS id scope.
    pub id_scope: String,
    /// The base64 shared access key of `provisioningserviceowner` and `iothubowner`; generated
    /// and saved in the data dir when `None`.
    pub service_key: Option<String>,
    /// Behaviour, linked hubs and preloaded enrollments.
    pub file: ConfigFile,
}

impl EmulatorConfig {
    /// Defaults for an in-process emulator storing its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            hostname: "localhost".into(),
            mqtt_port: 0,
            https_port: 0,
            data_dir: data_dir.into(),
            id_scope: DEFAULT_ID_SCOPE.into(),
            service_key: None,
            file: ConfigFile::default(),
        }
    }

    /// Sets the behaviour knobs.
    #[must_use]
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.file.behaviour = behaviour;
        self
    }

    /// Sets the linked hubs.
    #[must_use]
    pub fn linked_hubs(mut self, hubs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.file.linked_hubs = hubs.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the hub's file upload settings (e.g. an Azurite account instead of the built-in
    /// blob endpoint).
    #[must_use]
    pub fn file_upload(mut self, file_upload: FileUploadConfig) -> Self {
        self.file.file_upload = file_upload;
        self
    }

    /// The linked hubs, defaulting to the host name.
    pub(crate) fn hubs(&self) -> Vec<String> {
        if self.file.linked_hubs.is_empty() {
            vec![self.hostname.clone()]
        } else {
            self.file.linked_hubs.clone()
        }
    }
}
