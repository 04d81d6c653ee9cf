//! The little of the Azure Blob Storage REST API that import and export jobs need: put a block
//! blob and get a blob, addressed by a container URI with a SAS (`outputBlobContainerUri`,
//! `inputBlobContainerUri`), as the hub's jobs use them. Plain `http` (Azurite, the storage
//! emulator) and `https` (Azure Storage, trusting the public roots; the emulator's own blob
//! endpoint, trusting its CA) are both supported.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// The Blob service version the requests speak (supported by Azure Storage and Azurite).
const STORAGE_VERSION: &str = "2021-08-06";
/// How long one blob request may take.
const BLOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A blob inside a SAS container URI.
#[derive(Debug, Clone)]
pub(crate) struct BlobUrl {
    scheme_https: bool,
    host: String,
    port: u16,
    /// `/{account}/{container}/{blob}?{sas}` (Azurite) or `/{container}/{blob}?{sas}`.
    path_and_query: String,
    /// Roots trusted besides the public ones: the emulator's CA, for its own blob endpoint.
    extra_roots: Vec<CertificateDer<'static>>,
}

impl BlobUrl {
    /// The blob `name` in the container `container_uri` (which carries the SAS in its query).
    pub(crate) fn new(container_uri: &str, name: &str) -> Result<Self, String> {
        let uri: http::Uri = container_uri
            .parse()
            .map_err(|e| format!("the container URI is not valid: {e}"))?;
        let scheme_https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the container URI must be http or https".into()),
        };
        let host = uri
            .host()
            .ok_or("the container URI has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme_https { 443 } else { 80 });
        let container = uri.path().trim_end_matches('/');
        let blob: String = name
            .split('/')
            .map(|segment| {
                segment
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                            char::from(b).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("/");
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        Ok(Self {
            scheme_https,
            host,
            port,
            path_and_query: format!("{container}/{blob}{query}"),
            extra_roots: Vec::new(),
        })
    }

    /// Where, without the SAS (for logs and failure reasons).
    pub(crate) fn display(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or_default();
        let scheme = if self.scheme_https { "https" } else { "http" };
        format!("{scheme}://{}:{}{path}", self.host, self.port)
    }

    /// Writes `body` as a block blob (replacing any blob of that name).
    pub(crate) async fn put(&self, body: Vec<u8>) -> Result<(), String> {
        let (status, answer) = self.send(Method::PUT, body).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "writing {} answered {status}: {}",
                self.display(),
                String::from_utf8_lossy(&answer)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))
        }
    }

    /// Also trusts `roots` (the emulator's CA: a job may write to its built-in blob endpoint).
    pub(crate) fn trusting(mut self, roots: &[CertificateDer<'static>]) -> Self {
        self.extra_roots = roots.to_vec();
        self
    }

    /// Reads the blob.
    pub(crate) async fn get(&self) -> Result<Vec<u8>, String> {
        let (status, answer) = self.send(Method::GET, Vec::new()).await?;
        if status.is_success() {
            Ok(answer)
        } else {
            Err(format!("reading {} answered {status}", self.display()))
        }
    }

    async fn send(&self, method: Method, body: Vec<u8>) -> Result<(StatusCode, Vec<u8>), String> {
        tokio::time::timeout(BLOB_TIMEOUT, self.send_once(method, body))
            .await
            .map_err(|_| format!("{} did not answer in time", self.display()))?
    }

    async fn send_once(
        &self,
        method: Method,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let failed =
            |what: &str, e: &dyn std::fmt::Display| format!("{what} {}: {e}", self.display());
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| failed("cannot connect to", &e))?;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&self.path_and_query)
            .header(http::header::HOST, format!("{}:{}", self.host, self.port))
            .header("x-ms-version", STORAGE_VERSION)
            .header(http::header::CONTENT_LENGTH, body.len());
        if method == Method::PUT {
            request = request
                .header("x-ms-blob-type", "BlockBlob")
                .header(http::header::CONTENT_TYPE, "application/octet-stream");
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| failed("cannot build a request for", &e))?;
        if self.scheme_https {
            let name = ServerName::try_from(self.host.clone())
                .map_err(|e| failed("bad host name in", &e))?;
            let config =
                roots_config(&self.extra_roots).map_err(|e| failed("TLS configuration for", &e))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| failed("TLS handshake with", &e))?;
            exchange(TokioIo::new(tls), request).await
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
        .map_err(|e| failed("HTTP with", &e))
    }
}

async fn exchange<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Vec<u8>), hyper::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body.to_vec()))
}

/// A client configuration trusting the public roots (Azure Storage's certificates) and `extra`.
fn roots_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra {
        roots.add(root.clone())?;
    }
    let provider = Arc::new(crate::tls::crypto_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls_keep_the_sas_and_hide_it_in_display() {
        let url = BlobUrl::new(
            "http://127.0.0.1:10000/devstoreaccount1/exports?sv=2021&sig=secret%2B",
            "devices.txt",
        )
        .unwrap();
        assert_eq!(
            url.path_and_query,
            "/devstoreaccount1/exports/devices.txt?sv=2021&sig=secret%2B"
        );
        assert!(!url.display().contains("secret"));
        assert!(BlobUrl::new("ftp://x/c", "d").is_err());
        let https = BlobUrl::new("https://acct.blob.core.windows.net/c/?sig=s", "a b.txt").unwrap();
        assert_eq!(
            (https.port, https.path_and_query.as_str()),
            (443, "/c/a%20b.txt?sig=s")
        );
    }
}
