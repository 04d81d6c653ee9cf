//! The WebSocket upgrade at `/$iothub/websocket` (RFC 6455 server handshake), as Azure's
//! gateways do it: the client must offer the `mqtt` subprotocol and gets it back; anything else
//! on that path is answered 400.

use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Version};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::http::percent_decode;

/// The path on which both DPS and IoT Hub accept MQTT over WebSocket.
pub const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// The only subprotocol accepted.
const MQTT_SUBPROTOCOL: &str = "mqtt";

/// Whether a request path (raw, as sent) addresses the WebSocket endpoint.
pub(crate) fn is_websocket_path(raw_path: &str) -> bool {
    // Clients send `$` literally, but `%24` is the same path.
    raw_path == WEBSOCKET_PATH || percent_decode(raw_path, false).as_deref() == Some(WEBSOCKET_PATH)
}

/// Whether a request asks for a WebSocket upgrade (whatever its path).
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, &UPGRADE, "websocket")
}

/// Checks an upgrade request on the WebSocket path. `Ok` holds the `Sec-WebSocket-Accept` value
/// for the 101 answer; `Err` says why the request gets 400.
pub(crate) fn check_upgrade(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<HeaderValue, &'static str> {
    if method != Method::GET || version != Version::HTTP_11 {
        return Err("a WebSocket upgrade must be an HTTP/1.1 GET");
    }
    if !has_token(headers, &CONNECTION, "upgrade") || !has_token(headers, &UPGRADE, "websocket") {
        return Err("this endpoint only accepts WebSocket upgrades");
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err("Sec-WebSocket-Version must be 13");
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return Err("Sec-WebSocket-Key is missing");
    };
    if !has_token(headers, &SEC_WEBSOCKET_PROTOCOL, MQTT_SUBPROTOCOL) {
        return Err("Sec-WebSocket-Protocol must include mqtt");
    }
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| "Sec-WebSocket-Key is invalid")
}

/// The headers of the 101 answer besides `Sec-WebSocket-Accept`.
pub(crate) fn upgrade_headers(accept: HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(MQTT_SUBPROTOCOL),
    );
    headers
}

/// WebSocket limits derived from the MQTT packet limit: a message normally carries one packet,
/// but may carry several, so allow two maximal packets before calling it abuse.
pub(crate) fn websocket_config(max_packet_size: usize) -> WebSocketConfig {
    let max_message = max_packet_size.saturating_mul(2).saturating_add(64);
    WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Whether a comma-separated header (possibly repeated) contains `token`, ignoring ASCII case.
fn has_token(headers: &HeaderMap, name: &http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_request(protocol: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        if let Some(p) = protocol {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(p).unwrap());
        }
        headers
    }

    #[test]
    fn accepts_mqtt_and_derives_the_rfc_example_key() {
        let accept = check_upgrade(
            &Method::GET,
            Version::HTTP_11,
            &upgrade_request(Some("mqtt")),
        )
        .unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(
            check_upgrade(
                &Method::GET,
                Version::HTTP_11,
                &upgrade_request(Some("foo, MQTT"))
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_other_subprotocols_and_plain_requests() {
        for protocol in [None, Some("foo"), Some("mqttv3.1")] {
            assert!(
                check_upgrade(&Method::GET, Version::HTTP_11, &upgrade_request(protocol)).is_err()
            );
        }
        assert!(check_upgrade(&Method::GET, Version::HTTP_11, &HeaderMap::new()).is_err());
        assert!(
            check_upgrade(
                &Method::POST,
                Version::HTTP_11,
                &upgrade_request(Some("mqtt"))
            )
            .is_err()
        );
    }

    #[test]
    fn path_matching() {
        assert!(is_websocket_path("/$iothub/websocket"));
        assert!(is_websocket_path("/%24iothub/websocket"));
        assert!(!is_websocket_path("/$iothub/websocket/x"));
        assert!(!is_websocket_path("/other"));
    }
}
