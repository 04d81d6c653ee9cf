//! End-to-end tests of the frame over real sockets on 127.0.0.1 (ephemeral ports): TLS policy,
//! MQTT over TLS and over WebSocket with a real MQTT client, keep-alive, malformed and oversized
//! input, the HTTPS side, client certificates, and the TLS material's persistence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use dps_emulator::testing::allowed_cipher_suites;
use dps_emulator::testing::{
    Close, CloseReason, ConnectRequest, ConnectReturnCode, HttpHandler, HttpRequest, HttpResponse,
    ListenerTransport as Transport, MqttHandler, MqttSession, Outbox, PublishQoS as QoS,
    ServerOptions, Servers, SubscribeOutcome, TlsMaterial,
};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish, Subscribe};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const STEP: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Test handlers

/// What the echo handler observed.
#[derive(Default)]
struct Seen {
    connects: Mutex<Vec<ConnectRequest>>,
}

/// Accepts every client (except client id "refuse-me"); echoes each publish on `echo/{topic}`
/// with the same QoS; reports PUBACKs and closes on channels.
struct EchoHandler {
    seen: Arc<Seen>,
    events: mpsc::UnboundedSender<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    PubAck(String, u16),
    Closed(String, CloseReason),
}

struct EchoSession {
    client_id: String,
    outbox: Outbox,
    events: mpsc::UnboundedSender<Event>,
}

#[async_trait]
impl MqttHandler for EchoHandler {
    async fn connect(
        &self,
        request: ConnectRequest,
        outbox: Outbox,
    ) -> Result<Box<dyn MqttSession>, ConnectReturnCode> {
        let client_id = request.client_id.clone();
        self.seen.connects.lock().unwrap().push(request);
        if client_id == "refuse-me" {
            return Err(ConnectReturnCode::NotAuthorized);
        }
        Ok(Box::new(EchoSession {
            client_id,
            outbox,
            events: self.events.clone(),
        }))
    }
}

#[async_trait]
impl MqttSession for EchoSession {
    async fn subscribe(
        &mut self,
        filters: Vec<(String, QoS)>,
    ) -> Result<Vec<SubscribeOutcome>, Close> {
        Ok(filters
            .into_iter()
            .map(|(filter, qos)| {
                if filter.starts_with("forbidden") {
                    SubscribeOutcome::Failure
                } else {
                    SubscribeOutcome::Granted(if qos == QoS::ExactlyOnce {
                        QoS::AtLeastOnce
                    } else {
                        qos
                    })
                }
            })
            .collect())
    }

    async fn unsubscribe(&mut self, _filters: Vec<String>) -> Result<(), Close> {
        Ok(())
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: QoS,
        _retain: bool,
    ) -> Result<(), Close> {
        if topic == "close-me" {
            return Err(Close);
        }
        self.outbox
            .publish(format!("echo/{topic}"), payload, qos)
            .map_err(|_| Close)?;
        Ok(())
    }

    async fn puback(&mut self, pkid: u16) {
        let _ = self
            .events
            .send(Event::PubAck(self.client_id.clone(), pkid));
    }

    async fn closed(&mut self, reason: CloseReason) {
        let _ = self
            .events
            .send(Event::Closed(self.client_id.clone(), reason));
    }
}

/// Answers every request with a JSON summary of it.
struct InfoHandler;

#[async_trait]
impl HttpHandler for InfoHandler {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        HttpResponse::json(
            StatusCode::OK,
            &serde_json::json!({
                "method": request.method.as_str(),
                "path": request.path,
                "decoded": request.decoded_path(),
                "api": request.query_param("api-version"),
                "body": String::from_utf8_lossy(&request.body),
                "certs": request.peer_certificates.len(),
            }),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Harness

struct Emulator {
    _dir: TempDir,
    tls: TlsMaterial,
    servers: Servers,
    seen: Arc<Seen>,
    events: mpsc::UnboundedReceiver<Event>,
}

async fn start() -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
    let seen = Arc::new(Seen::default());
    let (tx, events) = mpsc::unbounded_channel();
    let handler = Arc::new(EchoHandler {
        seen: Arc::clone(&seen),
        events: tx,
    });
    let options = ServerOptions::new(tls.server_config(), handler, Arc::new(InfoHandler));
    let servers = Servers::start(options).await.unwrap();
    Emulator {
        _dir: dir,
        tls,
        servers,
        seen,
        events,
    }
}

impl Emulator {
    async fn closed_reason(&mut self, client_id: &str) -> CloseReason {
        closed_reason(&mut self.events, client_id).await
    }
}

/// Waits for the session of `client_id` to report its end (other events are skipped).
async fn closed_reason(
    events: &mut mpsc::UnboundedReceiver<Event>,
    client_id: &str,
) -> CloseReason {
    loop {
        let event = tokio::time::timeout(STEP, events.recv())
            .await
            .expect("an event in time")
            .expect("handler alive");
        if let Event::Closed(id, reason) = event {
            if id == client_id {
                return reason;
            }
        }
    }
}

fn roots(ca: &CertificateDer<'static>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    roots
}

/// A client config with the ring provider (all its suites) restricted to `versions`.
fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth()
}

