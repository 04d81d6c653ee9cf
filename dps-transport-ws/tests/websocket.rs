//! What only the WebSocket transport does: URL checks, the subprotocol, HTTP refusals and the
//! HTTP CONNECT proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use dps_auth::{Credentials, SasToken};
use dps_testkit::conformance::echo::EchoServer;
use dps_testkit::conformance::{STEP, trusting};
use dps_testkit::pki::Ca;
use dps_transport_mqtt::{ConnectOptions, QoS, Transport, TransportError};
use dps_transport_ws::{ProxyConfig, WebSocketTransport};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

fn options(host: String, client_id: &str, server: &EchoServer) -> ConnectOptions {
    ConnectOptions::new(
        host,
        client_id,
        "user",
        Credentials::Sas(SasToken::from(
            "SharedAccessSignature sig=SECRET".to_owned(),
        )),
    )
    .with_tls(trusting(server.tls.ca_certificate()))
    .with_connect_timeout(STEP)
}

async fn connect_err(transport: &WebSocketTransport, options: &ConnectOptions) -> TransportError {
    tokio::time::timeout(STEP * 2, transport.connect(options))
        .await
        .expect("connect attempt in time")
        .expect_err("the connection must fail")
}

#[tokio::test]
async fn plaintext_urls_are_refused_and_wss_urls_work() {
    let mut server = EchoServer::start().await;
    let port = server.servers.https_addr().port();
    let transport = WebSocketTransport::new();
    for insecure in [
        format!("ws://localhost:{port}/$iothub/websocket"),
        format!("http://localhost:{port}"),
        format!("WS://localhost:{port}"),
    ] {
        let error = connect_err(&transport, &options(insecure.clone(), "dev-ws", &server)).await;
        assert!(
            matches!(error, TransportError::InsecureUrl(_)),
            "{insecure}: {error:?}"
        );
        assert!(!error.is_retriable());
    }
    // Nothing reached the server.
    assert!(server.events.try_recv().is_err());

    let host = format!("wss://localhost:{port}/$iothub/websocket");
    let connection = transport
        .connect(&options(host, "dev-wss", &server))
        .await
        .unwrap();
    connection.disconnect().await;
    server.closed("dev-wss").await;
    server.servers.shutdown().await;
}

