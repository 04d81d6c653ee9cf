//! The raw baseline: a minimal hand-written DPS registration over tokio-rustls and rumqttc's
//! MQTT 3.1.1 codec (`mqttbytes::v4`), with no SDK logic.
//!
//! It performs exactly the MQTT exchange of the SDK: TCP + TLS, CONNECT (SAS token as password),
//! SUBSCRIBE `$dps/registrations/res/#`, PUBLISH the registration request, wait for its
//! PUBACK and the `202 assigning` answer, PUBLISH the operation-status poll, wait for the
//! `200 assigned` answer, DISCONNECT. What it leaves out is everything that makes an SDK: no
//! state machine, no timers or retries, no error classification, no validation, no tracing,
//! one TLS client configuration for the whole process (built once; session resumption off, so
//! every connection pays the full handshake as a new device does). It is the limit the SDK's
//! overhead is measured against, and the only client whose every step can be timed on its own
//! ([`Breakdown`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::BytesMut;
use hmac::{Hmac, Mac as _};
use rumqttc::mqttbytes::{self, QoS, v4};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const MAX_PACKET: usize = 1 << 20;

/// Why a raw registration failed.
#[derive(Debug, Clone)]
pub struct RawError(pub String);

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RawError {}

impl From<std::io::Error> for RawError {
    fn from(e: std::io::Error) -> Self {
        Self(format!("io: {e}"))
    }
}

impl From<mqttbytes::Error> for RawError {
    fn from(e: mqttbytes::Error) -> Self {
        Self(format!("mqtt: {e}"))
    }
}

/// Where to register, and the one TLS configuration shared by every connection.
#[derive(Clone)]
pub struct RawTarget {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    host: String,
    id_scope: String,
}

impl RawTarget {
    /// `addr` is resolved once by the caller; `host` is the name checked in the server
    /// certificate; `ca_pem` holds the root to trust.
    ///
    /// # Errors
    /// When the PEM or the host name is unusable.
    pub fn new(
        addr: SocketAddr,
        host: &str,
        ca_pem: &[u8],
        id_scope: &str,
    ) -> Result<Self, RawError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| RawError(format!("ca pem: {e}")))?;
            roots.add(cert).map_err(|e| RawError(format!("ca: {e}")))?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| RawError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Every device is new to the server: no resumption, the full handshake each time.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            addr,
            server_name: ServerName::try_from(host.to_owned())
                .map_err(|e| RawError(format!("server name: {e}")))?,
            connector: TlsConnector::from(Arc::new(config)),
            host: host.to_owned(),
            id_scope: id_scope.to_owned(),
        })
    }
}

/// Where the time of one registration went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// TCP connect and the TLS handshake.
    pub tcp_tls_ms: f64,
    /// CONNECT sent until CONNACK received.
    pub connect_ms: f64,
    /// SUBSCRIBE sent until SUBACK received.
    pub subscribe_ms: f64,
    /// Registration request sent until its PUBACK and the `assigning` answer are in.
    pub register_ms: f64,
    /// Operation-status poll(s) sent until the `assigned` answer is in.
    pub poll_ms: f64,
    /// DISCONNECT and TLS close.
    pub close_ms: f64,
}

impl Breakdown {
    /// The sum of the phases.
    #[must_use]
    pub fn total_ms(&self) -> f64 {
        self.tcp_tls_ms
            + self.connect_ms
            + self.subscribe_ms
            + self.register_ms
            + self.poll_ms
            + self.close_ms
    }
}

