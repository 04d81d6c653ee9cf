//! The emulator's own calls to an external storage account (Azurite or Azure Storage): create
//! the upload container, read an uploaded blob's size for the notification. One short HTTPS
//! request each, with an account SAS, over hyper and rustls (ring).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dps_auth::SymmetricKey;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::sync::OnceCell;

use super::config::StorageAccount;
use super::sas;
use crate::util::time;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Lifetime of the account SAS of each call.
const CALL_SAS_SECONDS: u64 = 300;

/// An external account, parsed and ready to call.
pub(crate) struct RemoteAccount {
    pub(crate) account: String,
    pub(crate) key: SymmetricKey,
    /// `host[:port]`.
    authority: String,
    host: String,
    port: u16,
    /// The endpoint's path (`/devstoreaccount1` for Azurite), without a trailing `/`.
    path: String,
    tls: Arc<ClientConfig>,
    container_ready: OnceCell<()>,
}

impl RemoteAccount {
    /// Checks the settings; `ca` is the emulator's own CA, always trusted.
    pub(crate) fn new(
        settings: &StorageAccount,
        ca: &CertificateDer<'static>,
    ) -> Result<Self, String> {
        let key = SymmetricKey::from_base64(&settings.account_key)
            .map_err(|e| format!("the storage account key is not valid: {e}"))?;
        let rest = settings
            .endpoint
            .strip_prefix("https://")
            .ok_or("the storage endpoint must be an https:// URL (devices upload over TLS only)")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| "the storage endpoint's port is not a number")?,
            ),
            None => (authority, 443),
        };
        if host.is_empty() {
            return Err("the storage endpoint has no host".into());
        }
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        roots
            .add(ca.clone())
            .map_err(|e| format!("the emulator's CA is not usable: {e}"))?;
        if let Some(file) = &settings.ca_file {
            for cert in CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            {
                let cert = cert.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{} holds an unusable CA: {e}", file.display()))?;
            }
        }
        let tls = ClientConfig::builder_with_provider(Arc::new(crate::tls::crypto_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            account: settings.account_name.clone(),
            key,
            authority: authority.to_owned(),
            host: host.to_owned(),
            port,
            path: path.trim_end_matches('/').to_owned(),
            tls: Arc::new(tls),
            container_ready: OnceCell::new(),
        })
    }

    /// What devices get as `hostName`: `host[:port][/path]`.
    pub(crate) fn host_name(&self) -> String {
        if self.path.is_empty() {
            self.authority.clone()
        } else {
            format!("{}/{}", self.authority, self.path)
        }
    }

    /// Creates `container` once (an existing one is fine).
    pub(crate) async fn ensure_container(&self, container: &str) -> Result<(), String> {
        self.container_ready
            .get_or_try_init(|| async {
                let sas = self.account_sas("c", "c")?;
                let (status, _, _) = self
                    .call(
                        Method::PUT,
                        &format!("/{container}?restype=container&{sas}"),
                    )
                    .await?;
                if status.is_success() || status == StatusCode::CONFLICT {
                    tracing::info!(account = %self.account, container, "upload container ready");
                    Ok(())
                } else {
                    Err(format!(
                        "creating container {container:?} failed with http status {status}"
                    ))
                }
            })
            .await
            .map(|_| ())
    }

    /// The size of a committed blob, or `None` when it does not exist.
    pub(crate) async fn blob_size(
        &self,
        container: &str,
        blob: &str,
    ) -> Result<Option<u64>, String> {
        let expiry = time::unix_now() + CALL_SAS_SECONDS;
        let sas = sas::blob_sas(&self.account, &self.key, container, blob, "r", expiry)?;
        let (status, length, _) = self
            .call(
                Method::HEAD,
                &format!("/{container}/{}?{sas}", encode_path(blob)),
            )
            .await?;
        match status {
            s if s.is_success() => Ok(length),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!(
                "reading blob properties failed with http status {s}"
            )),
        }
    }

    /// A committed blob's content, or `None` when it does not exist.
    pub(crate) async fn download(
        &self,
        container: &str,
        blob: &str,
    ) -> Result<Option<Bytes>, String> {
        let expiry = time::unix_now() + CALL_SAS_SECONDS;
        let sas = sas::blob_sas(&self.account, &self.key, container, blob, "r", expiry)?;
        let (status, _, body) = self
            .call(
                Method::GET,
                &format!("/{container}/{}?{sas}", encode_path(blob)),
            )
            .await?;
        match status {
            s if s.is_success() => Ok(Some(body)),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!("reading the blob failed with http status {s}")),
        }
    }

    fn account_sas(&self, permissions: &str, resource_types: &str) -> Result<String, String> {
        let expiry = time::unix_now() + CALL_SAS_SECONDS;
        sas::account_sas(
            &self.account,
            &self.key,
            permissions,
            resource_types,
            expiry,
        )
    }

    /// One request without a body; the status and `content-length`. Errors never hold the
    /// URL (its query is a SAS).
    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<(StatusCode, Option<u64>, Bytes), String> {
        let uri = format!("{}{path_and_query}", self.path_prefix());
        let fut = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    format!("cannot reach the storage endpoint {}: {e}", self.authority)
                })?;
            let name = ServerName::try_from(self.host.clone())
                .map_err(|_| "the storage host is not a valid server name".to_owned())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with the storage endpoint failed: {e}"))?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP with the storage endpoint failed: {e}"))?;
            tokio::spawn(connection);
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header(http::header::HOST, &self.authority)
                .header("x-ms-version", sas::SAS_VERSION)
                .header(http::header::CONTENT_LENGTH, "0")
                .body(Full::new(Bytes::new()))
                .map_err(|e| format!("cannot build the storage request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("the storage request failed: {e}"))?;
            let status = response.status();
            let length = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the storage answer failed: {e}"))?
                .to_bytes();
            Ok((status, length, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, fut).await.map_err(|_| {
            format!(
                "the storage endpoint {} did not answer in time",
                self.authority
            )
        })?
    }

    fn path_prefix(&self) -> String {
        if self.path.is_empty() {
            String::new()
        } else {
            format!("/{}", self.path)
        }
    }
}

/// Percent-encodes a blob name for a path, keeping its `/` separators.
pub(crate) fn encode_path(name: &str) -> String {
    name.split('/')
        .map(sas::encode)
        .collect::<Vec<_>>()
        .join("/")
}
