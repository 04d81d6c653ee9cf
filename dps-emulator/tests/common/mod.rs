//! Shared helpers of the emulator's DPS tests: an emulator in a temporary data dir, a minimal DPS
//! MQTT 3.1.1 client over real TLS (rumqttc's packet codec only), test certificates (root →
//! intermediate → leaf), SAS tokens, an HTTPS client for the service API, and a local custom
//! allocation webhook.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use dps_auth::{GroupKey, SasResource, SasStyle, SymmetricKey, generate_sas};
use dps_core::dps::{RegistrationOperationStatus, Response, ResponseBody, ServiceError};
use dps_emulator::model::{EnrollmentGroup, IndividualEnrollment};
use dps_emulator::{Behaviour, Emulator, EmulatorConfig};
use http_body_util::{BodyExt as _, Full};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Login, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The longest any single expected exchange may take.
pub(crate) const STEP: Duration = Duration::from_secs(5);
/// The api-version the documented DPS username carries.
pub(crate) const API: &str = "2019-03-31";
/// The api-version that allows certificate signing requests.
pub(crate) const CSR_API: &str = "2025-07-01-preview";
/// The DPS response filter.
pub(crate) const RES_FILTER: &str = "$dps/registrations/res/#";

// ---------------------------------------------------------------------------------------------
// Emulator

/// Behaviour that never makes a test sleep: retry-after 0, assigned on the first poll.
pub(crate) fn fast() -> Behaviour {
    Behaviour {
        retry_after_seconds: 0,
        polls_before_assignment: 1,
        ..Behaviour::default()
    }
}

/// An emulator with [`fast`] behaviour and the default hub (`localhost`).
pub(crate) async fn start() -> TestEmulator {
    start_with(|config| config).await
}

/// An emulator whose configuration `adjust` edits ([`fast`] behaviour is preset).
pub(crate) async fn start_with(
    adjust: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
) -> TestEmulator {
    TestEmulator::start_with(|config| adjust(config.behaviour(fast()))).await
}

// ---------------------------------------------------------------------------------------------
// Keys, tokens, enrollments

