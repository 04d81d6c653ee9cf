//! The hub's file upload endpoints, device side (IoT Hub REST API `2021-04-12`, "Create File
//! Upload Sas Uri" and "Update File Upload Status"):
//!
//! - `POST /devices/{id}/files` with `{"blobName": ..}`: a blob SAS URI for
//!   `{deviceId}/{blobName}` in the linked account's upload container, valid for the configured
//!   TTL; at most `maxConcurrentUploads` (10, as IoT Hub) uploads in progress per device, then
//!   403006 ("Number of active file upload requests cannot exceed 10", service-behaviour §error
//!   codes).
//! - `POST /devices/{id}/files/notifications` with `correlationId`, `isSuccess`, `statusCode`,
//!   `statusDescription`: releases the correlation; a successful upload emits a file upload
//!   notification to the service side (the events feed, kind `fileUpload`, and
//!   [`Emulator::file_upload_notifications`](crate::Emulator::file_upload_notifications)).
//!
//! Both are authenticated as the device's MQTT CONNECT is: a SAS token for `{hub}/devices/{id}`
//! in `Authorization`, or the device's X.509 client certificate.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use dps_core::sas::ParsedSas;
use http::{Method, StatusCode};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::connect::{self, AuthContext, HubUsername};
use crate::blob::api::BlobApi;
use crate::blob::remote::{RemoteAccount, encode_path};
use crate::blob::{BUILTIN_ACCOUNT, FileUploadConfig, sas};
use crate::hub::events::{HubEvent, HubEventKind};
use crate::hub::runtime::HubRuntime;
use crate::net::{HttpRequest, HttpResponse};
use crate::rest::ServiceFailure;
use crate::util::time;

/// The file upload notification the hub sends to the service side when a device reports a
/// successful upload (the body of the service SDKs' `FileNotification`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FileUploadNotification {
    /// The device that uploaded.
    pub device_id: String,
    /// The blob's URL (without a SAS).
    pub blob_uri: String,
    /// The blob's name in the container (`{deviceId}/{name}`).
    pub blob_name: String,
    /// When the device reported the upload.
    pub last_updated_time: String,
    /// The blob's size.
    pub blob_size_in_bytes: u64,
    /// When the hub enqueued the notification.
    pub enqueued_time_utc: String,
}

/// Where uploads go.
pub(crate) enum UploadStorage {
    /// The emulator's own blob endpoint; `hostName` is set once the HTTPS port is known.
    Builtin {
        api: Arc<BlobApi>,
        host_name: OnceLock<String>,
    },
    /// An external account (Azurite).
    Remote(RemoteAccount),
}

/// One upload in progress.
#[derive(Debug, Clone)]
struct Pending {
    device: String,
    blob_name: String,
    expires_unix: u64,
}

/// The file upload endpoints and their state.
pub(crate) struct FileUploadApi {
    runtime: Arc<HubRuntime>,
    config: FileUploadConfig,
    storage: UploadStorage,
    /// Uploads in progress by correlation id.
    pending: Mutex<HashMap<String, Pending>>,
    /// CAs trusted for `certificateAuthority` identities (as for CONNECT).
    trusted_cas: Vec<CertificateDer<'static>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SasUriRequest {
    blob_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusUpdate {
    correlation_id: Option<String>,
    #[serde(default)]
    is_success: bool,
    #[serde(default)]
    status_code: Option<i64>,
    #[serde(default)]
    status_description: Option<String>,
}

/// The parsed path: device and whether it is the notification.
fn parse_path(path: &str) -> Option<(&str, bool)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["devices", id, "files"] => Some((id, false)),
        ["devices", id, "files", "notifications"] => Some((id, true)),
        _ => None,
    }
}

impl FileUploadApi {
    pub(crate) fn new(
        runtime: Arc<HubRuntime>,
        config: FileUploadConfig,
        storage: UploadStorage,
        trusted_cas: Vec<CertificateDer<'static>>,
    ) -> Self {
        if let UploadStorage::Builtin { api, .. } = &storage {
            api.store.create_container(&config.container_name);
        }
        Self {
            runtime,
            config,
            storage,
            pending: Mutex::new(HashMap::new()),
            trusted_cas,
        }
    }

