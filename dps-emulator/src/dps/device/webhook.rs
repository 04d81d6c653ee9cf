//! Custom allocation: POST the allocation request to the enrollment's webhook.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde::{Deserialize, Serialize};

/// The webhook's answer (`iotHubHostName` must be a linked hub).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AllocationResponse {
    /// The chosen hub.
    pub(crate) iot_hub_host_name: Option<String>,
    /// A twin that overrides the enrollment's initial twin.
    #[serde(default)]
    pub(crate) initial_twin: Option<serde_json::Value>,
    /// Data returned to the device.
    #[serde(default)]
    pub(crate) payload: Option<serde_json::Value>,
}

/// Why the webhook gave no usable answer. The message is what the device sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookFailure(pub(crate) String);

/// Calls the webhook. Only `http://` URLs are supported: the emulator runs next to the test
/// webhook, and TLS to it would need a trust store the test does not have.
pub(crate) async fn call(
    url: &str,
    request: &serde_json::Value,
) -> Result<AllocationResponse, WebhookFailure> {
    let uri: http::Uri = url.parse().map_err(|_| {
        WebhookFailure(format!(
            "Custom allocation failed: invalid webhook URL {url:?}"
        ))
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(WebhookFailure(
            "Custom allocation failed: the emulator only calls http:// webhooks".into(),
        ));
    }
    let host = uri.host().unwrap_or("localhost").to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let body = serde_json::to_vec(request).unwrap_or_default();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .ok()?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = http::Request::post(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status();
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            WebhookFailure("Custom allocation failed: the webhook did not answer".into())
        })?;
    if !status.is_success() {
        return Err(WebhookFailure(format!(
            "Custom allocation failed with status code: {}",
            status.as_u16()
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| WebhookFailure(format!("Custom allocation failed: invalid response: {e}")))
}
