//! A server that accepts the MQTT connection and then never says anything again, over TLS or
//! WebSocket over TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use super::STEP;
use crate::pki::Ca;

/// CONNACK, accepted, no session.
const CONNACK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// A TLS server (WebSocket-upgrading when `websocket`) certified by `ca` that answers CONNECT
/// with a CONNACK and then never speaks again: keep-alive must notice.
pub async fn server(ca: &Ca, websocket: bool) -> SocketAddr {
    let leaf = ca.server(&["localhost"], None);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der()], leaf.key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        if websocket {
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let callback = |_: &Request, mut response: Response| {
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
                Ok(response)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await else {
                return;
            };
            // The CONNECT, then silence whatever comes.
            let _ = ws.next().await;
            let _ = ws.send(Message::binary(CONNACK.to_vec())).await;
            while let Ok(Some(Ok(_))) = tokio::time::timeout(STEP * 2, ws.next()).await {}
        } else {
            let mut buffer = [0u8; 1024];
            let _ = tls.read(&mut buffer).await;
            let _ = tls.write_all(&CONNACK).await;
            while let Ok(Ok(n)) = tokio::time::timeout(STEP * 2, tls.read(&mut buffer)).await {
                if n == 0 {
                    break;
                }
            }
        }
    });
    addr
}