    /// Whether `request` is a file upload request (they share `/devices` with the service API).
    pub(crate) fn serves(request: &HttpRequest) -> bool {
        request.method == Method::POST
            && request
                .decoded_path()
                .is_some_and(|p| parse_path(&p).is_some())
    }

    /// The built-in blob endpoint, if uploads go there.
    pub(crate) fn builtin(&self) -> Option<&Arc<BlobApi>> {
        match &self.storage {
            UploadStorage::Builtin { api, .. } => Some(api),
            UploadStorage::Remote(_) => None,
        }
    }

    /// Tells the built-in storage its public `host[:port]`.
    pub(crate) fn set_https_host(&self, host: &str) {
        if let UploadStorage::Builtin { api, host_name } = &self.storage {
            let _ = host_name.set(format!("{host}/{}", api.account));
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Uploads in progress of a device (expired ones no longer count).
    pub(crate) fn active(&self, hub: &str, device_id: &str) -> usize {
        let owner = owner(hub, device_id);
        let now = time::unix_now();
        let mut pending = self.lock();
        pending.retain(|_, p| p.expires_unix >= now);
        pending.values().filter(|p| p.device == owner).count()
    }

    pub(crate) async fn handle(&self, request: HttpRequest) -> HttpResponse {
        match self.route(&request).await {
            Ok(response) => response,
            Err(failure) => {
                tracing::info!(path = %request.path, status = failure.status, "file upload request refused: {}", failure.message);
                failure.to_response()
            }
        }
    }

    /// Authenticates the device from the request line and headers alone, before its body is
    /// read (the transport's rule: nobody unauthenticated makes the emulator hold a body).
    pub(crate) fn authorize(&self, request: &HttpRequest) -> Result<(), ServiceFailure> {
        let path = request
            .decoded_path()
            .ok_or_else(|| ServiceFailure::bad_request("the path is not valid"))?;
        let (device_id, _) =
            parse_path(&path).ok_or_else(|| ServiceFailure::not_found(404_000, "not found"))?;
        self.authenticate(request, device_id).map(drop)
    }

    async fn route(&self, request: &HttpRequest) -> Result<HttpResponse, ServiceFailure> {
        let path = request
            .decoded_path()
            .ok_or_else(|| ServiceFailure::bad_request("the path is not valid"))?;
        let (device_id, notification) =
            parse_path(&path).ok_or_else(|| ServiceFailure::not_found(404_000, "not found"))?;
        let hub = self.authenticate(request, device_id)?;
        if notification {
            self.notify(&hub, device_id, request).await
        } else {
            self.create_sas_uri(&hub, device_id, request).await
        }
    }

    /// Authenticates the device as CONNECT does; the hub it belongs to.
    fn authenticate(
        &self,
        request: &HttpRequest,
        device_id: &str,
    ) -> Result<String, ServiceFailure> {
        let token = request
            .header(http::header::AUTHORIZATION)
            .filter(|t| !t.is_empty());
        let host = match token.and_then(|t| ParsedSas::parse(t).ok()) {
            Some(parsed) => parsed
                .resource()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
            None => request
                .header(http::header::HOST)
                .map(|h| h.split(':').next().unwrap_or(h).to_owned())
                .unwrap_or_default(),
        };
        let unauthorized = |reason: String| ServiceFailure::new(401, 401_002, reason);
        let hub = self
            .runtime
            .hub_name(&host)
            .or_else(|| token.is_none().then(|| self.runtime.default_hub()))
            .ok_or_else(|| unauthorized(format!("{host:?} is not a hub of this emulator")))?
            .to_owned();
        let username = HubUsername {
            host: &host,
            device_id,
            module_id: None,
        };
        self.runtime
            .store
            .read(|data| {
                let ctx = AuthContext {
                    data,
                    hub: &hub,
                    trusted_cas: &self.trusted_cas,
                    now_unix: time::unix_now(),
                };
                connect::authenticate(
                    &ctx,
                    &username,
                    device_id,
                    token,
                    &request.peer_certificates,
                )
            })
            .map_err(|refusal| unauthorized(refusal.to_string()))?;
        Ok(hub)
    }

    async fn create_sas_uri(
        &self,
        hub: &str,
        device_id: &str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ServiceFailure> {
        if !self.config.enabled {
            return Err(ServiceFailure::bad_request(
                "file upload is not configured: no storage account is linked to the hub",
            ));
        }
        let input: SasUriRequest = serde_json::from_slice(&request.body).map_err(|e| {
            ServiceFailure::bad_request(format!("the request body is not valid: {e}"))
        })?;
        let name = input.blob_name.unwrap_or_default();
        if name.is_empty() || name.len() > 1024 || name.ends_with('/') || name.contains('\\') {
            return Err(ServiceFailure::bad_request(
                "blobName must be 1 to 1024 characters, not end with '/' and hold no '\\'",
            ));
        }
        let blob_name = format!("{device_id}/{name}");
        let container = self.config.container_name.clone();
        let (account, key, host_name) = match &self.storage {
            UploadStorage::Builtin { api, host_name } => (
                api.account.clone(),
                api.key.clone(),
                host_name.get().cloned().unwrap_or_default(),
            ),
            UploadStorage::Remote(remote) => {
                remote.ensure_container(&container).await.map_err(|e| {
                    ServiceFailure::new(500, 500_001, format!("the linked storage account: {e}"))
                })?;
                (
                    remote.account.clone(),
                    remote.key.clone(),
                    remote.host_name(),
                )
            }
        };
        let now = time::unix_now();
        let expires_unix = now + self.config.sas_ttl_seconds;
        let correlation_id = {
            let owner = owner(hub, device_id);
            let mut pending = self.lock();
            pending.retain(|_, p| p.expires_unix >= now);
            let active = pending.values().filter(|p| p.device == owner).count();
            if active >= self.config.max_concurrent_uploads {
                return Err(ServiceFailure::new(
                    403,
                    403_006,
                    format!(
                        "Number of active file upload requests cannot exceed {}",
                        self.config.max_concurrent_uploads
                    ),
                ));
            }
            let id = correlation_id();
            pending.insert(
                id.clone(),
                Pending {
                    device: owner,
                    blob_name: blob_name.clone(),
                    expires_unix,
                },
            );
            id
        };
        let token = sas::blob_sas(&account, &key, &container, &blob_name, "rw", expires_unix)
            .map_err(|e| ServiceFailure::new(500, 500_001, e))?;
        tracing::info!(hub, device_id, blob = %blob_name, "file upload started");
        Ok(HttpResponse::json(
            StatusCode::OK,
            &json!({
                "correlationId": correlation_id,
                "hostName": host_name,
                "containerName": container,
                "blobName": blob_name,
                "sasToken": format!("?{token}"),
            }),
        ))
    }

    async fn notify(
        &self,
        hub: &str,
        device_id: &str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ServiceFailure> {
        let update: StatusUpdate = serde_json::from_slice(&request.body).map_err(|e| {
            ServiceFailure::bad_request(format!("the request body is not valid: {e}"))
        })?;
        let correlation_id = update.correlation_id.unwrap_or_default();
        let owner = owner(hub, device_id);
        let pending = {
            let mut pending = self.lock();
            match pending.get(&correlation_id) {
                Some(p) if p.device == owner => pending.remove(&correlation_id),
                _ => None,
            }
        };
        let pending = pending.ok_or_else(|| {
            ServiceFailure::bad_request(format!(
                "correlation id {correlation_id:?} is not an upload in progress of this device"
            ))
        })?;
        tracing::info!(
            hub,
            device_id,
            blob = %pending.blob_name,
            success = update.is_success,
            status_code = update.status_code.unwrap_or_default(),
            description = update.status_description.as_deref().unwrap_or_default(),
            "file upload finished"
        );
        if update.is_success && self.config.notifications {
            let size = self.blob_size(&pending.blob_name).await;
            self.emit(hub, device_id, &pending.blob_name, size);
        }
        Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
    }

    /// A blob of the upload container, from whichever storage is linked.
    pub(crate) async fn download(
        &self,
        container: &str,
        blob_name: &str,
    ) -> Result<Option<Vec<u8>>, ServiceFailure> {
        match &self.storage {
            UploadStorage::Builtin { api, .. } => Ok(api
                .store
                .get(container, blob_name)
                .map(|b| b.content.to_vec())),
            UploadStorage::Remote(remote) => remote
                .download(container, blob_name)
                .await
                .map(|b| b.map(|b| b.to_vec()))
                .map_err(|e| {
                    ServiceFailure::new(500, 500_001, format!("the linked storage account: {e}"))
                }),
        }
    }

    async fn blob_size(&self, blob_name: &str) -> u64 {
        let container = &self.config.container_name;
        match &self.storage {
            UploadStorage::Builtin { api, .. } => api
                .store
                .get(container, blob_name)
                .map_or(0, |b| b.content.len() as u64),
            UploadStorage::Remote(remote) => match remote.blob_size(container, blob_name).await {
                Ok(size) => size.unwrap_or(0),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the uploaded blob's size failed");
                    0
                }
            },
        }
    }

    fn blob_uri(&self, blob_name: &str) -> String {
        let host = match &self.storage {
            UploadStorage::Builtin { host_name, .. } => {
                host_name.get().cloned().unwrap_or_default()
            }
            UploadStorage::Remote(remote) => remote.host_name(),
        };
        format!(
            "https://{host}/{}/{}",
            self.config.container_name,
            encode_path(blob_name)
        )
    }

    fn emit(&self, hub: &str, device_id: &str, blob_name: &str, size: u64) {
        let now = time::now_utc();
        let notification = FileUploadNotification {
            device_id: device_id.to_owned(),
            blob_uri: self.blob_uri(blob_name),
            blob_name: blob_name.to_owned(),
            last_updated_time: now.clone(),
            blob_size_in_bytes: size,
            enqueued_time_utc: now.clone(),
        };
        let body = serde_json::to_vec(&notification).unwrap_or_default();
        let mut system = BTreeMap::new();
        system.insert("iothub-enqueuedtime".to_owned(), now.clone());
        system.insert(
            "iothub-message-source".to_owned(),
            "fileNotifications".to_owned(),
        );
        system.insert("contentType".to_owned(), "application/json".to_owned());
        self.runtime.events.push(HubEvent {
            sequence_number: 0,
            hub: hub.to_owned(),
            kind: HubEventKind::FileUpload,
            device_id: device_id.to_owned(),
            module_id: None,
            enqueued_time: now,
            system_properties: system,
            properties: BTreeMap::new(),
            body,
        });
    }
}

/// The file upload endpoints as configured: the external account when one is set, else the
/// built-in blob endpoint (account [`BUILTIN_ACCOUNT`], signed with the service key).
pub(crate) fn files_api(
    config: &crate::config::EmulatorConfig,
    service_key: &dps_auth::SymmetricKey,
    runtime: &Arc<HubRuntime>,
    ca: &CertificateDer<'static>,
) -> Result<FileUploadApi, crate::EmulatorError> {
    let settings = config.file.file_upload.clone();
    let storage = match &settings.storage {
        Some(account) => UploadStorage::Remote(
            RemoteAccount::new(account, ca).map_err(crate::EmulatorError::FileUpload)?,
        ),
        None => UploadStorage::Builtin {
            api: Arc::new(BlobApi {
                account: BUILTIN_ACCOUNT.to_owned(),
                key: service_key.clone(),
                store: Arc::default(),
            }),
            host_name: OnceLock::new(),
        },
    };
    Ok(FileUploadApi::new(
        Arc::clone(runtime),
        settings,
        storage,
        vec![ca.clone()],
    ))
}

fn owner(hub: &str, device_id: &str) -> String {
    format!("{}/{device_id}", hub.to_ascii_lowercase())
}

fn correlation_id() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/devices/d1/files"), Some(("d1", false)));
        assert_eq!(
            parse_path("/devices/d1/files/notifications"),
            Some(("d1", true))
        );
        assert_eq!(parse_path("/devices/d1"), None);
        assert_eq!(parse_path("/devices/d1/files/x"), None);
    }
}