fn default_client_config(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    Arc::new(client_config(ca, rustls::DEFAULT_VERSIONS))
}

async fn tls_connect(
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, usize::MAX).unwrap();
    buf.to_vec()
}

fn connect_packet(client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut connect = Connect::new(client_id);
    connect.keep_alive = keep_alive;
    encode(&Packet::Connect(connect))
}

/// Reads one MQTT packet from a raw stream (test side).
async fn read_packet<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Packet {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(packet) => return packet,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                let n = tokio::time::timeout(STEP, stream.read_buf(buf))
                    .await
                    .expect("data in time")
                    .unwrap();
                assert!(n > 0, "connection closed while a packet was expected");
            }
            Err(e) => panic!("bad packet from the server: {e}"),
        }
    }
}

/// Waits until the server closes the stream; returns how long that took.
async fn wait_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut sink)).await {
            Err(_) => panic!("the server did not close the connection within {limit:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

fn mqtt_options(
    client_id: &str,
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(client_id, "localhost", addr.port());
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(default_client_config(ca)),
    ));
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// Drives a rumqttc event loop until `want` matches an incoming packet.
async fn until<T>(
    eventloop: &mut rumqttc::EventLoop,
    mut want: impl FnMut(&rumqttc::Packet) -> Option<T>,
) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(remaining, eventloop.poll())
            .await
            .expect("MQTT event in time")
            .expect("MQTT connection healthy");
        if let rumqttc::Event::Incoming(packet) = event {
            if let Some(found) = want(&packet) {
                return found;
            }
        }
    }
}

