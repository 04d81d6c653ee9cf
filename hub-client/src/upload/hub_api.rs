//! The hub's two file upload requests (IoT Hub REST API 2021-04-12, "Create File Upload Sas
//! Uri" and "Update File Upload Status"; the C SDK's `iothub_client_ll_uploadtoblob.c` and the
//! Python SDK's `get_storage_info_for_blob` / `notify_blob_upload_status` send the same):
//!
//! - `POST /devices/{id}/files?api-version=2021-04-12` with `{"blobName": ..}` →
//!   `correlationId`, `hostName`, `containerName`, `blobName`, `sasToken`;
//! - `POST /devices/{id}/files/notifications?api-version=2021-04-12` with `correlationId`,
//!   `isSuccess`, `statusCode`, `statusDescription` → 204.

use std::fmt;

use bytes::Bytes;
use dps_core::encoding::PercentEncoded;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::UploadError;

/// The api-version of the file upload requests.
pub const FILE_UPLOAD_API_VERSION: &str = "2021-04-12";

/// Where the hub lets the device upload one blob: the answer of
/// [`FileUploader::create_sas_uri`](super::FileUploader::create_sas_uri). `Debug` hides the SAS.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StorageInfo {
    /// Identifies the upload in the notification.
    pub correlation_id: String,
    /// The storage account's blob host (`{account}.blob.core.windows.net`; with a port and a
    /// path for path-style endpoints such as Azurite's or the emulator's).
    pub host_name: String,
    /// The container.
    pub container_name: String,
    /// The blob's name in the container (the hub puts it under the device id).
    pub blob_name: String,
    /// The blob SAS (`?sv=...&sig=...`). A secret: never log it.
    #[serde(deserialize_with = "secret")]
    sas_token: Zeroizing<String>,
}

fn secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(deserializer).map(Zeroizing::new)
}

impl StorageInfo {
    /// The blob's URL without the SAS: what to log or show.
    #[must_use]
    pub fn blob_url(&self) -> String {
        format!(
            "https://{}/{}/{}",
            self.host_name,
            self.container_name,
            encode_blob_path(&self.blob_name)
        )
    }

    /// The blob's URL with the SAS appended, for an upload with your own code (e.g. a storage
    /// SDK's `BlobClient::from_blob_url`). A secret: never log it.
    #[must_use]
    pub fn blob_url_with_sas(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}{}", self.blob_url(), self.sas_query()))
    }

    /// The SAS as a query string starting with `?`.
    pub(crate) fn sas_query(&self) -> String {
        let sas = self.sas_token.as_str();
        if sas.starts_with('?') || sas.is_empty() {
            sas.to_owned()
        } else {
            format!("?{sas}")
        }
    }
}

impl fmt::Debug for StorageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageInfo")
            .field("correlation_id", &self.correlation_id)
            .field("host_name", &self.host_name)
            .field("container_name", &self.container_name)
            .field("blob_name", &self.blob_name)
            .field("sas_token", &"<redacted>")
            .finish()
    }
}

/// How an upload ended, for [`FileUploader::notify`](super::FileUploader::notify).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UploadStatus {
    /// Whether the content is in the blob.
    pub is_success: bool,
    /// An HTTP-like status (200 or 201 on success; the storage account's status on failure).
    pub status_code: u16,
    /// A description for the service side.
    pub status_description: String,
}

impl UploadStatus {
    /// A successful upload.
    #[must_use]
    pub fn success() -> Self {
        Self {
            is_success: true,
            status_code: 200,
            status_description: "uploaded".into(),
        }
    }

    /// A failed upload.
    #[must_use]
    pub fn failure(status_code: u16, description: impl Into<String>) -> Self {
        Self {
            is_success: false,
            status_code,
            status_description: description.into(),
        }
    }
}

