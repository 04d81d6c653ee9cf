//! Shared helpers of the end-to-end tests: the emulator fixture of `dps-testkit` with fast
//! timing, a client factory for both transports, enrollment JSON, the kit's test certificates,
//! instrumented authenticators, a custom allocation webhook and a TCP relay that doubles as an
//! HTTP `CONNECT` proxy.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dps_auth::{
    AuthError, Authenticator, Credentials, SIGNATURE_LEN, SasResource, SasStyle, SignError, Signer,
    SymmetricKey, generate_sas,
};
use dps_client::{ProvisioningClient, WebSocketTransport};
use dps_emulator::model::EnrollmentGroup;
use dps_emulator::{Behaviour, EmulatorConfig};
pub(crate) use dps_testkit::emulator::TestEmulator;
// Each test binary uses a different subset.
#[allow(unused_imports)]
pub(crate) use dps_testkit::pki::{Ca, csr};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The emulator's default hub (its host name).
pub(crate) const HUB: &str = "localhost";

// ---------------------------------------------------------------------------------------------
// Emulator

/// Behaviour that never makes a test sleep: `retry-after: 0`, assigned on the first poll.
pub(crate) fn fast() -> Behaviour {
    Behaviour {
        retry_after_seconds: 0,
        polls_before_assignment: 1,
        ..Behaviour::default()
    }
}

/// An emulator with [`fast`] behaviour and the default hub.
pub(crate) async fn start() -> TestEmulator {
    start_with(|config| config).await
}

/// An emulator whose configuration `adjust` edits ([`fast`] behaviour preset).
pub(crate) async fn start_with(
    adjust: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
) -> TestEmulator {
    TestEmulator::start_with(|config| adjust(config.behaviour(fast()))).await
}

/// Timing that keeps tests fast: no `retry-after` floor, 50 ms backoff, 10 ms jitter, 5 s
/// request timeout, 20 s deadline.
pub(crate) fn fast_timing() -> dps_client::Timing {
    dps_client::Timing::default()
        .retry_after_floor(Duration::ZERO)
        .backoff_base(Duration::from_millis(50))
        .max_jitter(Duration::from_millis(10))
        .request_timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(20))
}

// ---------------------------------------------------------------------------------------------
// Transports

/// The transport a case runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// MQTT over TLS, on the emulator's MQTT port.
    Mqtt,
    /// MQTT over WebSocket over TLS, on the emulator's HTTPS port.
    Ws,
}

impl Via {
    /// Both transports.
    pub(crate) const BOTH: [Self; 2] = [Self::Mqtt, Self::Ws];

    /// A short name, usable in registration ids.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Ws => "ws",
        }
    }

    /// The emulator port this transport connects to.
    pub(crate) fn port(self, emu: &TestEmulator) -> u16 {
        match self {
            Self::Mqtt => emu.mqtt_addr().port(),
            Self::Ws => emu.https_addr().port(),
        }
    }

    /// The emulator address this transport connects to.
    pub(crate) fn addr(self, emu: &TestEmulator) -> SocketAddr {
        match self {
            Self::Mqtt => emu.mqtt_addr(),
            Self::Ws => emu.https_addr(),
        }
    }

    /// A client for `registration_id` on this transport, trusting the emulator's CA, with
    /// [`fast_timing`].
    pub(crate) fn client(
        self,
        emu: &TestEmulator,
        registration_id: &str,
        authenticator: impl Authenticator + 'static,
    ) -> ProvisioningClient {
        self.client_at(
            emu,
            &format!("localhost:{}", self.port(emu)),
            registration_id,
            authenticator,
        )
    }

    /// Like [`Via::client`], connecting to `endpoint` instead (a relay, for instance).
    pub(crate) fn client_at(
        self,
        emu: &TestEmulator,
        endpoint: &str,
        registration_id: &str,
        authenticator: impl Authenticator + 'static,
    ) -> ProvisioningClient {
        let client = ProvisioningClient::new(emu.id_scope(), registration_id, authenticator)
            .endpoint(endpoint)
            .tls(emu.tls())
            .timing(fast_timing());
        match self {
            Self::Mqtt => client,
            Self::Ws => client.transport(WebSocketTransport::new()),
        }
    }
}

/// Runs `case` over both transports concurrently (each case uses its own devices or emulator).
pub(crate) async fn both<F, Fut>(case: F)
where
    F: Fn(Via) -> Fut,
    Fut: Future<Output = ()>,
{
    tokio::join!(case(Via::Mqtt), case(Via::Ws));
}

// ---------------------------------------------------------------------------------------------
// Enrollments

/// An enrollment group from its service-API JSON.
pub(crate) fn group(value: Value) -> EnrollmentGroup {
    serde_json::from_value(value).unwrap()
}

/// Merges `extra`'s top-level fields into `base`.
pub(crate) fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// A symmetric-key individual enrollment (keys generated by the emulator).
pub(crate) fn sym_enrollment(registration_id: &str) -> Value {
    json!({
        "registrationId": registration_id,
        "attestation": { "type": "symmetricKey" },
    })
}