/// A device key derived from a group key: `HMAC-SHA256(group key, registration id)`.
///
/// # Panics
/// Never: HMAC accepts keys of any length.
#[must_use]
pub fn derive_key(group_key: &[u8], registration_id: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(group_key).expect("any key length");
    mac.update(registration_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The DPS SAS token in the documented form, written by hand (registration ids need no
/// percent-encoding beyond the two slashes of the resource).
///
/// # Panics
/// Never: HMAC accepts keys of any length.
#[must_use]
pub fn sas_token(id_scope: &str, registration_id: &str, key: &[u8], expiry: u64) -> String {
    let sr = format!("{id_scope}%2Fregistrations%2F{registration_id}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{sr}\n{expiry}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let signature = signature
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("SharedAccessSignature sr={sr}&sig={signature}&se={expiry}&skn=registration")
}

/// An open MQTT connection of the baseline.
pub struct Connection {
    stream: TlsStream<TcpStream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The twin document, once fetched.
    twin: Option<bytes::Bytes>,
}

impl Connection {
    async fn send(&mut self, packet: v4::Packet) -> Result<(), RawError> {
        self.wbuf.clear();
        packet.write(&mut self.wbuf, MAX_PACKET)?;
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn next(&mut self) -> Result<v4::Packet, RawError> {
        loop {
            match v4::Packet::read(&mut self.rbuf, MAX_PACKET) {
                Ok(packet) => return Ok(packet),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {
                    self.rbuf.reserve(4096);
                    if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                        return Err(RawError("connection closed by the server".into()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Publishes a request (QoS 1, packet id `pkid`) and waits for its PUBACK and the DPS
    /// answer; returns the answer's status, `retry-after` and operation id.
    async fn request(
        &mut self,
        pkid: u16,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<Answer, RawError> {
        let mut publish = v4::Publish::new(topic, QoS::AtLeastOnce, payload);
        publish.pkid = pkid;
        self.send(v4::Packet::Publish(publish)).await?;
        let mut acked = false;
        let mut answer = None;
        while !acked || answer.is_none() {
            match self.next().await? {
                v4::Packet::PubAck(ack) if ack.pkid == pkid => acked = true,
                v4::Packet::Publish(response) => {
                    if response.qos == QoS::AtLeastOnce {
                        self.send(v4::Packet::PubAck(v4::PubAck::new(response.pkid)))
                            .await?;
                    }
                    answer = Some(Answer::parse(&response)?);
                }
                other => return Err(RawError(format!("unexpected packet {other:?}"))),
            }
        }
        answer.ok_or_else(|| RawError("no answer".into()))
    }
}

struct Answer {
    status: u16,
    retry_after: u64,
    operation_id: String,
    assigned: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow)]
    operation_id: Option<&'a str>,
    #[serde(borrow)]
    status: Option<&'a str>,
}

impl Answer {
    fn parse(publish: &v4::Publish) -> Result<Self, RawError> {
        let topic = publish.topic.as_str();
        let rest = topic
            .strip_prefix("$dps/registrations/res/")
            .ok_or_else(|| RawError(format!("unexpected topic {topic}")))?;
        let status = rest
            .get(..3)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RawError(format!("no status in {topic}")))?;
        let retry_after = rest
            .split_once("retry-after=")
            .and_then(|(_, v)| v.split('&').next()?.parse().ok())
            .unwrap_or(0);
        let body: Body<'_> =
            serde_json::from_slice(&publish.payload).map_err(|e| RawError(format!("body: {e}")))?;
        Ok(Self {
            status,
            retry_after,
            operation_id: body.operation_id.unwrap_or_default().to_owned(),
            assigned: body.status == Some("assigned"),
        })
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Registers `registration_id` with its `device_key`, timing each phase.
///
/// # Errors
/// Any failure at all, as text: the baseline does not retry.
pub async fn register(
    target: &RawTarget,
    registration_id: &str,
    device_key: &[u8],
) -> Result<Breakdown, RawError> {
    let mut breakdown = Breakdown::default();
    let started = Instant::now();
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let stream = target
        .connector
        .connect(target.server_name.clone(), tcp)
        .await?;
    breakdown.tcp_tls_ms = ms(started);
    let mut conn = Connection {
        stream,
        rbuf: BytesMut::with_capacity(4096),
        wbuf: BytesMut::with_capacity(1024),
        twin: None,
    };

    let phase = Instant::now();
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let mut connect = v4::Connect::new(registration_id);
    connect.keep_alive = 240;
    connect.clean_session = true;
    connect.login = Some(v4::Login::new(
        format!(
            "{}/registrations/{registration_id}/api-version=2019-03-31&ClientVersion=raw-baseline",
            target.id_scope
        ),
        sas_token(&target.id_scope, registration_id, device_key, expiry),
    ));
    conn.send(v4::Packet::Connect(connect)).await?;
    match conn.next().await? {
        v4::Packet::ConnAck(ack) if ack.code == v4::ConnectReturnCode::Success => {}
        other => return Err(RawError(format!("connect refused: {other:?}"))),
    }
    breakdown.connect_ms = ms(phase);

    let phase = Instant::now();
    let mut subscribe = v4::Subscribe::new("$dps/registrations/res/#", QoS::AtLeastOnce);
    subscribe.pkid = 1;
    conn.send(v4::Packet::Subscribe(subscribe)).await?;
    match conn.next().await? {
        v4::Packet::SubAck(ack)
            if matches!(
                ack.return_codes.first(),
                Some(v4::SubscribeReasonCode::Success(_))
            ) => {}
        other => return Err(RawError(format!("subscribe refused: {other:?}"))),
    }
    breakdown.subscribe_ms = ms(phase);

    let phase = Instant::now();
    let mut answer = conn
        .request(
            2,
            "$dps/registrations/PUT/iotdps-register/?$rid=1".to_owned(),
            format!(r#"{{"registrationId":"{registration_id}"}}"#).into_bytes(),
        )
        .await?;
    breakdown.register_ms = ms(phase);

    let phase = Instant::now();
    let mut pkid = 3;
    while answer.status == 202 && !answer.assigned {
        if answer.retry_after > 0 {
            tokio::time::sleep(Duration::from_secs(answer.retry_after)).await;
        }
        answer = conn
            .request(
                pkid,
                format!(
                    "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={pkid}&operationId={}",
                    answer.operation_id
                ),
                Vec::new(),
            )
            .await?;
        pkid += 1;
    }
    breakdown.poll_ms = ms(phase);
    if !answer.assigned {
        return Err(RawError(format!("not assigned: status {}", answer.status)));
    }

    let phase = Instant::now();
    conn.send(v4::Packet::Disconnect).await?;
    conn.stream.shutdown().await?;
    breakdown.close_ms = ms(phase);
    Ok(breakdown)
}

/// The IoT Hub SAS token of a device (`{host}/devices/{device}`, no key name), by hand.
///
/// # Panics
/// Never: HMAC accepts keys of any length.
#[must_use]
pub fn hub_sas_token(host: &str, device_id: &str, key: &[u8], expiry: u64) -> String {
    let sr = format!("{host}%2Fdevices%2F{device_id}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{sr}\n{expiry}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let signature = signature
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("SharedAccessSignature sr={sr}&sig={signature}&se={expiry}")
}

/// Connects `device_id` to the hub: TCP, TLS, CONNECT with a SAS token, CONNACK.
///
/// # Errors
/// Any failure, as text.
pub async fn hub_connect(
    target: &RawTarget,
    device_id: &str,
    device_key: &[u8],
    keep_alive: u16,
) -> Result<Connection, RawError> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    let stream = target
        .connector
        .connect(target.server_name.clone(), tcp)
        .await?;
    let mut conn = Connection {
        stream,
        rbuf: BytesMut::with_capacity(1024),
        wbuf: BytesMut::with_capacity(1024),
        twin: None,
    };
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let mut connect = v4::Connect::new(device_id);
    connect.keep_alive = keep_alive;
    connect.clean_session = true;
    connect.login = Some(v4::Login::new(
        format!(
            "{}/{device_id}/?api-version=2021-04-12&DeviceClientType=raw-baseline",
            target.host
        ),
        hub_sas_token(&target.host, device_id, device_key, expiry),
    ));
    conn.send(v4::Packet::Connect(connect)).await?;
    match conn.next().await? {
        v4::Packet::ConnAck(ack) if ack.code == v4::ConnectReturnCode::Success => Ok(conn),
        other => Err(RawError(format!("connect refused: {other:?}"))),
    }
}

impl Connection {
    /// Sends `count` QoS 1 telemetry messages (256-byte payload, the properties of
    /// `dps_benches::fixtures::telemetry_properties` with a message id each) with at most
    /// `window` unacknowledged; returns when every PUBACK is in. Writes are batched: all the
    /// publishes the window allows go out in one write.
    ///
    /// # Errors
    /// Any failure, as text.
    pub async fn telemetry(
        &mut self,
        device_id: &str,
        first: usize,
        count: usize,
        window: usize,
    ) -> Result<(), RawError> {
        let payload = bytes::Bytes::from(vec![b'x'; 256]);
        let (mut sent, mut acked, mut pkid) = (0usize, 0usize, 0u16);
        while acked < count {
            self.wbuf.clear();
            while sent < count && sent - acked < window {
                pkid = pkid % u16::MAX + 1;
                let topic = format!(
                    "devices/{device_id}/messages/events/%24.mid=msg-{:06}&%24.cid=corr-7&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true&zone=north%2F7",
                    first + sent
                );
                let mut publish = v4::Publish::from_bytes(topic, QoS::AtLeastOnce, payload.clone());
                publish.pkid = pkid;
                v4::Packet::Publish(publish).write(&mut self.wbuf, MAX_PACKET)?;
                sent += 1;
            }
            if !self.wbuf.is_empty() {
                self.stream.write_all(&self.wbuf).await?;
                self.stream.flush().await?;
            }
            // Take every PUBACK already here, waiting for at least one.
            match self.next().await? {
                v4::Packet::PubAck(_) => acked += 1,
                other => return Err(RawError(format!("unexpected packet {other:?}"))),
            }
            while let Ok(packet) = v4::Packet::read(&mut self.rbuf, MAX_PACKET) {
                match packet {
                    v4::Packet::PubAck(_) => acked += 1,
                    other => return Err(RawError(format!("unexpected packet {other:?}"))),
                }
            }
        }
        Ok(())
    }

    /// What this SDK's hub client does after CONNACK with its default features, done the
    /// shortest way: one SUBSCRIBE for cloud-to-device messages, twin responses, desired
    /// properties and methods, then a twin GET whose answer is kept (as its bytes: the SDK
    /// hands the application the whole twin after every connect). So that an idle
    /// connection of each client holds the same protocol state.
    ///
    /// # Errors
    /// Any failure, as text.
    pub async fn subscribe_and_get_twin(&mut self, device_id: &str) -> Result<(), RawError> {
        let filters = [
            format!("devices/{device_id}/messages/devicebound/#"),
            "$iothub/twin/res/#".to_owned(),
            "$iothub/twin/PATCH/properties/desired/#".to_owned(),
            "$iothub/methods/POST/#".to_owned(),
        ];
        let subscribe = v4::Subscribe {
            pkid: 1,
            filters: filters
                .into_iter()
                .map(|path| v4::SubscribeFilter::new(path, QoS::AtLeastOnce))
                .collect(),
        };
        self.send(v4::Packet::Subscribe(subscribe)).await?;
        match self.next().await? {
            v4::Packet::SubAck(ack) if ack.return_codes.len() == 4 => {}
            other => return Err(RawError(format!("subscribe refused: {other:?}"))),
        }
        let get = v4::Publish::new("$iothub/twin/GET/?$rid=1", QoS::AtMostOnce, Vec::new());
        self.send(v4::Packet::Publish(get)).await?;
        loop {
            match self.next().await? {
                v4::Packet::Publish(response)
                    if response.topic.starts_with("$iothub/twin/res/") =>
                {
                    if !response.topic.starts_with("$iothub/twin/res/200/") {
                        return Err(RawError(format!("twin get: {}", response.topic)));
                    }
                    self.twin = Some(response.payload);
                    return Ok(());
                }
                v4::Packet::Publish(_) => {}
                other => return Err(RawError(format!("unexpected packet {other:?}"))),
            }
        }
    }

    /// Keeps the connection alive: a PINGREQ every `keep_alive`, until the server closes it.
    ///
    /// # Errors
    /// Any failure, as text.
    pub async fn keep_alive(mut self, keep_alive: Duration) -> Result<(), RawError> {
        loop {
            tokio::time::sleep(keep_alive).await;
            self.send(v4::Packet::PingReq).await?;
            match self.next().await? {
                v4::Packet::PingResp => {}
                other => return Err(RawError(format!("unexpected packet {other:?}"))),
            }
        }
    }
}