/// A deterministic base64 key of `len` bytes.
pub(crate) fn key(seed: u8, len: usize) -> String {
    let bytes: Vec<u8> = (0..len)
        .map(|i| {
            seed.wrapping_mul(31)
                .wrapping_add(u8::try_from(i % 251).unwrap())
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A device's key derived from a group key, base64.
pub(crate) fn derived(group_key: &str, registration_id: &str) -> String {
    GroupKey::from_base64(group_key)
        .unwrap()
        .derive(registration_id)
        .unwrap()
        .to_base64()
        .to_string()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A DPS SAS token in `style`, expiring at `expiry`.
pub(crate) fn sas_with(
    key: &str,
    scope: &str,
    registration_id: &str,
    style: &SasStyle,
    expiry: u64,
) -> String {
    let key = SymmetricKey::from_base64(key).unwrap();
    generate_sas(
        &key,
        &SasResource::dps(scope, registration_id),
        style,
        expiry,
    )
    .unwrap()
    .into_string()
}

/// A documented-form DPS SAS token valid for an hour.
pub(crate) fn sas(key: &str, scope: &str, registration_id: &str) -> String {
    sas_with(
        key,
        scope,
        registration_id,
        &SasStyle::documented_dps(),
        unix_now() + 3600,
    )
}

/// `{scope}/registrations/{id}/api-version={api}`.
pub(crate) fn username(scope: &str, registration_id: &str, api: &str) -> String {
    format!("{scope}/registrations/{registration_id}/api-version={api}")
}

/// An enrollment from its JSON (as the service API takes it).
pub(crate) fn enrollment(value: Value) -> IndividualEnrollment {
    serde_json::from_value(value).unwrap()
}

/// An enrollment group from its JSON.
pub(crate) fn group(value: Value) -> EnrollmentGroup {
    serde_json::from_value(value).unwrap()
}

/// A symmetric-key individual enrollment with the given keys.
pub(crate) fn sym_enrollment(registration_id: &str, primary: &str, secondary: &str) -> Value {
    json!({
        "registrationId": registration_id,
        "attestation": {
            "type": "symmetricKey",
            "symmetricKey": { "primaryKey": primary, "secondaryKey": secondary },
        },
    })
}

/// A symmetric-key enrollment group with the given keys.
pub(crate) fn sym_group(group_id: &str, primary: &str, secondary: &str) -> Value {
    json!({
        "enrollmentGroupId": group_id,
        "attestation": {
            "type": "symmetricKey",
            "symmetricKey": { "primaryKey": primary, "secondaryKey": secondary },
        },
    })
}

/// An X.509 individual enrollment with `pem` as its device certificate.
pub(crate) fn x509_enrollment(registration_id: &str, pem: &str) -> Value {
    json!({
        "registrationId": registration_id,
        "attestation": {
            "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": pem } } },
        },
    })
}

/// An X.509 enrollment group with `pem` as its signing certificate.
pub(crate) fn x509_group(group_id: &str, pem: &str) -> Value {
    json!({
        "enrollmentGroupId": group_id,
        "attestation": {
            "type": "x509",
            "x509": { "signingCertificates": { "primary": { "certificate": pem } } },
        },
    })
}

/// Merges `extra`'s top-level fields into `base`.
pub(crate) fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

// ---------------------------------------------------------------------------------------------
// Certificates

// Each test binary uses a different subset.
#[allow(unused_imports)]
pub(crate) use dps_testkit::emulator::TestEmulator;
// Each test binary uses a different subset.
#[allow(unused_imports)]
pub(crate) use dps_testkit::pki::{Ca, Leaf, hex, self_signed};

// ---------------------------------------------------------------------------------------------
// TLS

/// A rustls client config trusting the emulator's CA, with an optional client certificate.
pub(crate) fn client_config(emu: &Emulator, identity: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(emu.ca_der().clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    Arc::new(match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

pub(crate) async fn tls(
    emu: &Emulator,
    addr: std::net::SocketAddr,
    identity: Option<&Leaf>,
) -> TlsStream<TcpStream> {
    tls_named(emu, addr, "localhost", identity)
        .await
        .expect("TLS handshake")
}

/// A TLS connection to `addr` that asks for and verifies the host name `name` (SNI and the
/// certificate's subject alternative names), as a client that resolved `name` to `addr` does.
pub(crate) async fn tls_named(
    emu: &Emulator,
    addr: std::net::SocketAddr,
    name: &str,
    identity: Option<&Leaf>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio::time::timeout(
        STEP,
        TlsConnector::from(client_config(emu, identity))
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp),
    )
    .await
    .expect("TLS handshake in time")
}

// ---------------------------------------------------------------------------------------------
// MQTT client

pub(crate) fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.write(&mut buf, usize::MAX).unwrap();
    buf.to_vec()
}

/// A CONNECT packet, encoded (clean session, keep-alive 60 s).
pub(crate) fn connect_packet(client_id: &str, username: &str, password: Option<&str>) -> Vec<u8> {
    let mut connect = rumqttc::mqttbytes::v4::Connect::new(client_id);
    connect.keep_alive = 60;
    connect.clean_session = true;
    connect.login = Some(Login::new(username, password.unwrap_or_default()));
    encode(&Packet::Connect(connect))
}

/// How the server answered a CONNECT.
pub(crate) enum ConnectOutcome {
    /// CONNACK 0.
    Accepted(Box<Conn>),
    /// Another CONNACK code.
    Refused(ConnectReturnCode),
    /// The connection closed without a CONNACK.
    Closed,
}

/// A DPS MQTT connection over TLS.
pub(crate) struct Conn {
    stream: TlsStream<TcpStream>,
    buf: BytesMut,
    next_pkid: u16,
    /// Publishes read while waiting for something else.
    pending: VecDeque<(String, Vec<u8>)>,
    closed: bool,
}

/// Sends raw CONNECT bytes over a fresh TLS connection to the MQTT port.
pub(crate) async fn connect_raw(
    emu: &Emulator,
    identity: Option<&Leaf>,
    connect: &[u8],
) -> ConnectOutcome {
    connect_raw_named(emu, "localhost", identity, connect).await
}

/// [`connect_raw`] to the host name `name` (resolved to the emulator's MQTT address).
pub(crate) async fn connect_raw_named(
    emu: &Emulator,
    name: &str,
    identity: Option<&Leaf>,
    connect: &[u8],
) -> ConnectOutcome {
    let stream = tls_named(emu, emu.mqtt_addr(), name, identity)
        .await
        .expect("TLS handshake");
    mqtt_connect(stream, connect).await
}

/// A TLS connection to `localhost` at `addr`, trusting what `config` trusts: for an emulator
/// in another process.
async fn tls_to(config: Arc<ClientConfig>, addr: std::net::SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    tokio::time::timeout(
        STEP,
        TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("TLS handshake in time")
    .expect("TLS handshake")
}

/// Sends raw CONNECT bytes to the MQTT port at `addr`, trusting what `config` trusts: for an
/// emulator in another process.
pub(crate) async fn connect_raw_to(
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
    connect: &[u8],
) -> ConnectOutcome {
    let stream = tls_to(config, addr).await;
    mqtt_connect(stream, connect).await
}

async fn mqtt_connect(stream: TlsStream<TcpStream>, connect: &[u8]) -> ConnectOutcome {
    let mut conn = Conn {
        stream,
        buf: BytesMut::new(),
        next_pkid: 0,
        pending: VecDeque::new(),
        closed: false,
    };
    if conn.stream.write_all(connect).await.is_err() {
        return ConnectOutcome::Closed;
    }
    match conn.read_packet(STEP).await {
        Some(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
            ConnectOutcome::Accepted(Box::new(conn))
        }
        Some(Packet::ConnAck(ack)) => {
            // The server closes after a refusal.
            assert!(
                conn.is_closed_within(STEP).await,
                "a refused client is disconnected"
            );
            ConnectOutcome::Refused(ack.code)
        }
        Some(other) => panic!("expected CONNACK, got {other:?}"),
        None => ConnectOutcome::Closed,
    }
}

/// CONNECT with the given fields; `Err` carries the CONNACK code of a refusal.
pub(crate) async fn connect(
    emu: &Emulator,
    client_id: &str,
    username: &str,
    password: Option<String>,
    identity: Option<&Leaf>,
) -> Result<Conn, ConnectReturnCode> {
    let packet = connect_packet(client_id, username, password.as_deref());
    match connect_raw(emu, identity, &packet).await {
        ConnectOutcome::Accepted(conn) => Ok(*conn),
        ConnectOutcome::Refused(code) => Err(code),
        ConnectOutcome::Closed => panic!("the server closed without CONNACK"),
    }
}

/// A device authenticated with `key` (documented SAS), subscribed to the response topics.
pub(crate) async fn sas_device(emu: &Emulator, registration_id: &str, key: &str) -> Conn {
    let scope = emu.id_scope();
    let mut conn = connect(
        emu,
        registration_id,
        &username(scope, registration_id, API),
        Some(sas(key, scope, registration_id)),
        None,
    )
    .await
    .unwrap_or_else(|code| panic!("CONNECT of {registration_id} refused: {code:?}"));
    conn.subscribe_dps().await;
    conn
}

/// A device authenticated with a client certificate chain, subscribed.
pub(crate) async fn x509_device(
    emu: &Emulator,
    registration_id: &str,
    identity: &Leaf,
) -> Result<Conn, ConnectReturnCode> {
    let mut conn = connect(
        emu,
        registration_id,
        &username(emu.id_scope(), registration_id, API),
        None,
        Some(identity),
    )
    .await?;
    conn.subscribe_dps().await;
    Ok(conn)
}

impl Conn {
    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    /// Writes raw bytes; false if the connection is gone.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
    }

    async fn send(&mut self, packet: &Packet) -> bool {
        self.send_raw(&encode(packet)).await
    }

    /// Reads the next packet; `None` on close or when `limit` passes first.
    async fn read_packet(&mut self, limit: Duration) -> Option<Packet> {
        let deadline = Instant::now() + limit;
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(packet) => return Some(packet),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("bad packet from the server: {e}"),
            }
            if self.closed {
                return None;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => {
                    self.closed = true;
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// SUBSCRIBE; the SUBACK's codes, or `None` if the server closed instead.
    pub(crate) async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> Option<Vec<SubscribeReasonCode>> {
        let mut subscribe = Subscribe::new(filter, qos);
        subscribe.pkid = self.pkid();
        if !self.send(&Packet::Subscribe(subscribe)).await {
            return None;
        }
        let deadline = Instant::now() + STEP;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(remaining).await? {
                Packet::SubAck(ack) => return Some(ack.return_codes),
                Packet::Publish(publish) => self.keep(publish).await,
                _ => {}
            }
        }
    }

    /// Subscribes to `$dps/registrations/res/#` with QoS 1 and checks the grant.
    pub(crate) async fn subscribe_dps(&mut self) {
        let codes = self
            .subscribe(RES_FILTER, QoS::AtLeastOnce)
            .await
            .expect("SUBACK");
        assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    }

    /// PUBLISH with QoS 1 (the PUBACK is read and skipped later).
    pub(crate) async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) -> bool {
        self.publish_qos(topic, payload, QoS::AtLeastOnce).await
    }

    /// PUBLISH with the given QoS.
    pub(crate) async fn publish_qos(
        &mut self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
    ) -> bool {
        let mut publish = Publish::new(topic, qos, payload);
        if qos != QoS::AtMostOnce {
            publish.pkid = self.pkid();
        }
        self.send(&Packet::Publish(publish)).await
    }

    async fn keep(&mut self, publish: Publish) {
        if publish.qos == QoS::AtLeastOnce {
            self.send(&Packet::PubAck(PubAck::new(publish.pkid))).await;
        }
        self.pending
            .push_back((publish.topic.clone(), publish.payload.to_vec()));
    }

    /// The next PUBLISH from the server (acknowledged), or `None` within `limit`.
    pub(crate) async fn next_publish(&mut self, limit: Duration) -> Option<(String, Vec<u8>)> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(remaining).await? {
                Packet::Publish(publish) => self.keep(publish).await,
                Packet::PubAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {}
                Packet::PubRec(rec) => {
                    panic!("PUBREC {} for a publish (QoS 2 is not accepted)", rec.pkid)
                }
                other => panic!("unexpected packet {other:?}"),
            }
        }
    }

    /// True when the server closes the connection within `limit` (anything read is dropped).
    pub(crate) async fn is_closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.closed {
                return true;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return false;
            }
            self.buf.clear();
            match tokio::time::timeout(remaining, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => self.closed = true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Publishes a registration request with `$rid={rid}`.
    pub(crate) async fn send_register(&mut self, rid: &str, body: impl Into<Vec<u8>>) {
        let topic = format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}");
        assert!(self.publish(&topic, body).await, "register sent");
    }

    /// Publishes an operation-status poll with `$rid={rid}`.
    pub(crate) async fn send_poll(&mut self, rid: &str, operation_id: &str) {
        let topic = format!(
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation_id}"
        );
        assert!(self.publish(&topic, " ").await, "poll sent");
    }

    /// The next answer, which must arrive within [`STEP`].
    pub(crate) async fn answer(&mut self) -> Message {
        let (topic, payload) = self.next_publish(STEP).await.expect("an answer in time");
        Message { topic, payload }
    }

    /// Registers and returns the answer.
    pub(crate) async fn register(&mut self, rid: &str, body: impl Into<Vec<u8>>) -> Message {
        self.send_register(rid, body).await;
        let answer = self.answer().await;
        assert_eq!(answer.response().topic.rid, rid, "{answer:?}");
        answer
    }

    /// Polls and returns the answer.
    pub(crate) async fn poll(&mut self, rid: &str, operation_id: &str) -> Message {
        self.send_poll(rid, operation_id).await;
        let answer = self.answer().await;
        assert_eq!(answer.response().topic.rid, rid, "{answer:?}");
        answer
    }

    /// Registers with `body` and polls until the operation is no longer assigning; the last
    /// answer (status 200 or an error).
    pub(crate) async fn provision(&mut self, body: impl Into<Vec<u8>>) -> Message {
        let mut answer = self.register("1", body).await;
        for i in 2..20 {
            let response = answer.response();
            if response.topic.status != 202 {
                return answer;
            }
            let ResponseBody::Operation(op) = response.body else {
                panic!("202 without an operation: {answer:?}");
            };
            answer = self.poll(&i.to_string(), &op.operation_id).await;
        }
        panic!("still assigning after 18 polls");
    }

    /// [`Conn::provision`] with an empty body; the final operation status, which must be 200.
    pub(crate) async fn provision_ok(&mut self) -> RegistrationOperationStatus {
        let answer = self.provision(Vec::new()).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        answer.operation()
    }
}