/// CONNECT, SUBSCRIBE, QoS 1 publish both ways (with the client's PUBACK reaching the session).
async fn echo_round_trip(emu: &mut Emulator, client_id: &str, options: rumqttc::MqttOptions) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    until(&mut eventloop, |p| match p {
        rumqttc::Packet::ConnAck(ack) => {
            assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
            Some(())
        }
        _ => None,
    })
    .await;

    client
        .subscribe("echo/#", rumqttc::QoS::ExactlyOnce)
        .await
        .unwrap();
    client
        .subscribe("forbidden/x", rumqttc::QoS::AtMostOnce)
        .await
        .unwrap();
    let granted = until(&mut eventloop, |p| match p {
        rumqttc::Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        granted,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    let refused = until(&mut eventloop, |p| match p {
        rumqttc::Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(refused, vec![rumqttc::SubscribeReasonCode::Failure]);

    client
        .publish("t/1", rumqttc::QoS::AtLeastOnce, false, "hello")
        .await
        .unwrap();
    let mut got_puback = false;
    let mut echoed = None;
    while !(got_puback && echoed.is_some()) {
        until(&mut eventloop, |p| match p {
            rumqttc::Packet::PubAck(_) => {
                got_puback = true;
                Some(())
            }
            rumqttc::Packet::Publish(publish) => {
                echoed = Some(publish.clone());
                Some(())
            }
            _ => None,
        })
        .await;
    }
    let echoed = echoed.unwrap();
    assert_eq!(echoed.topic, "echo/t/1");
    assert_eq!(&echoed.payload[..], b"hello");
    assert_eq!(echoed.qos, rumqttc::QoS::AtLeastOnce);
    // rumqttc acknowledges automatically; the PUBACK reaches the session with the same id.
    let event = loop {
        // Keep the client's event loop turning so its PUBACK is written.
        tokio::select! {
            event = emu.events.recv() => break event.unwrap(),
            _ = eventloop.poll() => {}
        }
    };
    assert_eq!(event, Event::PubAck(client_id.to_string(), echoed.pkid));

    client.disconnect().await.unwrap();
    // Flush the DISCONNECT.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while eventloop.poll().await.is_ok() {}
    })
    .await;
    assert_eq!(
        emu.closed_reason(client_id).await,
        CloseReason::ClientDisconnect
    );
}

// ---------------------------------------------------------------------------------------------
// TLS policy

#[tokio::test]
async fn tls12_and_tls13_negotiate_only_allowed_suites() {
    let emu = start().await;
    let ca = emu.tls.ca_certificate().clone();
    let allowed: Vec<_> = allowed_cipher_suites().iter().map(|s| s.suite()).collect();
    for (versions, expected) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        for addr in [emu.servers.mqtt_addr(), emu.servers.https_addr()] {
            let stream = tls_connect(Arc::new(client_config(&ca, versions)), addr)
                .await
                .expect("handshake");
            let (_, connection) = stream.get_ref();
            assert_eq!(connection.protocol_version(), Some(expected));
            let suite = connection.negotiated_cipher_suite().unwrap().suite();
            assert!(allowed.contains(&suite), "{suite:?} is not allowed");
            assert_eq!(connection.alpn_protocol(), None);
        }
    }
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn a_client_with_only_a_disallowed_suite_cannot_connect() {
    let emu = start().await;
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    };
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots(emu.tls.ca_certificate()))
        .with_no_client_auth();
    let result = tls_connect(Arc::new(config), emu.servers.mqtt_addr()).await;
    assert!(result.is_err(), "TLS 1.2 CHACHA20 must be refused");
    emu.servers.shutdown().await;
}

/// A hand-built ClientHello (rustls cannot speak TLS 1.1 or offer CBC suites, so the refused
/// cases are written byte by byte). Offers ECDHE on x25519/P-256 and ECDSA/RSA signatures.
fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend((data.len() as u16).to_be_bytes());
        out.extend(data);
        out
    }
    fn list16(items: &[u16]) -> Vec<u8> {
        let mut out = ((items.len() * 2) as u16).to_be_bytes().to_vec();
        items.iter().for_each(|i| out.extend(i.to_be_bytes()));
        out
    }
    let name = b"localhost";
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0);
    sni.extend((name.len() as u16).to_be_bytes());
    sni.extend(name);
    let mut extensions = ext(0x0000, &sni);
    extensions.extend(ext(0x000a, &list16(&[0x001d, 0x0017])));
    extensions.extend(ext(0x000b, &[1, 0]));
    extensions.extend(ext(0x000d, &list16(&[0x0403, 0x0804, 0x0401])));

    let mut body = version.to_vec();
    body.extend([7u8; 32]);
    body.push(0);
    body.extend(list16(suites));
    body.extend([1, 0]);
    body.extend((extensions.len() as u16).to_be_bytes());
    body.extend(extensions);
    let mut handshake = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// Sends a raw ClientHello and returns the first record's content type and, for an alert,
/// its description.
async fn raw_hello(addr: std::net::SocketAddr, hello: &[u8]) -> (u8, Option<u8>) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut head = [0u8; 7];
    tokio::time::timeout(STEP, tcp.read_exact(&mut head))
        .await
        .expect("an answer in time")
        .unwrap();
    (head[0], (head[0] == 0x15).then_some(head[6]))
}

