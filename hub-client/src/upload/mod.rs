//! File upload through the hub (feature `file-upload`, on by default): the device asks its hub
//! for a blob SAS URI, uploads the content to that blob with the Azure Blob REST API, and tells
//! the hub how it went, which releases the upload and, on success, lets the hub notify the
//! service side.
//!
//! [`FileUploader::upload_file`] does the three steps in one call; the steps stay available
//! ([`create_sas_uri`](FileUploader::create_sas_uri),
//! [`upload_to_blob`](FileUploader::upload_to_blob), [`notify`](FileUploader::notify)) for a
//! device that uploads with its own code.
//!
//! Everything runs over HTTPS on port 443 with the device's own TLS policy ([`TlsConfig`]),
//! through the same HTTP proxy as the WebSocket transport when one is set, with the device's
//! credentials: a SAS token minted by its [`Authenticator`] for every hub request, or its X.509
//! client certificate in the TLS handshake. The storage account is reached with the blob SAS the
//! hub handed out. Neither token ever appears in logs, errors or `Debug` output.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_auth::SymmetricKey;
//! use hub_client::upload::FileUploader;
//!
//! let key = SymmetricKey::from_base64("c2VjcmV0LWtleS1vZi10aGUtZGV2aWNl")?;
//! let uploader = FileUploader::builder("my-hub.azure-devices.net", "my-device", key)
//!     .on_progress(|p| println!("{} bytes", p.bytes_uploaded))
//!     .build()?;
//! let file = tokio::fs::File::open("/var/log/device.log").await?;
//! let uploaded = uploader.upload_file("logs/device.log", file).await?;
//! println!("uploaded {} bytes to {}", uploaded.size, uploaded.blob_url);
//! # Ok(()) }
//! ```

mod blob;
mod error;
mod https;
mod hub_api;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dps_auth::{Authenticator, Credentials, X509Identity};
use dps_core::sas::SasResource;
use dps_transport_mqtt::TlsConfig;
use dps_transport_mqtt::net::Endpoint;
use dps_transport_ws::ProxyConfig;
use http::{Request, Response};
use http_body_util::Full;
use tokio::io::AsyncRead;

pub use blob::UploadProgress;
pub use error::UploadError;
pub use hub_api::{FILE_UPLOAD_API_VERSION, StorageInfo, UploadStatus};

use blob::{BlobOptions, MAX_BLOCK_SIZE, ProgressFn};
use https::Dialer;

/// The default block size: content up to this size goes in one Put Blob.
pub const DEFAULT_BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// The proxy of a hub transport, if it is a `WebSocketTransport` going through one: file
/// uploads take the same way out.
pub(crate) fn proxy_of(transport: &dyn std::any::Any) -> Option<ProxyConfig> {
    transport
        .downcast_ref::<dps_transport_ws::WebSocketTransport>()
        .and_then(|t| t.proxy().cloned())
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadedBlob {
    /// The blob's URL, without a SAS.
    pub blob_url: String,
    /// The blob's name in the container (`{deviceId}/{name}`).
    pub blob_name: String,
    /// The number of bytes uploaded.
    pub size: u64,
    /// The hub's correlation id of the upload.
    pub correlation_id: String,
}

/// Uploads files through a device's hub. Cheap to clone.
///
/// See the [module docs](self) for the flow and an example.
#[derive(Clone)]
pub struct FileUploader {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    device_id: String,
    endpoint: Endpoint,
    authenticator: Arc<dyn Authenticator>,
    dialer: Dialer,
    blob: BlobOptions,
}

impl fmt::Debug for FileUploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileUploader")
            .field("host", &self.inner.host)
            .field("device_id", &self.inner.device_id)
            .field("endpoint", &self.inner.endpoint.authority())
            .field("proxy", &self.inner.dialer.proxy)
            .field("block_size", &self.inner.blob.block_size)
            .finish_non_exhaustive()
    }
}

impl FileUploader {
    /// A builder for `device_id` of the hub `host`, authenticating with `authenticator` (a
    /// [`SymmetricKey`](dps_auth::SymmetricKey), an [`X509Identity`], or any [`Authenticator`]).
    pub fn builder(
        host: impl Into<String>,
        device_id: impl Into<String>,
        authenticator: impl Authenticator + 'static,
    ) -> FileUploaderBuilder {
        FileUploaderBuilder::new(host.into(), device_id.into(), Arc::new(authenticator))
    }

    /// [`builder`](Self::builder) with a shared authenticator (the one a
    /// [`HubClient`](crate::HubClient) already holds).
    pub fn builder_shared(
        host: impl Into<String>,
        device_id: impl Into<String>,
        authenticator: Arc<dyn Authenticator>,
    ) -> FileUploaderBuilder {
        FileUploaderBuilder::new(host.into(), device_id.into(), authenticator)
    }

