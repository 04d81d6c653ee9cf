//! Shared helpers of the end-to-end tests: the emulator fixture of `dps-testkit` (DPS and IoT
//! Hub) with its device and module identities, a client factory for both transports, and a TCP
//! relay that can cut every connection through it (a network failure) or refuse new ones (an
//! outage).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dps_emulator::HubEvent;
use dps_testkit::emulator::TestEmulator;
use hub_client::{
    Backoff, ConnectionState, HubClientBuilder, MqttTransport, TlsConfig, WebSocketTransport,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Which transport a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// MQTT over TLS.
    Mqtt,
    /// MQTT over WebSocket over TLS.
    Ws,
}

/// A running emulator (the kit's fixture) and its default hub's name.
pub struct Env {
    pub emu: TestEmulator,
    pub hub: String,
}

pub async fn start() -> Env {
    let emu = TestEmulator::start().await;
    let hub = emu.hub().to_owned();
    Env { emu, hub }
}

impl Env {
    pub fn tls(&self) -> TlsConfig {
        self.emu.tls()
    }

    pub fn addr(&self, kind: Kind) -> SocketAddr {
        match kind {
            Kind::Mqtt => self.emu.mqtt_addr(),
            Kind::Ws => self.emu.https_addr(),
        }
    }

    pub fn endpoint(&self, kind: Kind) -> String {
        format!("localhost:{}", self.addr(kind).port())
    }

    /// Creates a SAS device; returns its key.
    pub async fn device(&self, device_id: &str) -> String {
        self.emu.create_sas_device(device_id).await
    }

    /// Creates a SAS module on an existing device; returns its key.
    pub async fn module(&self, device_id: &str, module_id: &str) -> String {
        self.emu.create_sas_module(device_id, module_id).await
    }

    /// A client builder for `device_id` over `kind`, reaching the emulator at `endpoint`, with
    /// quick reconnects.
    pub fn builder_via(
        &self,
        kind: Kind,
        endpoint: String,
        device_id: &str,
        key: &str,
    ) -> HubClientBuilder {
        let key = dps_auth::SymmetricKey::from_base64(key).unwrap();
        let builder = hub_client::HubClient::builder(&self.hub, device_id, key)
            .endpoint(endpoint)
            .tls(self.tls())
            .backoff(
                Backoff::default()
                    .base(Duration::from_millis(50))
                    .max(Duration::from_millis(500))
                    .max_jitter(Duration::from_millis(20)),
            )
            .connect_timeout(Duration::from_secs(10))
            .initial_connect_timeout(Duration::from_secs(20))
            .jitter_seed(42);
        match kind {
            Kind::Mqtt => builder.transport(MqttTransport::new()),
            Kind::Ws => builder.transport(WebSocketTransport::new()),
        }
    }

    pub fn builder(&self, kind: Kind, device_id: &str, key: &str) -> HubClientBuilder {
        self.builder_via(kind, self.endpoint(kind), device_id, key)
    }

    /// Every telemetry event of `device_id` (all modules included) read so far after `since`.
    pub fn events(&self, since: u64) -> Vec<HubEvent> {
        self.emu.hub_events(&self.hub, since)
    }

    pub fn telemetry_of(&self, device_id: &str) -> Vec<HubEvent> {
        self.events(0)
            .into_iter()
            .filter(|e| e.device_id == device_id && e.kind == dps_emulator::HubEventKind::Telemetry)
            .collect()
    }
}

/// Waits until `check` holds (polling), or panics after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a stream item within `limit`.
pub async fn next<T>(stream: &mut hub_client::Subscription<T>, limit: Duration) -> T {
    tokio::time::timeout(limit, stream.recv())
        .await
        .expect("an item in time")
        .expect("the stream is open")
}

/// Collects connection states as they come.
pub fn record_states(
    mut states: hub_client::Subscription<ConnectionState>,
) -> Arc<Mutex<Vec<ConnectionState>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(state) = states.recv().await {
            sink.lock().unwrap().push(state);
        }
    });
    seen
}

/// A TCP relay in front of the emulator.
pub struct Relay {
    pub addr: SocketAddr,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    blocked: Arc<AtomicBool>,
    accept: AbortHandle,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let blocked = Arc::new(AtomicBool::new(false));
        let (live2, blocked2) = (Arc::clone(&live), Arc::clone(&blocked));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if blocked2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut live = live2.lock().unwrap();
                live.retain(|h| !h.is_finished());
                live.push(task.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            live,
            blocked,
            accept,
        }
    }

    /// `localhost:{port}` (the emulator's certificate names `localhost`).
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// Cuts every connection through the relay, as a network failure would.
    pub fn cut(&self) {
        for handle in self.live.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    /// While blocked, new connections are closed at once (an outage).
    pub fn block(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::SeqCst);
    }
}
