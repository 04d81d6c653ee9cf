//! Small TLS servers that must be refused, and a ClientHello parser.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::STEP;
use crate::pki::Leaf;

/// What a ClientHello offered.
#[derive(Debug, Default)]
pub struct Hello {
    /// The record's legacy version field.
    pub legacy_version: u16,
    /// The offered cipher suites.
    pub cipher_suites: Vec<u16>,
    /// The `supported_versions` extension.
    pub supported_versions: Vec<u16>,
    /// The `signature_algorithms` extension.
    pub signature_algorithms: Vec<u16>,
    /// The SNI host name.
    pub server_name: Option<String>,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn u16_list(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|c| u16_at(c, 0)).collect()
}

/// Parses a ClientHello handshake message (without the record header).
pub fn parse_hello(msg: &[u8]) -> Hello {
    assert_eq!(msg[0], 1, "not a ClientHello");
    let body = &msg[4..];
    let mut hello = Hello {
        legacy_version: u16_at(body, 0),
        ..Hello::default()
    };
    let mut at = 2 + 32;
    at += 1 + body[at] as usize; // session id
    let suites_len = u16_at(body, at) as usize;
    hello.cipher_suites = u16_list(&body[at + 2..at + 2 + suites_len]);
    at += 2 + suites_len;
    at += 1 + body[at] as usize; // compression methods
    let ext_end = at + 2 + u16_at(body, at) as usize;
    at += 2;
    while at < ext_end {
        let kind = u16_at(body, at);
        let len = u16_at(body, at + 2) as usize;
        let data = &body[at + 4..at + 4 + len];
        match kind {
            0x0000 => {
                let name_len = u16_at(data, 3) as usize;
                hello.server_name =
                    Some(String::from_utf8(data[5..5 + name_len].to_vec()).unwrap());
            }
            0x000d => hello.signature_algorithms = u16_list(&data[2..]),
            0x002b => hello.supported_versions = u16_list(&data[1..]),
            _ => {}
        }
        at += 4 + len;
    }
    hello
}

/// A raw server that records the ClientHello of the first connection and answers it with
/// `answer` (raw TLS records), then waits for the client to give up.
pub async fn raw_server(answer: Vec<u8>) -> (SocketAddr, oneshot::Receiver<Hello>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let Some(hello) = read_handshake_message(&mut tcp).await else {
            return;
        };
        let _ = tx.send(parse_hello(&hello));
        let _ = tcp.write_all(&answer).await;
        let mut sink = [0u8; 1024];
        while matches!(
            tokio::time::timeout(STEP, tcp.read(&mut sink)).await,
            Ok(Ok(n)) if n > 0
        ) {}
    });
    (addr, rx)
}

/// Reads TLS handshake records until one whole handshake message is in.
async fn read_handshake_message(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    loop {
        let mut header = [0u8; 5];
        tcp.read_exact(&mut header).await.ok()?;
        assert_eq!(header[0], 0x16, "expected a handshake record");
        let mut fragment = vec![0u8; u16_at(&header, 3) as usize];
        tcp.read_exact(&mut fragment).await.ok()?;
        message.extend(fragment);
        if message.len() >= 4 {
            let len = (usize::from(message[1]) << 16)
                | (usize::from(message[2]) << 8)
                | usize::from(message[3]);
            if message.len() >= 4 + len {
                message.truncate(4 + len);
                return Some(message);
            }
        }
    }
}

/// A ServerHello record with `version` and `suite`, no extensions.
pub fn server_hello(version: [u8; 2], suite: u16) -> Vec<u8> {
    let mut body = version.to_vec();
    body.extend([9u8; 32]);
    body.push(0); // no session id
    body.extend(suite.to_be_bytes());
    body.push(0); // null compression
    let mut handshake = vec![2, 0, 0, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, version[0], version[1]];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// A rustls server presenting `leaf` (signed by `issuer_chain`), accepting connections until
/// the test ends; handshake failures are ignored.
pub async fn rustls_server(
    leaf: &Leaf,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> SocketAddr {
    let mut certificates = vec![leaf.der()];
    certificates.extend(chain);
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, leaf.key())
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut sink = [0u8; 1024];
                    let _ = tokio::time::timeout(STEP, tls.read(&mut sink)).await;
                }
            });
        }
    });
    addr
}