/// One received DPS answer.
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.topic,
            String::from_utf8_lossy(&self.payload)
        )
    }
}

impl Message {
    /// Parsed and checked with the SDK's own parser.
    pub(crate) fn response(&self) -> Response<'_> {
        Response::parse(&self.topic, &self.payload)
            .unwrap_or_else(|e| panic!("unparsable answer {self:?}: {e}"))
    }

    /// The topic's status.
    pub(crate) fn status(&self) -> u16 {
        self.response().topic.status
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap()
    }

    /// The operation status body.
    pub(crate) fn operation(&self) -> RegistrationOperationStatus {
        match self.response().body {
            ResponseBody::Operation(op) => op,
            ResponseBody::Error(e) => panic!("expected an operation, got {e:?}"),
        }
    }

    /// The error body.
    pub(crate) fn error(&self) -> ServiceError {
        match self.response().body {
            ResponseBody::Error(e) => e,
            ResponseBody::Operation(op) => panic!("expected an error, got {op:?}"),
        }
    }
}

/// Checks `YYYY-MM-DDThh:mm:ss.fffffffZ` (exactly 7 fractional digits).
pub(crate) fn assert_service_time(text: &str) {
    let bytes = text.as_bytes();
    let ok = bytes.len() == 28
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'.',
            27 => *b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(ok, "not a service timestamp: {text:?}");
}

