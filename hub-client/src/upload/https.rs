//! One HTTPS connection for the file upload requests: TCP (through the HTTP proxy when one is
//! set), TLS with the device's [`TlsConfig`] policy (and its client certificate for X.509
//! devices), then HTTP/1.1 with hyper's client connection. hyper is already the HTTP stack of
//! the workspace, and driving its connection over our own TLS stream keeps one TLS policy and
//! rustls with *ring* only (reqwest would bring its own connector and TLS configuration).

use bytes::Bytes;
use dps_auth::X509Identity;
use dps_transport_mqtt::net::{Endpoint, tcp_connect, tcp_connect_with, within};
use dps_transport_mqtt::{TimeoutStage, TlsConfig, TransportError};
use dps_transport_ws::ProxyConfig;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::{Duration, Instant};

use super::error::UploadError;

/// The largest response body read (hub answers and storage errors are small).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// How to reach a host.
#[derive(Clone, Debug)]
pub(crate) struct Dialer {
    pub(crate) tls: TlsConfig,
    pub(crate) proxy: Option<ProxyConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

/// An open HTTP/1.1 connection to one endpoint.
pub(crate) struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// `host[:port]` for the `Host` header and messages.
    pub(crate) authority: String,
    request_timeout: Duration,
}

impl Dialer {
    /// Connects to `endpoint`, presenting `identity` in the TLS handshake when given.
    pub(crate) async fn connect(
        &self,
        endpoint: &Endpoint,
        identity: Option<&X509Identity>,
    ) -> Result<Connection, UploadError> {
        let authority = endpoint.authority();
        let transport = |source: TransportError| UploadError::Transport {
            host: authority.clone(),
            source,
        };
        let deadline = Instant::now() + self.connect_timeout;
        let tcp = self.open_tcp(endpoint, deadline).await.map_err(transport)?;
        let tls = within(
            deadline,
            TimeoutStage::Tls,
            self.tls.handshake(&endpoint.host, tcp, identity),
        )
        .await
        .map_err(transport)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| UploadError::Http {
                host: authority.clone(),
                message: e.to_string(),
            })?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upload connection ended with an error");
            }
        });
        Ok(Connection {
            sender,
            authority,
            request_timeout: self.request_timeout,
        })
    }

    async fn open_tcp(
        &self,
        target: &Endpoint,
        deadline: Instant,
    ) -> Result<tokio::net::TcpStream, TransportError> {
        if let Some(proxy) = &self.proxy {
            let at = proxy.endpoint()?;
            let mut tcp =
                within(deadline, TimeoutStage::Tcp, tcp_connect(&at.host, at.port)).await?;
            within(
                deadline,
                TimeoutStage::Proxy,
                proxy.open_tunnel(&mut tcp, target),
            )
            .await?;
            return Ok(tcp);
        }
        within(
            deadline,
            TimeoutStage::Tcp,
            tcp_connect_with(&self.tls, &target.host, target.port),
        )
        .await
    }
}

impl Connection {
    /// Whether the connection can take another request.
    pub(crate) fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends `request` (its URI in origin form; `Host` is added) and reads the answer.
    pub(crate) async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, UploadError> {
        let mut request = request;
        if let Ok(host) = http::HeaderValue::from_str(&self.authority) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let http_error = |e: hyper::Error| UploadError::Http {
            host: self.authority.clone(),
            message: e.to_string(),
        };
        let exchange = async {
            self.sender.ready().await.map_err(http_error)?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(http_error)?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE_BODY)
                .collect()
                .await
                .map_err(|e| UploadError::Http {
                    host: self.authority.clone(),
                    message: format!("reading the answer failed: {e}"),
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| UploadError::Timeout {
                host: self.authority.clone(),
            })?
    }
}