/// Percent-encodes a blob name for a URL path, keeping its `/` separators.
pub(crate) fn encode_blob_path(name: &str) -> String {
    name.split('/')
        .map(|part| PercentEncoded::new(part).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The request for a SAS URI.
pub(crate) fn sas_uri_request(
    device_id: &str,
    blob_name: &str,
    authorization: Option<&str>,
) -> Result<Request<Full<Bytes>>, UploadError> {
    let body = serde_json::to_vec(&serde_json::json!({ "blobName": blob_name }))
        .map_err(|e| UploadError::InvalidResponse(e.to_string()))?;
    request(
        &format!(
            "/devices/{}/files?api-version={FILE_UPLOAD_API_VERSION}",
            PercentEncoded::new(device_id)
        ),
        body,
        authorization,
    )
}

/// The completion notification.
pub(crate) fn notification_request(
    device_id: &str,
    correlation_id: &str,
    status: &UploadStatus,
    authorization: Option<&str>,
) -> Result<Request<Full<Bytes>>, UploadError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        correlation_id: &'a str,
        #[serde(flatten)]
        status: &'a UploadStatus,
    }
    let body = serde_json::to_vec(&Body {
        correlation_id,
        status,
    })
    .map_err(|e| UploadError::InvalidResponse(e.to_string()))?;
    request(
        &format!(
            "/devices/{}/files/notifications?api-version={FILE_UPLOAD_API_VERSION}",
            PercentEncoded::new(device_id)
        ),
        body,
        authorization,
    )
}

fn request(
    path: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> Result<Request<Full<Bytes>>, UploadError> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, crate::USER_AGENT)
        .header(http::header::CONTENT_LENGTH, body.len());
    if let Some(token) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, token);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| UploadError::Config("the device id cannot form a request path".into()))
}

/// Parses the SAS URI answer, or the hub's error.
pub(crate) fn parse_sas_uri(status: StatusCode, body: &[u8]) -> Result<StorageInfo, UploadError> {
    if !status.is_success() {
        return Err(hub_error(status, body));
    }
    let info: StorageInfo = serde_json::from_slice(body)
        .map_err(|e| UploadError::InvalidResponse(format!("the SAS URI answer: {e}")))?;
    if info.host_name.is_empty() || info.container_name.is_empty() || info.blob_name.is_empty() {
        return Err(UploadError::InvalidResponse(
            "the SAS URI answer lacks the host, container or blob name".into(),
        ));
    }
    Ok(info)
}

/// The hub's error: its `errorCode` (or `ErrorCode`) and `message` (or `Message`), if the body
/// is the service's JSON error.
pub(crate) fn hub_error(status: StatusCode, body: &[u8]) -> UploadError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |a: &str, b: &str| json.get(a).or_else(|| json.get(b)).cloned();
    let error_code = field("errorCode", "ErrorCode").and_then(|c| match c {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    });
    let message = field("message", "Message")
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    UploadError::Hub {
        status: status.as_u16(),
        error_code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_errors() {
        let body = br#"{"correlationId":"c1","hostName":"acct.blob.core.windows.net","containerName":"up","blobName":"dev/a b.txt","sasToken":"?sv=2018-03-28&sr=b&sig=SECRET&se=x&sp=rw"}"#;
        let info = parse_sas_uri(StatusCode::OK, body).unwrap();
        assert_eq!(
            info.blob_url(),
            "https://acct.blob.core.windows.net/up/dev/a%20b.txt"
        );
        assert!(info.blob_url_with_sas().ends_with("&sp=rw"));
        assert!(!format!("{info:?}").contains("SECRET"));

        let err = parse_sas_uri(
            StatusCode::FORBIDDEN,
            br#"{"errorCode":403006,"message":"Number of active file upload requests cannot exceed 10"}"#,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            UploadError::Hub {
                status: 403,
                error_code: Some(403_006),
                ..
            }
        ));
        assert!(err.to_string().contains("(403006)"), "{err}");
        assert!(!err.is_transient());
        let err = parse_sas_uri(StatusCode::SERVICE_UNAVAILABLE, b"").unwrap_err();
        assert!(err.is_transient());
        assert!(parse_sas_uri(StatusCode::OK, b"{}").is_err());
    }

    #[test]
    fn notification_body() {
        let request =
            notification_request("dev 1", "c1", &UploadStatus::failure(503, "busy"), None).unwrap();
        assert_eq!(
            request.uri().to_string(),
            "/devices/dev%201/files/notifications?api-version=2021-04-12"
        );
        let body: serde_json::Value = serde_json::from_slice(
            &futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
                request.into_body(),
            ))
            .unwrap()
            .unwrap()
            .to_bytes(),
        )
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"correlationId": "c1", "isSuccess": false, "statusCode": 503, "statusDescription": "busy"})
        );
    }
}
