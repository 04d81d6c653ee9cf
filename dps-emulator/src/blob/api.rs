//! The built-in blob endpoint on the emulator's HTTPS port, path style
//! (`/{account}/{container}/{blob}`, as Azurite serves it): Put Blob, Put Block, Put Block
//! List, Get Blob and Get Blob Properties, each authorized by a service SAS. Errors are the
//! Blob service's XML error bodies with their `x-ms-error-code`.

use std::sync::Arc;

use base64::Engine as _;
use dps_auth::SymmetricKey;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::sas::{self, Access};
use super::store::{BlobStore, CommitError, StoredBlob, parse_block_list};
use crate::net::{HttpRequest, HttpResponse};

/// The REST version the endpoint answers with.
const SERVICE_VERSION: &str = "2020-12-06";
/// The longest block id accepted (decoded), as the service limits it.
const MAX_BLOCK_ID_LEN: usize = 64;

/// The built-in storage account and its blob endpoint.
pub(crate) struct BlobApi {
    pub(crate) account: String,
    pub(crate) key: SymmetricKey,
    pub(crate) store: Arc<BlobStore>,
}

impl BlobApi {
    /// Whether `path` is on this account.
    pub(crate) fn serves(&self, path: &str) -> bool {
        path.strip_prefix('/')
            .and_then(|p| p.strip_prefix(self.account.as_str()))
            .is_some_and(|rest| rest.starts_with('/'))
    }

    pub(crate) fn handle(&self, request: &HttpRequest) -> HttpResponse {
        match self.route(request) {
            Ok(response) => response,
            Err(failure) => {
                tracing::info!(method = %request.method, status = failure.0.as_u16(), code = failure.1, "blob request refused: {}", failure.2);
                failure.response()
            }
        }
    }

    fn route(&self, request: &HttpRequest) -> Result<HttpResponse, BlobFailure> {
        let path = request
            .decoded_path()
            .ok_or_else(|| BlobFailure::bad("InvalidUri", "the path is not valid"))?;
        let rest = path
            .trim_start_matches('/')
            .strip_prefix(self.account.as_str())
            .unwrap_or_default()
            .trim_start_matches('/');
        let (container, blob) = rest.split_once('/').unwrap_or((rest, ""));
        if container.is_empty() || blob.is_empty() {
            return Err(BlobFailure::bad(
                "InvalidUri",
                "only blob operations are served: /{account}/{container}/{blob}",
            ));
        }
        if !self.store.has_container(container) {
            return Err(BlobFailure(
                StatusCode::NOT_FOUND,
                "ContainerNotFound",
                "The specified container does not exist.".into(),
            ));
        }
        let access = if request.method == Method::GET || request.method == Method::HEAD {
            Access::Read
        } else {
            Access::Write
        };
        sas::check(request, &self.account, &self.key, container, blob, access).map_err(
            |reason| {
                BlobFailure(
                    StatusCode::FORBIDDEN,
                    "AuthenticationFailed",
                    format!("Server failed to authenticate the request: {reason}."),
                )
            },
        )?;
        let comp = request.query_param("comp");
        match (&request.method, comp.as_deref()) {
            (&Method::PUT, None) => {
                let kind = request.header("x-ms-blob-type").unwrap_or_default();
                if kind != "BlockBlob" {
                    return Err(BlobFailure::bad(
                        "InvalidHeaderValue",
                        "x-ms-blob-type must be BlockBlob",
                    ));
                }
                let stored = self.store.put_blob(container, blob, request.body.clone());
                Ok(created(&stored))
            }
            (&Method::PUT, Some("block")) => {
                let id = request.query_param("blockid").unwrap_or_default();
                let valid = base64::engine::general_purpose::STANDARD
                    .decode(&id)
                    .is_ok_and(|raw| !raw.is_empty() && raw.len() <= MAX_BLOCK_ID_LEN);
                if !valid {
                    return Err(BlobFailure::bad(
                        "InvalidQueryParameterValue",
                        "blockid must be base64 of 1 to 64 bytes",
                    ));
                }
                self.store
                    .put_block(container, blob, &id, request.body.clone());
                Ok(with_common(HttpResponse::empty(StatusCode::CREATED)))
            }
            (&Method::PUT, Some("blocklist")) => {
                let list = std::str::from_utf8(&request.body)
                    .ok()
                    .and_then(parse_block_list)
                    .ok_or_else(|| {
                        BlobFailure::bad("InvalidXmlDocument", "the block list is not valid XML")
                    })?;
                match self.store.put_block_list(container, blob, &list) {
                    Ok(stored) => Ok(created(&stored)),
                    Err(CommitError::InvalidBlockList(_)) => Err(BlobFailure::bad(
                        "InvalidBlockList",
                        "The specified block list is invalid.",
                    )),
                }
            }
            (&Method::GET | &Method::HEAD, None) => {
                let stored = self.store.get(container, blob).ok_or_else(|| {
                    BlobFailure(
                        StatusCode::NOT_FOUND,
                        "BlobNotFound",
                        "The specified blob does not exist.".into(),
                    )
                })?;
                let total = stored.content.len();
                let range = request
                    .header("x-ms-range")
                    .or_else(|| request.header(http::header::RANGE))
                    .map(|r| parse_range(r, total));
                let (status, body, content_range) = match range {
                    None => (StatusCode::OK, stored.content.clone(), None),
                    Some(Some((first, last))) => (
                        StatusCode::PARTIAL_CONTENT,
                        stored.content.slice(first..=last),
                        Some(format!("bytes {first}-{last}/{total}")),
                    ),
                    Some(None) => {
                        return Err(BlobFailure(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            "InvalidRange",
                            "The range specified is invalid for the current size of the resource."
                                .into(),
                        ));
                    }
                };
                let mut response = with_blob_headers(
                    HttpResponse {
                        status,
                        headers: http::HeaderMap::new(),
                        body,
                    },
                    &stored,
                );
                if let Some(value) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
                    response.headers.insert(http::header::CONTENT_RANGE, value);
                }
                response.headers.insert(
                    http::header::ACCEPT_RANGES,
                    HeaderValue::from_static("bytes"),
                );
                response.headers.insert(
                    HeaderName::from_static("x-ms-blob-type"),
                    HeaderValue::from_static("BlockBlob"),
                );
                response.headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(response)
            }
            _ => Err(BlobFailure::bad(
                "UnsupportedHttpVerb",
                "the emulator's blob endpoint serves Put Blob, Put Block, Put Block List and Get Blob",
            )),
        }
    }
}

