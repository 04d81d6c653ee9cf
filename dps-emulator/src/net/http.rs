//! The HTTPS interface the application implements (the DPS and IoT Hub REST APIs).
//!
//! The frame reads the whole request body (bounded; larger bodies get 413 without reaching the
//! handler) and hands the application a plain [`HttpRequest`]; the application answers with a
//! plain [`HttpResponse`]. WebSocket upgrades on `/$iothub/websocket` never reach the handler.

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{AsHeaderName, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use rustls::pki_types::CertificateDer;
use serde::Serialize;

/// One HTTP request, body included. Its `Debug` shows neither the `Authorization` header nor
/// the body (enrollments carry keys).
#[derive(Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The path exactly as sent (still percent-encoded); see [`HttpRequest::decoded_path`].
    pub path: String,
    /// The raw query string without the `?`, if any; see [`HttpRequest::query_param`].
    pub query: Option<String>,
    /// The headers.
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
    /// The client certificate chain presented in the TLS handshake (leaf first; usually empty).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The client's address.
    pub peer_addr: SocketAddr,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name == http::header::AUTHORIZATION {
                    "<redacted>"
                } else {
                    value.to_str().unwrap_or("<binary>")
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

impl HttpRequest {
    /// The path percent-decoded, or `None` if it decodes to invalid UTF-8 or has a bad escape.
    pub fn decoded_path(&self) -> Option<String> {
        percent_decode(&self.path, false)
    }

    /// The first query parameter called `name` (names and values form-decoded: `+` is a space),
    /// e.g. `request.query_param("api-version")`. `Some("")` for `?name` or `?name=`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find_map(|(k, v)| (k == name).then_some(v))
    }

    /// All query parameters, form-decoded, in order; undecodable pairs are skipped.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let Some(query) = self.query.as_deref() else {
            return Vec::new();
        };
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((percent_decode(name, true)?, percent_decode(value, true)?))
            })
            .collect()
    }

    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers (`content-length` is set by the frame).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A response without a body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// A JSON response (`content-type: application/json; charset=utf-8`). If `value` cannot be
    /// serialized (a bug in the caller), the answer is an empty 500 and the error is logged.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                headers: HeaderMap::new(),
                body: body.into(),
            }
            .with_header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            Err(e) => {
                tracing::error!(error = %e, "response body is not serializable");
                Self::empty(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A plain-text response (`content-type: text/plain; charset=utf-8`).
    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(text.into()),
        }
        .with_header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
    }

    /// Sets a header (replacing any previous value), builder style.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// Answers every HTTPS request except WebSocket upgrades. One instance serves all connections.
#[async_trait]
pub trait HttpHandler: Send + Sync + 'static {
    /// Decides from the request line and headers alone (the body is still unread and empty
    /// here) whether the request may go on: an unauthenticated client is refused before it can
    /// make the server read and hold its body. The default admits every request.
    fn authorize(&self, request: &HttpRequest) -> Result<(), Box<HttpResponse>> {
        let _ = request;
        Ok(())
    }

    /// Handles one request. Called concurrently for different connections.
    async fn handle(&self, request: HttpRequest) -> HttpResponse;
}

/// Decodes `%XX` escapes (and `+` as a space when `form` is true, as in query strings).
/// `None` if an escape is malformed or the result is not UTF-8.
pub fn percent_decode(text: &str, form: bool) -> Option<String> {
    // The escapes are decoded by dps-core, the one decoder of the workspace; only form
    // encoding's `+` is handled here. A literal `+` is `%2B`, so replacing first is safe.
    if form && text.contains('+') {
        let spaced = text.replace('+', " ");
        return dps_core::encoding::percent_decode(&spaced)
            .ok()
            .map(|c| c.into_owned());
    }
    dps_core::encoding::percent_decode(text)
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, query: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: Method::GET,
            path: path.into(),
            query: query.map(Into::into),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            peer_certificates: Vec::new(),
            peer_addr: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn decodes_paths_and_queries() {
        let r = request(
            "/enrollments/dev%2D1",
            Some("api-version=2021-10-01&x=a+b%26c&flag"),
        );
        assert_eq!(r.decoded_path().as_deref(), Some("/enrollments/dev-1"));
        assert_eq!(r.query_param("api-version").as_deref(), Some("2021-10-01"));
        assert_eq!(r.query_param("x").as_deref(), Some("a b&c"));
        assert_eq!(r.query_param("flag").as_deref(), Some(""));
        assert_eq!(r.query_param("missing"), None);
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%+1", false), None);
        assert_eq!(percent_decode("%ff", false), None, "not UTF-8");
    }

    #[test]
    fn json_response_sets_content_type() {
        let response = HttpResponse::json(StatusCode::OK, &serde_json::json!({"a": 1}));
        assert_eq!(response.body, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(
            response.headers.get(CONTENT_TYPE).unwrap(),
            "application/json; charset=utf-8"
        );
    }
}