// ---------------------------------------------------------------------------------------------
// HTTPS (service API)

/// An HTTP response, body read.
pub(crate) struct HttpReply {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl std::fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} {}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl HttpReply {
    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// One request over a fresh HTTPS connection to the emulator.
pub(crate) async fn https(
    emu: &Emulator,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> HttpReply {
    let stream = tls(emu, emu.https_addr(), None).await;
    https_over(stream, emu.https_addr(), method, path, headers, body).await
}

/// [`https`] to the HTTPS port at `addr`, trusting what `config` trusts: for an emulator in
/// another process.
pub(crate) async fn https_to(
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> HttpReply {
    let stream = tls_to(config, addr).await;
    https_over(stream, addr, method, path, headers, body).await
}

async fn https_over(
    stream: TlsStream<TcpStream>,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> HttpReply {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, format!("localhost:{}", addr.port()));
    if body.is_some() {
        request = request.header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        );
    }
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let response = tokio::time::timeout(STEP, sender.send_request(request))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpReply {
        status,
        headers,
        body: body.to_vec(),
    }
}

/// A field of `k=v;k=v` connection string.
pub(crate) fn connection_string_field<'a>(text: &'a str, name: &str) -> &'a str {
    text.split(';')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{name} missing from {text}"))
}

/// A service token for policy `policy`, signed with `key`, for `host`, expiring at `expiry`.
pub(crate) fn service_token_with(host: &str, key: &str, policy: &str, expiry: u64) -> String {
    let key = SymmetricKey::from_base64(key).unwrap();
    generate_sas(
        &key,
        &SasResource::custom(host),
        &SasStyle::hub().with_key_name(policy.to_owned()),
        expiry,
    )
    .unwrap()
    .into_string()
}