#[tokio::test]
async fn another_path_is_refused_with_its_http_status() {
    let server = EchoServer::start().await;
    let host = format!(
        "wss://localhost:{}/other",
        server.servers.https_addr().port()
    );
    let error = connect_err(
        &WebSocketTransport::new(),
        &options(host, "dev-path", &server),
    )
    .await;
    assert!(
        matches!(
            error,
            TransportError::WebSocket {
                status: Some(400),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retriable());
    server.servers.shutdown().await;
}

/// A TLS WebSocket server that answers the upgrade with `protocol` (or none).
async fn websocket_server(ca: &Ca, protocol: Option<&'static str>) -> SocketAddr {
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
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                #[allow(clippy::result_large_err)] // tungstenite's callback signature
                let callback = move |_: &Request, mut response: Response| {
                    if let Some(protocol) = protocol {
                        response
                            .headers_mut()
                            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
                    }
                    Ok(response)
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await {
                    use futures_util::StreamExt as _;
                    let _ = tokio::time::timeout(STEP, ws.next()).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_mqtt_subprotocol_is_required_in_the_answer() {
    let ca = Ca::root("WS Test CA");
    for protocol in [None, Some("other")] {
        let addr = websocket_server(&ca, protocol).await;
        let options = ConnectOptions::new(
            format!("localhost:{}", addr.port()),
            "dev",
            "user",
            Credentials::Sas(SasToken::from("x".to_owned())),
        )
        .with_tls(trusting(&ca.der))
        .with_connect_timeout(STEP);
        let error = connect_err(&WebSocketTransport::new(), &options).await;
        match &error {
            TransportError::WebSocket {
                status: None,
                message,
            } => {
                assert!(message.contains("subprotocol"), "{message}");
            }
            other => panic!("{protocol:?}: expected a websocket error, got {other:?}"),
        }
    }
}

/// What the test proxy saw.
#[derive(Default)]
struct ProxyLog {
    targets: Vec<String>,
    authorizations: Vec<Option<String>>,
}

/// A tiny HTTP CONNECT proxy requiring `Proxy-Authorization: Basic user:pass`.
async fn start_proxy(user: &str, password: &str) -> (SocketAddr, Arc<Mutex<ProxyLog>>) {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let expected = expected.clone();
            let log = Arc::clone(&shared);
            tokio::spawn(async move { proxy_one(client, &expected, &log).await });
        }
    });
    (addr, log)
}

async fn proxy_one(mut client: TcpStream, expected: &str, log: &Mutex<ProxyLog>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match client.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(_) => return,
        }
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap();
    let target = request_line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
        .unwrap()
        .to_owned();
    let authorization = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let authorized = authorization.as_deref() == Some(expected);
    {
        let mut log = log.lock().unwrap();
        log.targets.push(target.clone());
        log.authorizations.push(authorization);
    }
    if !authorized {
        let _ = client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target.as_str()).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[tokio::test]
async fn http_connect_proxy_with_basic_auth() {
    let mut server = EchoServer::start().await;
    let (proxy_addr, log) = start_proxy("alice", "s3cret").await;
    let proxy_url = format!("http://{proxy_addr}");
    let host = format!("localhost:{}", server.servers.https_addr().port());

    for proxy in [
        ProxyConfig::new(proxy_url.clone()),
        ProxyConfig::new(proxy_url.clone()).with_basic_auth("alice", "wrong"),
    ] {
        let transport = WebSocketTransport::via_proxy(proxy);
        let error = connect_err(&transport, &options(host.clone(), "dev-proxy", &server)).await;
        assert_eq!(error, TransportError::Proxy { status: 407 });
        assert!(!error.is_retriable());
    }

    let transport = WebSocketTransport::via_proxy(
        ProxyConfig::new(proxy_url).with_basic_auth("alice", "s3cret"),
    );
    let debug = format!("{transport:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("alice"),
        "{debug}"
    );
    let mut connection = transport
        .connect(&options(host.clone(), "dev-proxy", &server))
        .await
        .unwrap();
    connection
        .subscribe(&[("echo/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    connection
        .publish("through/proxy", "hi", QoS::AtLeastOnce)
        .await
        .unwrap();
    match tokio::time::timeout(STEP, connection.recv()).await.unwrap() {
        Some(dps_transport_mqtt::Incoming::Publish {
            topic, packet_id, ..
        }) => {
            assert_eq!(topic, "echo/through/proxy");
            connection.ack(packet_id.expect("a QoS 1 echo")).unwrap();
        }
        other => panic!("{other:?}"),
    }
    connection.disconnect().await;
    server.closed("dev-proxy").await;

    {
        let log = log.lock().unwrap();
        assert_eq!(log.targets, vec![host.clone(), host.clone(), host]);
        assert_eq!(log.authorizations[0], None);
        assert_eq!(
            log.authorizations[2].as_deref(),
            Some("Basic YWxpY2U6czNjcmV0")
        );
    }
    server.servers.shutdown().await;
}

#[tokio::test]
async fn a_proxy_that_cannot_reach_the_target_is_retriable() {
    let server = EchoServer::start().await;
    let (proxy_addr, _log) = start_proxy("u", "p").await;
    // Nothing listens on port 1.
    let transport =
        WebSocketTransport::via_proxy(ProxyConfig::new(format!("http://u:p@{proxy_addr}")));
    let error = connect_err(&transport, &options("localhost:1".into(), "dev", &server)).await;
    assert_eq!(error, TransportError::Proxy { status: 502 });
    assert!(error.is_retriable());
    server.servers.shutdown().await;
}

/// A WebSocket connection attempt boxes each stage (TCP or the proxy tunnel, TLS, the upgrade,
/// MQTT) while it runs, and each stage owns the stream while it does: thousands of devices
/// connecting at once each hold the state of the stage they wait in, not a TLS stream in the
/// attempt's own future besides (#16).
#[test]
fn a_connection_attempt_holds_its_stages_apart() {
    let options = ConnectOptions::new(
        "localhost:1",
        "device-1",
        "user",
        Credentials::Sas(SasToken::from("t".to_owned())),
    );
    let transport = WebSocketTransport::new();
    let attempt = transport.connect(&options);
    let size = std::mem::size_of_val(&*attempt);
    println!("WebSocketTransport::connect future: {size} bytes");
    // 0.2 KB; a TLS stream alone is 1.1 KB.
    assert!(size < 512, "connect future: {size} bytes");
}