#[tokio::test]
async fn tls11_and_cbc_only_clients_are_refused() {
    let emu = start().await;
    const ECDHE_ECDSA_AES128_GCM_SHA256: u16 = 0xc02b;
    const ECDHE_ECDSA_AES128_CBC_SHA: u16 = 0xc009;
    const ECDHE_ECDSA_AES128_CBC_SHA256: u16 = 0xc023;
    const ECDHE_RSA_AES256_CBC_SHA384: u16 = 0xc028;
    for addr in [emu.servers.mqtt_addr(), emu.servers.https_addr()] {
        // Control: the same hand-built hello with an allowed suite gets a ServerHello.
        let good = client_hello([3, 3], &[ECDHE_ECDSA_AES128_GCM_SHA256]);
        assert_eq!(raw_hello(addr, &good).await, (0x16, None));
        // TLS 1.1 only: protocol_version alert.
        let tls11 = client_hello([3, 2], &[ECDHE_ECDSA_AES128_CBC_SHA]);
        assert_eq!(raw_hello(addr, &tls11).await, (0x15, Some(70)));
        // TLS 1.2 with CBC suites only (still on IoT Hub's list, but not offered): handshake_failure.
        let cbc = client_hello(
            [3, 3],
            &[ECDHE_ECDSA_AES128_CBC_SHA256, ECDHE_RSA_AES256_CBC_SHA384],
        );
        assert_eq!(raw_hello(addr, &cbc).await, (0x15, Some(40)));
    }
    emu.servers.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// MQTT with a real client

#[tokio::test]
async fn mqtt_over_tls_with_rumqttc() {
    let mut emu = start().await;
    let options = mqtt_options("dev-tcp", emu.servers.mqtt_addr(), emu.tls.ca_certificate());
    echo_round_trip(&mut emu, "dev-tcp", options).await;
    let connects = emu.seen.connects.lock().unwrap().clone();
    assert_eq!(connects[0].transport, Transport::Tcp);
    assert_eq!(connects[0].keep_alive, 30);
    assert!(connects[0].peer_certificates.is_empty());
    drop(connects);
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn mqtt_over_websocket_with_rumqttc() {
    let mut emu = start().await;
    let url = format!(
        "wss://localhost:{}/$iothub/websocket?iothub-no-client-cert=true",
        emu.servers.https_addr().port()
    );
    let mut options = rumqttc::MqttOptions::new("dev-ws", url, emu.servers.https_addr().port());
    options.set_transport(rumqttc::Transport::wss_with_config(
        rumqttc::TlsConfiguration::Rustls(default_client_config(emu.tls.ca_certificate())),
    ));
    echo_round_trip(&mut emu, "dev-ws", options).await;
    assert_eq!(
        emu.seen.connects.lock().unwrap()[0].transport,
        Transport::WebSocket
    );
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn refused_connect_gets_its_code() {
    let emu = start().await;
    let options = mqtt_options(
        "refuse-me",
        emu.servers.mqtt_addr(),
        emu.tls.ca_certificate(),
    );
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let error = tokio::time::timeout(STEP, eventloop.poll())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            error,
            rumqttc::ConnectionError::ConnectionRefused(rumqttc::ConnectReturnCode::NotAuthorized)
        ),
        "{error:?}"
    );
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn websocket_framing_pings_and_split_packets() {
    let mut emu = start().await;
    let tls = tls_connect(
        default_client_config(emu.tls.ca_certificate()),
        emu.servers.https_addr(),
    )
    .await
    .unwrap();
    let mut request = "wss://localhost/$iothub/websocket"
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["sec-websocket-protocol"], "mqtt");

    // CONNECT split over two messages.
    let connect = connect_packet("dev-frames", 0);
    let (a, b) = connect.split_at(5);
    ws.send(Message::Binary(Bytes::copy_from_slice(a)))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::copy_from_slice(b)))
        .await
        .unwrap();
    // SUBSCRIBE and PINGREQ in one message.
    let mut subscribe = Subscribe::new("echo/#", QoS::AtMostOnce);
    subscribe.pkid = 7;
    let mut both = encode(&Packet::Subscribe(subscribe));
    both.extend(encode(&Packet::PingReq));
    ws.send(Message::Binary(both.into())).await.unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .unwrap();

    let mut received = Vec::new();
    let mut pong = false;
    while received.len() < 3 || !pong {
        let message = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("message in time")
            .unwrap()
            .unwrap();
        match message {
            Message::Binary(data) => {
                // The server writes one packet per message.
                let mut buf = BytesMut::from(&data[..]);
                received.push(Packet::read(&mut buf, 1 << 20).unwrap());
                assert!(buf.is_empty());
            }
            Message::Pong(data) => {
                assert_eq!(&data[..], b"hi");
                pong = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(received[0], Packet::ConnAck(_)));
    assert!(matches!(&received[1], Packet::SubAck(ack) if ack.pkid == 7));
    assert_eq!(received[2], Packet::PingResp);

    // A close frame without DISCONNECT ends the session as a network loss.
    ws.close(None).await.unwrap();
    assert_eq!(emu.closed_reason("dev-frames").await, CloseReason::Network);
    emu.servers.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Protocol enforcement on raw TLS connections

async fn raw_connected(
    emu: &Emulator,
    client_id: &str,
    keep_alive: u16,
) -> (TlsStream<TcpStream>, BytesMut) {
    let mut stream = tls_connect(
        default_client_config(emu.tls.ca_certificate()),
        emu.servers.mqtt_addr(),
    )
    .await
    .unwrap();
    stream
        .write_all(&connect_packet(client_id, keep_alive))
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    match read_packet(&mut stream, &mut buf).await {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.code, ConnectReturnCode::Success);
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    (stream, buf)
}

#[tokio::test]
async fn keep_alive_timeout_closes_an_idle_connection() {
    let mut emu = start().await;
    let (mut stream, _) = raw_connected(&emu, "idle", 1).await;
    let elapsed = wait_closed(&mut stream, Duration::from_secs(4)).await;
    assert!(
        elapsed >= Duration::from_millis(1300) && elapsed < Duration::from_millis(2600),
        "closed after {elapsed:?}"
    );
    assert_eq!(
        emu.closed_reason("idle").await,
        CloseReason::KeepAliveTimeout
    );
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn pings_keep_a_connection_alive() {
    let mut emu = start().await;
    let (mut stream, mut buf) = raw_connected(&emu, "pinger", 1).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        stream.write_all(&encode(&Packet::PingReq)).await.unwrap();
        assert_eq!(read_packet(&mut stream, &mut buf).await, Packet::PingResp);
    }
    stream
        .write_all(&encode(&Packet::Disconnect))
        .await
        .unwrap();
    assert_eq!(
        emu.closed_reason("pinger").await,
        CloseReason::ClientDisconnect
    );
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn garbage_is_closed_without_harm() {
    let mut emu = start().await;
    // Garbage instead of CONNECT.
    let mut stream = tls_connect(
        default_client_config(emu.tls.ca_certificate()),
        emu.servers.mqtt_addr(),
    )
    .await
    .unwrap();
    stream
        .write_all(b"\xff\xff\xff\xff\xffGET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    wait_closed(&mut stream, STEP).await;

    // A PUBLISH before CONNECT.
    let mut stream = tls_connect(
        default_client_config(emu.tls.ca_certificate()),
        emu.servers.mqtt_addr(),
    )
    .await
    .unwrap();
    let publish = Publish::new("t", QoS::AtMostOnce, "x");
    stream
        .write_all(&encode(&Packet::Publish(publish)))
        .await
        .unwrap();
    wait_closed(&mut stream, STEP).await;

    // Garbage after a good CONNECT: a reserved packet type.
    let (mut stream, _) = raw_connected(&emu, "garbage", 0).await;
    stream.write_all(&[0xF0, 0x02, 0x00, 0x00]).await.unwrap();
    wait_closed(&mut stream, STEP).await;
    assert_eq!(
        emu.closed_reason("garbage").await,
        CloseReason::ProtocolError
    );

    // A second CONNECT is a protocol error too.
    let (mut stream, _) = raw_connected(&emu, "twice", 0).await;
    stream.write_all(&connect_packet("twice", 0)).await.unwrap();
    wait_closed(&mut stream, STEP).await;
    assert_eq!(emu.closed_reason("twice").await, CloseReason::ProtocolError);

    // Plain TCP (no TLS) is not answered with MQTT either.
    let mut plain = TcpStream::connect(emu.servers.mqtt_addr()).await.unwrap();
    plain.write_all(&connect_packet("plain", 0)).await.unwrap();
    wait_closed(&mut plain, STEP).await;

    // The server is still fine.
    let (_stream, _) = raw_connected(&emu, "after", 0).await;
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_1() {
    let emu = start().await;
    let mut stream = tls_connect(
        default_client_config(emu.tls.ca_certificate()),
        emu.servers.mqtt_addr(),
    )
    .await
    .unwrap();
    let mut connect = connect_packet("old", 0);
    // Byte 8 is the protocol level in a CONNECT with a one-byte remaining length.
    assert_eq!(connect[8], 4);
    connect[8] = 3;
    stream.write_all(&connect).await.unwrap();
    let mut buf = BytesMut::new();
    match read_packet(&mut stream, &mut buf).await {
        Packet::ConnAck(ack) => assert_eq!(ack.code, ConnectReturnCode::RefusedProtocolVersion),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    wait_closed(&mut stream, STEP).await;
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn an_oversized_packet_closes_the_connection() {
    let mut emu = start().await;
    let (mut stream, _) = raw_connected(&emu, "big", 0).await;
    // A PUBLISH announcing 300 KiB: refused from its fixed header, before the payload arrives.
    let mut header = vec![0x30];
    let mut len = 300 * 1024usize;
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        header.push(byte);
        if len == 0 {
            break;
        }
    }
    stream.write_all(&header).await.unwrap();
    wait_closed(&mut stream, STEP).await;
    assert_eq!(emu.closed_reason("big").await, CloseReason::ProtocolError);

    // Just under the limit is fine.
    let (mut stream, mut buf) = raw_connected(&emu, "large", 0).await;
    let mut publish = Publish::new("t", QoS::AtLeastOnce, vec![7u8; 256 * 1024]);
    publish.pkid = 9;
    stream
        .write_all(&encode(&Packet::Publish(publish)))
        .await
        .unwrap();
    loop {
        match read_packet(&mut stream, &mut buf).await {
            Packet::PubAck(ack) => {
                assert_eq!(ack.pkid, 9);
                break;
            }
            Packet::Publish(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn session_close_and_qos2_handshake() {
    let mut emu = start().await;
    let (mut stream, mut buf) = raw_connected(&emu, "q2", 0).await;
    let mut publish = Publish::new("t", QoS::ExactlyOnce, "x");
    publish.pkid = 3;
    let bytes = encode(&Packet::Publish(publish));
    stream.write_all(&bytes).await.unwrap();
    let mut echoes = 0;
    let mut pubrecs = 0;
    // A retransmission is acknowledged again but not delivered again.
    stream.write_all(&bytes).await.unwrap();
    while pubrecs < 2 {
        match read_packet(&mut stream, &mut buf).await {
            Packet::PubRec(rec) => {
                assert_eq!(rec.pkid, 3);
                pubrecs += 1;
            }
            Packet::Publish(_) => echoes += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    stream
        .write_all(&encode(&Packet::PubRel(
            rumqttc::mqttbytes::v4::PubRel::new(3),
        )))
        .await
        .unwrap();
    loop {
        match read_packet(&mut stream, &mut buf).await {
            Packet::PubComp(comp) => {
                assert_eq!(comp.pkid, 3);
                break;
            }
            Packet::Publish(_) => echoes += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // No subscription, but the echo handler publishes anyway: exactly one echo.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(echoes, 1);

    // The session refuses this topic: the connection is dropped without PUBACK.
    let mut publish = Publish::new("close-me", QoS::AtLeastOnce, "x");
    publish.pkid = 4;
    stream
        .write_all(&encode(&Packet::Publish(publish)))
        .await
        .unwrap();
    wait_closed(&mut stream, STEP).await;
    assert_eq!(emu.closed_reason("q2").await, CloseReason::ClosedByServer);
    emu.servers.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// HTTPS

/// Sends one raw HTTP/1.1 request over TLS and returns (status, headers+body text).
async fn http_exchange(emu: &Emulator, request: &str) -> (u16, String) {
    let mut stream = tls_connect(
        default_client_config(emu.tls.ca_certificate()),
        emu.servers.https_addr(),
    )
    .await
    .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read until one complete response (the connection may stay open afterwards).
    let mut response = Vec::new();
    while !response_complete(&response) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(STEP, stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// Whether `bytes` holds a whole response: headers, and as much body as content-length says.
fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

const UPGRADE_HEADERS: &str = "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test]
async fn websocket_upgrades_are_checked() {
    let emu = start().await;
    let cases = [
        format!(
            "GET /$iothub/websocket HTTP/1.1\r\n{UPGRADE_HEADERS}Sec-WebSocket-Protocol: foo\r\n\r\n"
        ),
        format!("GET /$iothub/websocket HTTP/1.1\r\n{UPGRADE_HEADERS}\r\n"),
        format!("GET /other HTTP/1.1\r\n{UPGRADE_HEADERS}Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
        "GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            .to_string(),
    ];
    for request in cases {
        let (status, text) = http_exchange(&emu, &request).await;
        assert_eq!(status, 400, "{request:?} -> {text}");
    }
    let (status, text) = http_exchange(
        &emu,
        &format!("GET /$iothub/websocket?iothub-no-client-cert=true HTTP/1.1\r\n{UPGRADE_HEADERS}Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 101, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("sec-websocket-protocol: mqtt")
    );
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    emu.servers.shutdown().await;
}

#[tokio::test]
async fn other_requests_reach_the_http_handler() {
    let emu = start().await;
    let (status, text) = http_exchange(
        &emu,
        "PUT /enrollments/dev%2D1?api-version=2021-10-01 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbody",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["path"], "/enrollments/dev%2D1");
    assert_eq!(json["decoded"], "/enrollments/dev-1");
    assert_eq!(json["api"], "2021-10-01");
    assert_eq!(json["body"], "body");
    assert_eq!(json["certs"], 0);

    // Bodies above the limit are refused before the handler.
    let (status, _) = http_exchange(
        &emu,
        "POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000000\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413);
    emu.servers.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test CA (not the emulator's) and a device certificate it signed.
fn device_identity(cn: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Device CA");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca).unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

#[tokio::test]
async fn client_certificate_reaches_connect_request() {
    let mut emu = start().await;
    let (cert, key) = device_identity("device1");
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots(emu.tls.ca_certificate()))
                .with_client_auth_cert(vec![cert.clone()], key.clone_key())
                .unwrap();
        let mut options =
            rumqttc::MqttOptions::new("device1", "localhost", emu.servers.mqtt_addr().port());
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
        ));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
        until(&mut eventloop, |p| {
            matches!(p, rumqttc::Packet::ConnAck(_)).then_some(())
        })
        .await;
        client.disconnect().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
        assert_eq!(
            emu.closed_reason("device1").await,
            CloseReason::ClientDisconnect
        );
    }
    let connects = emu.seen.connects.lock().unwrap().clone();
    assert_eq!(connects.len(), 2);
    for connect in connects {
        assert_eq!(connect.peer_certificates, vec![cert.clone()]);
    }
    emu.servers.shutdown().await;
}

#[test]
fn tls_material_persists_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
    let second = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.server_certificate(), second.server_certificate());
    assert_eq!(
        std::fs::read_to_string(first.ca_path()).unwrap(),
        first.ca_pem()
    );
    #[cfg(unix)]
    for key in ["ca.key", "server.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    // The server certificate chains to the CA for localhost and 127.0.0.1 (webpki, as clients do).
    let anchor = webpki::anchor_from_trusted_cert(first.ca_certificate()).unwrap();
    let leaf = webpki::EndEntityCert::try_from(first.server_certificate()).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls::pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .unwrap();
    for name in ["localhost", "127.0.0.1"] {
        leaf.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap())
            .unwrap();
    }
}

#[test]
fn sign_csr_issues_a_client_certificate_under_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dev-csr");
    let csr = params.serialize_request(&key).unwrap();

    let issued = tls.sign_csr(csr.der(), 30).unwrap();

    let anchor = webpki::anchor_from_trusted_cert(tls.ca_certificate()).unwrap();
    let leaf = webpki::EndEntityCert::try_from(&issued).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls::pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&issued).unwrap();
    let cn = parsed.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "dev-csr");
    assert!(!parsed.is_ca());
    let days = (parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp())
        / 86_400;
    assert_eq!(days, 30, "30 days plus the one-hour back-dating");
    // Tampering with the request breaks its signature.
    let mut tampered = csr.der().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(tls.sign_csr(&tampered, 30).is_err());
}

#[tokio::test]
async fn shutdown_closes_live_sessions() {
    let emu = start().await;
    let (mut stream, _) = raw_connected(&emu, "live", 0).await;
    let Emulator {
        _dir,
        servers,
        mut events,
        ..
    } = emu;
    let started = Instant::now();
    servers.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        closed_reason(&mut events, "live").await,
        CloseReason::Shutdown
    );
    wait_closed(&mut stream, STEP).await;
}