/// A valid `provisioningserviceowner` token from the emulator's connection string.
pub(crate) fn service_token(emu: &Emulator) -> String {
    let cs = &emu.info().dps_connection_string;
    service_token_with(
        connection_string_field(cs, "HostName"),
        connection_string_field(cs, "SharedAccessKey"),
        connection_string_field(cs, "SharedAccessKeyName"),
        unix_now() + 3600,
    )
}

/// An authenticated service API request with a JSON body (if any) and extra headers.
pub(crate) async fn service(
    emu: &Emulator,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> HttpReply {
    let mut all = vec![("authorization", service_token(emu))];
    all.extend(headers.iter().map(|(n, v)| (*n, v.clone())));
    https(
        emu,
        method,
        &format!("{path}?api-version=2021-10-01"),
        &all,
        body.map(|b| serde_json::to_vec(b).unwrap()),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Custom allocation webhook

/// A local HTTP webhook recording the JSON bodies it receives.
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a webhook on 127.0.0.1 answering each request with `respond(request JSON)`.
pub(crate) async fn webhook(
    respond: impl Fn(&Value) -> (u16, Value) + Send + Sync + 'static,
) -> Webhook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/allocate?code=secret",
        listener.local_addr().unwrap().port()
    );
    let requests = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let seen = Arc::clone(&requests);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let respond = Arc::clone(&respond);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let respond = Arc::clone(&respond);
                        let seen = Arc::clone(&seen);
                        async move {
                            let uri = request.uri().to_string();
                            let method = request.method().to_string();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let (status, answer) = respond(&value);
                            seen.lock().unwrap().push(json!({
                                "method": method, "uri": uri, "body": value,
                            }));
                            let response = http::Response::builder()
                                .status(status)
                                .header(http::header::CONTENT_TYPE, "application/json")
                                .body(Full::new(Bytes::from(serde_json::to_vec(&answer).unwrap())))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Webhook {
        url,
        requests,
        task,
    }
}

// ---------------------------------------------------------------------------------------------
// IoT Hub

pub(crate) mod hub;