/// A `bytes=first-[last]` range within `total` bytes, clamped as the service clamps it; `None`
/// when it cannot be satisfied (or is malformed).
fn parse_range(header: &str, total: usize) -> Option<(usize, usize)> {
    let (first, last) = header.trim().strip_prefix("bytes=")?.split_once('-')?;
    let first: usize = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => total.checked_sub(1)?,
        text => text.parse::<usize>().ok()?.min(total.checked_sub(1)?),
    };
    (first <= last).then_some((first, last))
}

fn with_common(mut response: HttpResponse) -> HttpResponse {
    response.headers.insert(
        HeaderName::from_static("x-ms-version"),
        HeaderValue::from_static(SERVICE_VERSION),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response
            .headers
            .insert(HeaderName::from_static("x-ms-request-id"), id);
    }
    response
}

fn with_blob_headers(response: HttpResponse, stored: &StoredBlob) -> HttpResponse {
    let mut response = with_common(response);
    if let Ok(etag) = HeaderValue::from_str(&stored.etag) {
        response.headers.insert(http::header::ETAG, etag);
    }
    if let Ok(date) = HeaderValue::from_str(&http_date(stored.last_modified_unix)) {
        response.headers.insert(http::header::LAST_MODIFIED, date);
    }
    response
}

fn created(stored: &StoredBlob) -> HttpResponse {
    let mut response = with_blob_headers(HttpResponse::empty(StatusCode::CREATED), stored);
    response.headers.insert(
        HeaderName::from_static("x-ms-request-server-encrypted"),
        HeaderValue::from_static("true"),
    );
    response
}

/// An RFC 1123 date (`Sat, 28 Nov 2026 05:40:00 GMT`), as `Last-Modified` carries it.
fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = sas::format_iso(unix); // YYYY-MM-DDThh:mm:ssZ
    let day_name = DAYS[usize::try_from(unix / 86_400 % 7).unwrap_or(0)];
    let (date, clock) = iso
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or(("", ""));
    let mut parts = date.split('-');
    let (year, month, day) = (
        parts.next().unwrap_or_default(),
        parts
            .next()
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(1),
        parts.next().unwrap_or_default(),
    );
    let month = MONTHS.get(month.saturating_sub(1)).unwrap_or(&"Jan");
    format!("{day_name}, {day} {month} {year} {clock} GMT")
}

/// A refused blob request: status, the service's error code, and the message.
struct BlobFailure(StatusCode, &'static str, String);

impl BlobFailure {
    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, code, message.into())
    }

    fn response(&self) -> HttpResponse {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            self.1,
            xml_escape(&self.2)
        );
        let mut response = with_common(HttpResponse {
            status: self.0,
            headers: http::HeaderMap::new(),
            body: body.into(),
        });
        response.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        response.headers.insert(
            HeaderName::from_static("x-ms-error-code"),
            HeaderValue::from_static(self.1),
        );
        response
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-33554431", 10), Some((0, 9)));
        assert_eq!(parse_range("bytes=2-4", 10), Some((2, 4)));
        assert_eq!(parse_range("bytes=3-", 10), Some((3, 9)));
        assert_eq!(parse_range("bytes=0-10", 0), None);
        assert_eq!(parse_range("bytes=12-20", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_844_400), "Sat, 28 Nov 2026 05:40:00 GMT");
    }
}
