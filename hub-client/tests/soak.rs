//! The chaos soak: devices on the
//! emulator's IoT Hub, behind a relay that drops each connection at a random point and refuses
//! reconnects for a while, half of them with tokens that expire during the run, while they send telemetry with message
//! ids, receive cloud-to-device messages, follow desired patches and answer methods. Then the
//! faults stop and the guarantees are checked: every accepted telemetry message reached the
//! hub (duplicates only with the same id), every C2D message reached the application, every
//! twin converged to the last desired version, every method call got an answer or a typed
//! failure, and no task panicked.
//!
//! In CI it runs short (16 devices, 12 s of faults). A long run is the same test with its size
//! from the environment, printing its figures:
//! `SOAK_DEVICES=500 SOAK_SECONDS=600 cargo test --release -p hub-client --test soak -- --nocapture`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Kind, eventually, start};
use dps_emulator::{CloudToDeviceMessage, HubEventKind, MethodInvocation};
use hub_client::{DesiredUpdate, Message, Renewal};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// How many devices (`SOAK_DEVICES`, default 16).
fn devices() -> usize {
    env_or("SOAK_DEVICES", 16)
}

/// How long the faults last (`SOAK_SECONDS`, default 12).
fn chaos() -> Duration {
    Duration::from_secs(env_or("SOAK_SECONDS", 12))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SETTLE: Duration = Duration::from_secs(60);
/// The hub's queue-full error for cloud-to-device messages.
const QUEUE_FULL: u32 = 403_004;

/// A small deterministic generator (xorshift), so a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A TCP relay that closes each connection after a random lifetime (a drop at a random point
/// of the exchange) and, while `refusing`, closes new connections at once.
struct ChaosRelay {
    addr: SocketAddr,
    calm: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    drops: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
}

impl ChaosRelay {
    async fn start(target: SocketAddr, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Self {
            addr: listener.local_addr().unwrap(),
            calm: Arc::default(),
            refusing: Arc::default(),
            drops: Arc::default(),
            refused: Arc::default(),
        };
        let (calm, refusing) = (Arc::clone(&relay.calm), Arc::clone(&relay.refusing));
        let (drops, refused) = (Arc::clone(&relay.drops), Arc::clone(&relay.refused));
        tokio::spawn(async move {
            let mut rng = Rng(seed);
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    refused.fetch_add(1, Ordering::Relaxed);
                    drop(inbound);
                    continue;
                }
                let lifetime = Duration::from_millis(200 + rng.below(2_500));
                let (calm, drops) = (Arc::clone(&calm), Arc::clone(&drops));
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    tokio::select! {
                        _ = &mut copy => return,
                        () = tokio::time::sleep(lifetime) => {}
                    }
                    if calm.load(Ordering::SeqCst) {
                        let _ = copy.await;
                    } else {
                        drops.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        relay
    }

    fn endpoint(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }
}

/// Counts the telemetry events that arrived after `since` by message id (read as the run goes:
/// the emulator's feed keeps only the most recent events).
fn collect(env: &common::Env, since: &mut u64, arrived: &mut BTreeMap<String, u32>) {
    for event in env.events(*since) {
        *since = (*since).max(event.sequence_number);
        if event.kind == HubEventKind::Telemetry {
            let mid = event.system_properties.get("messageId").cloned();
            *arrived.entry(mid.unwrap_or_default()).or_default() += 1;
        }
    }
}

/// What one device's application saw.
#[derive(Default)]
struct Seen {
    accepted: BTreeSet<String>,
    c2d: BTreeSet<String>,
    desired_version: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_loses_nothing() {
    let (n_devices, chaos_for) = (devices(), chaos());
    let env = start().await;
    let relay = ChaosRelay::start(env.addr(Kind::Mqtt), 0x9e37_79b9_7f4a_7c15).await;
    let mut clients = Vec::new();
    let seen: Vec<Arc<Mutex<Seen>>> = (0..n_devices).map(|_| Arc::default()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut senders = Vec::new();
    for (d, seen_by) in seen.iter().enumerate() {
        let id = format!("soak-{d}");
        let key = env.device(&id).await;
        let kind = if d % 4 == 3 { Kind::Ws } else { Kind::Mqtt };
        let endpoint = match kind {
            Kind::Mqtt => relay.endpoint(),
            // The WebSocket devices are not behind the relay: they see the other faults only.
            Kind::Ws => env.endpoint(kind),
        };
        let mut builder = env
            .builder_via(kind, endpoint, &id, &key)
            .stream_capacity(4);
        if d % 2 == 1 {
            // Tokens that expire during the run: renewed by reconnecting.
            builder = builder
                .token_lifetime(Duration::from_secs(5))
                .renewal(Renewal::default().min_interval(Duration::from_millis(500)));
        }
        let hub = builder.connect().await.unwrap();
        let hub = Arc::new(hub);
        let mut c2d = hub.c2d_messages().unwrap();
        let mut desired = hub.desired_patches().unwrap();
        let mut methods = hub.method_requests().unwrap();
        let s = Arc::clone(seen_by);
        tasks.push(tokio::spawn(async move {
            while let Some(message) = c2d.recv().await {
                let id = message.message_id().unwrap_or_default().to_owned();
                s.lock().unwrap().c2d.insert(id);
                // A slow application: the stream fills and holds.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
        let s = Arc::clone(seen_by);
        tasks.push(tokio::spawn(async move {
            while let Some(update) = desired.recv().await {
                if let Some(version) = update.version() {
                    let mut s = s.lock().unwrap();
                    // A resync brings the whole twin; a patch only moves forward.
                    if matches!(update, DesiredUpdate::Resync { .. }) || version > s.desired_version
                    {
                        s.desired_version = version;
                    }
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            while let Some(request) = methods.recv().await {
                let _ = request.respond(200, json!({ "ok": true })).await;
            }
        }));
        let (s, sender, stop) = (Arc::clone(seen_by), Arc::clone(&hub), Arc::clone(&stop));
        senders.push(tokio::spawn(async move {
            let mut i = 0_u32;
            while !stop.load(Ordering::SeqCst) {
                let mid = format!("{id}-t{i}");
                let message = Message::json(&json!({ "i": i }))
                    .unwrap()
                    .message_id(mid.clone());
                if sender.send(message).await.is_ok() {
                    s.lock().unwrap().accepted.insert(mid);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
        clients.push(hub);
    }

    // The service side, and outages, while the relay drops connections.
    let mut sent_c2d: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut methods = BTreeMap::<&str, u32>::new();
    let started = tokio::time::Instant::now();
    let mut round = 0_u32;
    let mut rng = Rng(7);
    let (mut since, mut arrived) = (0, BTreeMap::new());
    while started.elapsed() < chaos_for {
        if round % 10 == 5 {
            relay.refusing.store(true, Ordering::SeqCst);
        } else if round % 10 == 7 {
            relay.refusing.store(false, Ordering::SeqCst);
        }
        for d in 0..n_devices {
            let id = format!("soak-{d}");
            let mid = format!("{id}-c{round}");
            let message = CloudToDeviceMessage::new(mid.clone()).message_id(mid.clone());
            match env.emu.send_c2d(&env.hub, &id, message).await {
                Ok(_) => {
                    sent_c2d.entry(d).or_default().insert(mid);
                }
                Err(failure) => assert_eq!(failure.error_code, QUEUE_FULL, "{}", failure.message),
            }
            env.emu
                .patch_desired(&env.hub, &id, json!({ "round": round }))
                .await
                .unwrap();
            if rng.below(4) == 0 {
                let invocation = MethodInvocation::new("ping")
                    .response_timeout(2)
                    .connect_timeout(1);
                let outcome = match env.emu.invoke_method(&env.hub, &id, invocation).await {
                    Ok(result) => {
                        assert_eq!(result.status, 200);
                        "answered"
                    }
                    // Typed failures: not connected (404103) or no answer in time (504101).
                    Err(failure) => match failure.error_code {
                        404_103 => "not connected",
                        504_101 => "timed out",
                        other => panic!("untyped method failure {other}: {}", failure.message),
                    },
                };
                *methods.entry(outcome).or_default() += 1;
            }
            collect(&env, &mut since, &mut arrived);
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Calm: no more faults; everything must arrive and converge.
    relay.refusing.store(false, Ordering::SeqCst);
    relay.calm.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for (d, seen_by) in seen.iter().enumerate() {
        let id = format!("soak-{d}");
        let expected = sent_c2d.get(&d).cloned().unwrap_or_default();
        let twin = env.emu.twin(&env.hub, &id).unwrap();
        let properties = serde_json::to_value(&twin.properties).unwrap();
        let last = properties["desired"]["$version"].as_u64().unwrap();
        eventually(
            SETTLE,
            &format!("{id}: every C2D and the last desired version"),
            || {
                let s = seen_by.lock().unwrap();
                expected.is_subset(&s.c2d) && s.desired_version == last
            },
        )
        .await;
    }
    // The last sends finish (or fail); then read the rest of the feed.
    for sender in senders {
        sender.await.expect("a telemetry task panicked");
    }
    collect(&env, &mut since, &mut arrived);
    // Duplicates only with the same id: every event names a message some device sent.
    assert!(
        !arrived.contains_key(""),
        "telemetry without its message id"
    );
    let mut accepted = 0;
    for (d, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        accepted += s.accepted.len();
        for mid in &s.accepted {
            assert!(
                arrived.contains_key(mid),
                "soak-{d}: accepted telemetry {mid} never arrived"
            );
        }
        let received: usize = s.c2d.len();
        assert!(received > 0, "soak-{d} received no C2D at all");
    }
    for client in clients {
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close().await;
        }
    }
    for task in tasks {
        task.abort();
        if let Err(error) = task.await {
            assert!(error.is_cancelled(), "a task panicked: {error}");
        }
    }
    let drops = relay.drops.load(Ordering::Relaxed);
    let refused = relay.refused.load(Ordering::Relaxed);
    let c2d: usize = sent_c2d.values().map(BTreeSet::len).sum();
    println!(
        "soak: {n_devices} devices, {accepted} telemetry accepted ({} events), {c2d} c2d, {round} desired rounds, methods {methods:?}, {drops} connections dropped, {refused} reconnects refused, lost 0",
        arrived.values().sum::<u32>()
    );
    assert!(drops > 0, "no fault was injected");
}