    /// The device id.
    #[must_use]
    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    /// Step 1: asks the hub for a blob SAS URI for `blob_name` (the hub stores it under the
    /// device id). At most ten uploads may be in progress per device; the eleventh request
    /// gets [`UploadError::Hub`] with error code 403006.
    ///
    /// # Errors
    /// [`UploadError::Hub`] when the hub refuses, network and credential errors otherwise.
    pub async fn create_sas_uri(&self, blob_name: &str) -> Result<StorageInfo, UploadError> {
        if blob_name.is_empty() {
            return Err(UploadError::Config("the blob name is empty".into()));
        }
        let response = self
            .hub_call(|authorization| {
                hub_api::sas_uri_request(&self.inner.device_id, blob_name, authorization)
            })
            .await?;
        let info = hub_api::parse_sas_uri(response.status(), response.body())?;
        tracing::debug!(blob = %info.blob_name, host = %info.host_name, "blob SAS URI received");
        Ok(info)
    }

    /// Step 2: uploads everything `reader` yields to the blob of `target`, in blocks when it
    /// is larger than the block size, retrying a block on a transient failure; the number of
    /// bytes uploaded.
    ///
    /// # Errors
    /// [`UploadError::Blob`] when the storage account refuses, [`UploadError::Read`] when the
    /// content cannot be read, network errors.
    pub async fn upload_to_blob<R>(
        &self,
        target: &StorageInfo,
        reader: &mut R,
    ) -> Result<u64, UploadError>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        blob::upload(&self.inner.dialer, target, reader, &self.inner.blob).await
    }

    /// Step 3: tells the hub how the upload of `correlation_id` ended. Do it on failure too:
    /// it releases the upload (ten may be in progress per device).
    ///
    /// # Errors
    /// [`UploadError::Hub`] when the hub refuses (an unknown correlation id), network and
    /// credential errors otherwise.
    pub async fn notify(
        &self,
        correlation_id: &str,
        status: &UploadStatus,
    ) -> Result<(), UploadError> {
        let response = self
            .hub_call(|authorization| {
                hub_api::notification_request(
                    &self.inner.device_id,
                    correlation_id,
                    status,
                    authorization,
                )
            })
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(hub_api::hub_error(response.status(), response.body()))
        }
    }

    /// The three steps in one call: a SAS URI for `blob_name`, the upload of everything
    /// `reader` yields (a file, a socket, any [`AsyncRead`]), and the notification, which is
    /// sent on failure too.
    ///
    /// # Errors
    /// The first step's error, the upload's error (after the failure was notified), or the
    /// notification's error.
    #[tracing::instrument(name = "file_upload", skip_all, fields(device_id = %self.inner.device_id, blob = %blob_name))]
    pub async fn upload_file<R>(
        &self,
        blob_name: &str,
        mut reader: R,
    ) -> Result<UploadedBlob, UploadError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let target = self.create_sas_uri(blob_name).await?;
        match self.upload_to_blob(&target, &mut reader).await {
            Ok(size) => {
                self.notify(&target.correlation_id, &UploadStatus::success())
                    .await?;
                tracing::info!(blob = %target.blob_name, size, "file uploaded");
                Ok(UploadedBlob {
                    blob_url: target.blob_url(),
                    blob_name: target.blob_name.clone(),
                    size,
                    correlation_id: target.correlation_id.clone(),
                })
            }
            Err(e) => {
                let status = UploadStatus::failure(e.status_for_notification(), e.to_string());
                if let Err(notify) = self.notify(&target.correlation_id, &status).await {
                    tracing::warn!(error = %notify, "reporting the failed upload to the hub failed");
                }
                Err(e)
            }
        }
    }

    /// [`upload_file`](Self::upload_file) with content in memory.
    ///
    /// # Errors
    /// As [`upload_file`](Self::upload_file).
    pub async fn upload_bytes(
        &self,
        blob_name: &str,
        content: impl Into<Bytes>,
    ) -> Result<UploadedBlob, UploadError> {
        let content: Bytes = content.into();
        self.upload_file(blob_name, &content[..]).await
    }

    /// [`upload_file`](Self::upload_file) with the content of the file at `path`.
    ///
    /// # Errors
    /// [`UploadError::Read`] when the file cannot be opened, else as
    /// [`upload_file`](Self::upload_file).
    pub async fn upload_path(
        &self,
        blob_name: &str,
        path: impl AsRef<Path>,
    ) -> Result<UploadedBlob, UploadError> {
        let file = tokio::fs::File::open(path.as_ref())
            .await
            .map_err(UploadError::Read)?;
        self.upload_file(blob_name, file).await
    }

    /// One hub request with fresh credentials on a fresh connection, tried again (with the
    /// blob requests' attempts and doubling delay) on network trouble, time-outs, throttling
    /// and server errors: the notification in particular should reach the hub, which holds the
    /// upload until then.
    async fn hub_call(
        &self,
        build: impl Fn(Option<&str>) -> Result<Request<Full<Bytes>>, UploadError>,
    ) -> Result<Response<Bytes>, UploadError> {
        let mut delay = self.inner.blob.retry_delay;
        let mut attempt = 1;
        loop {
            let result = async {
                let (authorization, identity) = self.credentials()?;
                let request = build(authorization.as_deref().map(|t| t.as_str()))?;
                let mut connection = self
                    .inner
                    .dialer
                    .connect(&self.inner.endpoint, identity.as_ref())
                    .await?;
                let response = connection.send(request).await?;
                if error::is_transient_status(response.status().as_u16()) {
                    return Err(hub_api::hub_error(response.status(), response.body()));
                }
                Ok(response)
            }
            .await;
            match result {
                Err(e) if e.is_transient() && attempt < self.inner.blob.max_attempts => {
                    tracing::debug!(attempt, error = %e, "hub request failed: retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The `Authorization` value (SAS) or the client certificate (X.509) for a hub request,
    /// minted afresh.
    #[allow(clippy::type_complexity)]
    fn credentials(
        &self,
    ) -> Result<(Option<zeroize::Zeroizing<String>>, Option<X509Identity>), UploadError> {
        let resource = SasResource::hub_device(&self.inner.host, &self.inner.device_id);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        match self.inner.authenticator.credentials(&resource, now)? {
            Credentials::Sas(token) => Ok((
                Some(zeroize::Zeroizing::new(token.expose().to_owned())),
                None,
            )),
            Credentials::X509(identity) => Ok((None, Some(identity))),
            _ => Err(UploadError::Config(
                "the authenticator produced credentials file upload cannot use".into(),
            )),
        }
    }
}

/// Configures a [`FileUploader`]. Defaults suit Azure: port 443, public roots, 4 MiB blocks,
/// four attempts per block, a minute per request.
#[derive(Clone)]
pub struct FileUploaderBuilder {
    host: String,
    device_id: String,
    endpoint: Option<String>,
    authenticator: Arc<dyn Authenticator>,
    tls: TlsConfig,
    proxy: Option<ProxyConfig>,
    block_size: usize,
    max_attempts: u32,
    retry_delay: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    progress: Option<ProgressFn>,
}

impl fmt::Debug for FileUploaderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileUploaderBuilder")
            .field("host", &self.host)
            .field("device_id", &self.device_id)
            .field("endpoint", &self.endpoint)
            .field("authenticator", &self.authenticator)
            .field("proxy", &self.proxy)
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

impl FileUploaderBuilder {
    fn new(host: String, device_id: String, authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            host,
            device_id,
            endpoint: None,
            authenticator,
            tls: TlsConfig::default(),
            proxy: None,
            block_size: DEFAULT_BLOCK_SIZE,
            max_attempts: 4,
            retry_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            progress: None,
        }
    }

    /// Where to send the hub requests, `host[:port]` (default: the hub host on 443), e.g. a
    /// gateway or the local emulator's HTTPS port. The SAS tokens still name the hub host.
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The TLS policy (the same as the hub connection's).
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Reaches the hub and the storage account through an HTTP proxy (`CONNECT`).
    #[must_use]
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Sets or clears the proxy.
    #[must_use]
    pub(crate) fn proxy_opt(mut self, proxy: Option<ProxyConfig>) -> Self {
        self.proxy = proxy;
        self
    }

    /// The block size (default 4 MiB): content up to it goes in one Put Blob, larger content
    /// in blocks of it (at most 50,000).
    #[must_use]
    pub fn block_size(mut self, size: usize) -> Self {
        self.block_size = size;
        self
    }

    /// Attempts per request (blob and hub) on transient failures (default 4), and the first
    /// delay between them (default 500 ms, doubling).
    #[must_use]
    pub fn retries(mut self, max_attempts: u32, first_delay: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.retry_delay = first_delay;
        self
    }

    /// Time allowed to connect (TCP, proxy, TLS; default 30 s) and for each request and its
    /// answer (default 60 s).
    #[must_use]
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Called after each block (or the single Put Blob) is stored.
    #[must_use]
    pub fn on_progress(
        mut self,
        progress: impl Fn(UploadProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`UploadError::Config`] for an empty host, an invalid device id, an unusable endpoint or
    /// block size.
    pub fn build(self) -> Result<FileUploader, UploadError> {
        if self.host.is_empty() {
            return Err(UploadError::Config("the hub host name is empty".into()));
        }
        dps_core::ids::validate_device_id(&self.device_id)
            .map_err(|e| UploadError::Config(format!("device id: {e}")))?;
        if self.block_size == 0 || self.block_size > MAX_BLOCK_SIZE {
            return Err(UploadError::Config(format!(
                "the block size must be 1 to {MAX_BLOCK_SIZE} bytes"
            )));
        }
        let endpoint_text = self.endpoint.as_deref().unwrap_or(&self.host);
        let endpoint = Endpoint::parse(endpoint_text, 443)
            .map_err(|e| UploadError::Config(format!("endpoint {endpoint_text:?}: {e}")))?;
        Ok(FileUploader {
            inner: Arc::new(Inner {
                host: self.host,
                device_id: self.device_id,
                endpoint,
                authenticator: self.authenticator,
                dialer: Dialer {
                    tls: self.tls,
                    proxy: self.proxy,
                    connect_timeout: self.connect_timeout,
                    request_timeout: self.request_timeout,
                },
                blob: BlobOptions {
                    block_size: self.block_size,
                    max_attempts: self.max_attempts,
                    retry_delay: self.retry_delay,
                    progress: self.progress,
                },
            }),
        })
    }
}
