//! File upload settings: the storage account linked to the hub and the hub's upload rules.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The hub's file upload settings (`fileUpload` in the config file). With no
/// [`storage`](Self::storage) the emulator serves the blob endpoint itself, so uploads work
/// with nothing installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FileUploadConfig {
    /// Whether a storage account is linked to the hub (default true); without one the hub
    /// refuses upload requests, as IoT Hub does when file upload is not configured.
    pub enabled: bool,
    /// The container uploads go to (default `fileupload`).
    pub container_name: String,
    /// How long the blob SAS handed to a device is valid (default 3600 s; IoT Hub allows
    /// 1 minute to 24 hours).
    pub sas_ttl_seconds: u64,
    /// The most uploads a device may have in progress (default 10, IoT Hub's limit; beyond it
    /// the hub answers 403006).
    pub max_concurrent_uploads: usize,
    /// Whether a completed upload emits a file upload notification (default true).
    pub notifications: bool,
    /// An external storage account (Azurite, or Azure Storage) instead of the built-in one.
    pub storage: Option<StorageAccount>,
}

impl Default for FileUploadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            container_name: "fileupload".into(),
            sas_ttl_seconds: 3600,
            max_concurrent_uploads: 10,
            notifications: true,
            storage: None,
        }
    }
}

impl FileUploadConfig {
    /// Uploads go to `storage` instead of the built-in blob endpoint.
    #[must_use]
    pub fn with_storage(mut self, storage: StorageAccount) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Sets the SAS lifetime.
    #[must_use]
    pub fn with_sas_ttl_seconds(mut self, seconds: u64) -> Self {
        self.sas_ttl_seconds = seconds;
        self
    }

    /// Sets the concurrent upload limit per device.
    #[must_use]
    pub fn with_max_concurrent_uploads(mut self, max: usize) -> Self {
        self.max_concurrent_uploads = max;
        self
    }
}

/// An external storage account: its name, key and blob endpoint.
///
/// For Azurite: account `devstoreaccount1`, its well-known key, endpoint
/// `https://127.0.0.1:10000/devstoreaccount1` (Azurite started with `--cert` and `--key`:
/// devices only upload over TLS). Devices get the endpoint's host, port and path as the
/// `hostName` of their upload, so path-style endpoints work as they do with the official SDKs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct StorageAccount {
    /// The account name.
    pub account_name: String,
    /// The account key (base64).
    pub account_key: String,
    /// The blob endpoint, `https://host[:port][/path]`.
    pub endpoint: String,
    /// A PEM file of CA certificates to trust for the endpoint, besides the emulator's own CA
    /// and the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl StorageAccount {
    /// An account at `endpoint`.
    pub fn new(
        account_name: impl Into<String>,
        account_key: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> Self {
        Self {
            account_name: account_name.into(),
            account_key: account_key.into(),
            endpoint: endpoint.into(),
            ca_file: None,
        }
    }

    /// Also trusts the CAs in `path` for the endpoint.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

impl std::fmt::Debug for StorageAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret.
        f.debug_struct("StorageAccount")
            .field("account_name", &self.account_name)
            .field("endpoint", &self.endpoint)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}