/// A symmetric-key enrollment group (keys generated by the emulator).
pub(crate) fn sym_group(group_id: &str) -> Value {
    json!({
        "enrollmentGroupId": group_id,
        "attestation": { "type": "symmetricKey" },
    })
}

/// An X.509 enrollment group whose signing certificate is `pem`.
pub(crate) fn x509_group(group_id: &str, pem: &str) -> Value {
    json!({
        "enrollmentGroupId": group_id,
        "attestation": {
            "type": "x509",
            "x509": { "signingCertificates": { "primary": { "certificate": pem } } },
        },
    })
}

/// The number of DPS requests `registration_id` sent, once it has stopped changing for a
/// moment (responses and late publishes settle).
pub(crate) async fn settled_requests(emu: &TestEmulator, registration_id: &str) -> u32 {
    let mut last = emu.device_requests(registration_id);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = emu.device_requests(registration_id);
        if now == last {
            return now;
        }
        last = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates

// ---------------------------------------------------------------------------------------------
// Authenticators and signers

/// A stand-in for a hardware security module: signs without handing out its key, counting
/// signatures.
#[derive(Debug)]
pub(crate) struct FakeHsm {
    key: SymmetricKey,
    pub(crate) signatures: Arc<AtomicUsize>,
}

impl FakeHsm {
    /// An HSM holding `key`.
    pub(crate) fn new(key: SymmetricKey) -> Self {
        Self {
            key,
            signatures: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Signer for FakeHsm {
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        self.signatures.fetch_add(1, Ordering::SeqCst);
        self.key.sign(message)
    }
}

/// Counts how often credentials are asked for (once per connection attempt).
#[derive(Debug)]
pub(crate) struct Counting<A> {
    inner: A,
    pub(crate) calls: Arc<AtomicUsize>,
}

impl<A: Authenticator> Counting<A> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: A) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<A: Authenticator> Authenticator for Counting<A> {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.credentials(resource, unix_now)
    }
}

/// Hands out correctly signed DPS tokens that expired a minute ago.
#[derive(Debug)]
pub(crate) struct Expired(pub(crate) SymmetricKey);

impl Authenticator for Expired {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        let token = generate_sas(
            &self.0,
            resource,
            &SasStyle::documented_dps(),
            unix_now.saturating_sub(60),
        )?;
        Ok(Credentials::Sas(token))
    }
}

// ---------------------------------------------------------------------------------------------
// Custom allocation webhook

/// A local HTTP/1.1 webhook recording the JSON bodies it receives.
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) requests: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a webhook on 127.0.0.1 answering each request with `respond(request JSON)` and
/// status 200.
pub(crate) async fn webhook(respond: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Webhook {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/allocate?code=secret",
        listener.local_addr().unwrap().port()
    );
    let requests = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let seen = Arc::clone(&requests);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = Arc::clone(&respond);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Some(body) = read_http_request(&mut stream).await else {
                    return;
                };
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let answer = serde_json::to_vec(&respond(&request)).unwrap();
                seen.lock().unwrap().push(request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Webhook {
        url,
        requests,
        task,
    }
}

/// Reads one HTTP/1.1 request; its body (by `content-length`).
async fn read_http_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + length].to_vec())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// TCP relay / HTTP CONNECT proxy

/// A TCP relay in front of the emulator that counts the connections going through it: open
/// ones tell whether a client really closed its socket. In proxy mode it first answers an
/// HTTP `CONNECT` (checking `Proxy-Authorization` when required) and records the target.
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    pub(crate) tunnels: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a [`Relay`] treats a new connection.
#[derive(Debug, Clone)]
pub(crate) enum RelayMode {
    /// Forward bytes as they come.
    Plain,
    /// Act as an HTTP proxy: expect `CONNECT`, require this `Proxy-Authorization` value if set.
    Proxy(Option<String>),
}

impl Relay {
    /// Starts a relay forwarding to `target`.
    pub(crate) async fn start(target: SocketAddr, mode: RelayMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let (a, o, t) = (
            Arc::clone(&accepted),
            Arc::clone(&open),
            Arc::clone(&tunnels),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let (open, tunnels, mode) = (Arc::clone(&o), Arc::clone(&t), mode.clone());
                tokio::spawn(async move {
                    relay_one(client, target, &mode, &tunnels).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            accepted,
            open,
            tunnels,
            task,
        }
    }

    /// `localhost:{port}`.
    pub(crate) fn endpoint(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// `http://127.0.0.1:{port}`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections still open.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits up to `within` for every connection to close; true if they did.
    pub(crate) async fn all_closed_within(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.open() > 0 {
            if Instant::now() > until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

async fn relay_one(
    mut client: TcpStream,
    target: SocketAddr,
    mode: &RelayMode,
    tunnels: &Mutex<Vec<String>>,
) {
    if let RelayMode::Proxy(required) = mode {
        let mut head = Vec::new();
        while find(&head, b"\r\n\r\n").is_none() {
            let mut byte = [0_u8; 1];
            match client.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let authority = text
            .strip_prefix("CONNECT ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        let authorization = text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_owned())
        });
        if required.is_some() && authorization != *required {
            let _ = client
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
            return;
        }
        tunnels.lock().unwrap().push(authority);
        if client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
