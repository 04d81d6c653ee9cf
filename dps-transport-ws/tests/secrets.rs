//! No secret in any log at any level (#11): a device connects over WebSocket with a real SAS
//! token while everything, including what dependencies log through the `log` crate, is captured
//! at `trace`; neither the key, the signature nor the token may appear, in text or in hex.
//!
//! The peer is a minimal one written here (tungstenite for the upgrade, raw frames after it), so
//! the capture holds the client's logs only.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use dps_auth::{Authenticator as _, SymmetricKey};
use dps_core::sas::SasResource;
use dps_testkit::pki::{Ca, hex};
use dps_transport_mqtt::{ConnectOptions, TlsConfig, Transport as _};
use dps_transport_ws::WebSocketTransport;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Everything written by the subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Accepts one TLS connection, upgrades it, reads the client's first frame (the CONNECT) and
/// answers CONNACK 0 in an unmasked binary frame; then waits for the client to go away.
async fn serve_once(listener: TcpListener, acceptor: TlsAcceptor) -> Vec<u8> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor.accept(tcp).await.unwrap();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback =
        |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
         mut response: tokio_tungstenite::tungstenite::handshake::server::Response| {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
            Ok(response)
        };
    drop(
        tokio_tungstenite::accept_hdr_async(&mut tls, callback)
            .await
            .unwrap(),
    );
    let mut head = [0; 2];
    tls.read_exact(&mut head).await.unwrap();
    let len = match head[1] & 0x7F {
        126 => {
            let mut n = [0; 2];
            tls.read_exact(&mut n).await.unwrap();
            usize::from(u16::from_be_bytes(n))
        }
        n => usize::from(n),
    };
    let mut mask = [0; 4];
    tls.read_exact(&mut mask).await.unwrap();
    let mut connect = vec![0; len];
    tls.read_exact(&mut connect).await.unwrap();
    for (i, b) in connect.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    tls.write_all(&[0x82, 4, 0x20, 2, 0, 0]).await.unwrap();
    tls.flush().await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut rest)).await;
    connect
}

#[tokio::test]
async fn the_sas_token_never_reaches_the_logs_over_websocket() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // A server certificate for localhost from a throwaway CA.
    let ca = Ca::root("secrets-test-ca");
    let leaf = ca.server(&["localhost"], None);
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der()], leaf.key())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(serve_once(listener, TlsAcceptor::from(Arc::new(server))));

    // A real token, from a real key.
    let key_b64 = base64::engine::general_purpose::STANDARD.encode([0x5a; 32]);
    let key = SymmetricKey::from_base64(&key_b64).unwrap();
    let resource = SasResource::dps("0ne00000001", "secret-device");
    let credentials = key.credentials(&resource, 1_900_000_000).unwrap();
    let token = credentials.password().unwrap().to_owned();
    let options = ConnectOptions::new(
        format!("localhost:{port}"),
        "secret-device",
        "0ne00000001/registrations/secret-device/api-version=2019-03-31",
        credentials,
    )
    .with_tls(
        TlsConfig::default()
            .webpki_roots(false)
            .add_root(ca.der.clone()),
    );
    let connection = WebSocketTransport::new().connect(&options).await.unwrap();
    connection.disconnect().await;
    let connect = peer.await.unwrap();
    // The peer really received the token: the capture below could have held it.
    assert!(connect.windows(token.len()).any(|w| w == token.as_bytes()));

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    // What dependencies log through `log` is in the capture (the upgrade's traces), so a frame
    // trace would have been caught.
    assert!(logs.contains("tungstenite"), "no dependency logs captured");
    let signature = token
        .split('&')
        .find_map(|p| {
            p.strip_prefix("SharedAccessSignature sig=")
                .or(p.strip_prefix("sig="))
        })
        .unwrap()
        .to_owned();
    let decoded_sig = signature
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    for secret in [
        token.clone(),
        signature.clone(),
        decoded_sig,
        key_b64.clone(),
        hex(token.as_bytes()),
        hex(&signature.as_bytes()[..16]),
    ] {
        assert!(
            !logs.to_lowercase().contains(&secret.to_lowercase()),
            "a secret appeared in the logs"
        );
    }
}
