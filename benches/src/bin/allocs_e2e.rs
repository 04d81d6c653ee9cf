//! Heap allocations and heap bytes of whole client operations against the emulator, counted in
//! this process only (the emulator runs as its own process, started from the binary next to
//! this one): one registration, one registration in flight, one telemetry message and one idle
//! hub connection, for this SDK and for the raw baseline. Allocation counts do not depend on
//! how busy the machine is, so they compare builds where CPU figures on a shared machine
//! cannot.
//!
//! ```sh
//! cargo build --release -p dps-benches --bin allocs_e2e -p dps-emulator
//! target/release/allocs_e2e            # one JSON object per figure
//! DHAT_OUT=dhat-heap.json target/release/allocs_e2e telemetry   # a full profile of one part
//! ALLOCS_CLIENT=raw DHAT_OUT=dhat-heap.json target/release/allocs_e2e in-flight   # of one client
//! ALLOCS_IN_FLIGHT=5000 target/release/allocs_e2e in-flight   # more registrations at once
//! # the profile of what each registration holds once polled, before its I/O completes:
//! ALLOCS_STOP=first-poll DHAT_OUT=dhat-heap.json target/release/allocs_e2e in-flight
//! ```
//!
//! Parts: `registration`, `in-flight`, `telemetry`, `idle` (all by default).

use std::net::ToSocketAddrs as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dps_benches::raw::{self, RawTarget};
use dps_benches::telemetry;
use futures_util::StreamExt as _;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

type Error = Box<dyn std::error::Error>;

/// A fixed group key: the figures need a key, not a secret.
const GROUP_KEY: &str = "YWxsb2NzLWUyZS1ncm91cC1rZXktZm9yLXRoZS1iZW5jaG1hcmtzLW9mLWlzc3VlLTE2";
const REGISTRATIONS: usize = 100;
const IN_FLIGHT: usize = 200;
const MESSAGES: usize = 5_000;
const WINDOW: usize = 16;
const IDLE: usize = 100;

struct Emulator {
    child: Child,
    dir: PathBuf,
    endpoint: String,
    ca: PathBuf,
    scope: String,
}

impl Emulator {
    fn start() -> Result<Self, Error> {
        let exe = std::env::current_exe()?;
        let binary = exe.with_file_name("dps-emulator");
        let dir = std::env::temp_dir().join(format!("allocs-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = serde_json::json!({
            "behaviour": {"retryAfterSeconds": 0, "pollsBeforeAssignment": 1},
            "enrollmentGroups": [{
                "enrollmentGroupId": "fleet",
                "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY, "secondaryKey": GROUP_KEY}}
            }]
        });
        std::fs::write(dir.join("config.json"), serde_json::to_vec(&config)?)?;
        // An unused port of the loopback, picked by the system.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(&binary)
            .arg("--data-dir")
            .arg(dir.join("state"))
            .args(["--mqtt-port", &port.to_string(), "--https-port", "0"])
            .arg("--config")
            .arg(dir.join("config.json"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let ready = dps_benches::ready::read(&mut child)?.ok_or("the emulator did not start")?;
        Ok(Self {
            child,
            dir,
            endpoint: ready.endpoint,
            ca: ready.ca,
            scope: ready.scope,
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the clients share.
struct Setup {
    endpoint: String,
    host: String,
    scope: String,
    tls: dps_client::TlsConfig,
    raw: RawTarget,
    group: dps_auth::GroupKey,
    group_bytes: Vec<u8>,
}

fn heap() -> dhat::HeapStats {
    dhat::HeapStats::get()
}

fn report(part: &str, client: &str, per: usize, before: &dhat::HeapStats) {
    let after = heap();
    let per_f = per as f64;
    println!(
        "{}",
        serde_json::json!({
            "part": part,
            "client": client,
            "count": per,
            "blocks_per": (after.total_blocks - before.total_blocks) as f64 / per_f,
            "bytes_per": (after.total_bytes - before.total_bytes) as f64 / per_f,
        })
    );
}

async fn register_sdk(setup: &Setup, id: &str) -> Result<(), Error> {
    let key = setup.group.derive(id)?;
    dps_client::ProvisioningClient::new(&setup.scope, id, key)
        .endpoint(&setup.endpoint)
        .tls(setup.tls.clone())
        .timing(dps_client::Timing::default().retry_after_floor(Duration::ZERO))
        .register()
        .await?;
    Ok(())
}

async fn register_raw(setup: &Setup, id: &str) -> Result<(), Error> {
    let key = raw::derive_key(&setup.group_bytes, id);
    raw::register(&setup.raw, id, &key).await.map_err(|e| e.0)?;
    Ok(())
}

async fn register(setup: &Setup, sdk: bool, id: String) -> Result<(), Error> {
    // Boxed each on its own: in one future, every registration in flight would be as large as
    // the larger of the two clients' registrations, whichever runs.
    if sdk {
        Box::pin(register_sdk(setup, &id)).await
    } else {
        Box::pin(register_raw(setup, &id)).await
    }
}

fn client_name(sdk: bool) -> &'static str {
    if sdk { "sdk" } else { "raw" }
}

/// The clients to measure: both, or the one `ALLOCS_CLIENT` names (`sdk` or `raw`), so that a
/// profile's peak is that client's.
fn clients() -> Vec<bool> {
    match std::env::var("ALLOCS_CLIENT").as_deref() {
        Ok("sdk") => vec![true],
        Ok("raw") => vec![false],
        _ => vec![true, false],
    }
}

/// Sequential registrations: allocations per registration.
async fn registration(setup: &Setup) -> Result<(), Error> {
    for sdk in [true, false] {
        let name = client_name(sdk);
        register(setup, sdk, format!("{name}-reg-warm")).await?;
        let before = heap();
        for n in 0..REGISTRATIONS {
            register(setup, sdk, format!("{name}-reg-{n:04}")).await?;
        }
        report("registration", name, REGISTRATIONS, &before);
    }
    Ok(())
}

/// All registrations at once: the peak heap above the start, per registration in flight.
/// dhat's own peak is the process's since the start, so the peak of each client's run is
/// sampled here, every millisecond, next to the registrations.
async fn in_flight(setup: &Setup) -> Result<(), Error> {
    let in_flight = match std::env::var("ALLOCS_IN_FLIGHT") {
        Ok(n) => n.parse().map_err(|_| "ALLOCS_IN_FLIGHT must be a count")?,
        Err(_) => IN_FLIGHT,
    };
    for sdk in clients() {
        let name = client_name(sdk);
        let before = heap();
        let mut registrations = std::pin::pin!(
            futures_util::stream::iter(0..in_flight)
                .map(|n| register(setup, sdk, format!("{name}-fl-{n:04}")))
                .buffer_unordered(in_flight)
                .collect::<Vec<_>>()
        );
        // One poll starts every registration: what each holds before any of its I/O completes.
        let first_poll = match std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(registrations.as_mut(), cx))
        })
        .await
        {
            std::task::Poll::Pending => heap().curr_bytes,
            std::task::Poll::Ready(_) => {
                return Err("the registrations finished in one poll".into());
            }
        };
        if std::env::var("ALLOCS_STOP").as_deref() == Ok("first-poll")
            && std::env::var_os("DHAT_OUT").is_some()
        {
            // The profile's "at the end" figures are then what each registration holds.
            drop(PROFILER.lock().map(|mut p| p.take()));
            std::process::exit(0);
        }
        let mut peak = before.curr_bytes.max(first_poll);
        let sample = async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                peak = peak.max(heap().curr_bytes);
            }
        };
        let results = tokio::select! {
            results = &mut registrations => results,
            () = sample => unreachable!("sampling never ends"),
        };
        let failed = results.iter().filter(|r| r.is_err()).count();
        let after = heap();
        println!(
            "{}",
            serde_json::json!({
                "part": "in-flight",
                "client": name,
                "count": in_flight,
                "failed": failed,
                "first_poll_heap_bytes_per": (first_poll.saturating_sub(before.curr_bytes)) as f64 / in_flight as f64,
                "peak_heap_bytes_per": (peak.saturating_sub(before.curr_bytes)) as f64 / in_flight as f64,
                // What the registrations left behind once all of them had finished.
                "left_heap_bytes_per": (after.curr_bytes.saturating_sub(before.curr_bytes)) as f64 / in_flight as f64,
                "blocks_per": (after.total_blocks - before.total_blocks) as f64 / in_flight as f64,
            })
        );
    }
    Ok(())
}

/// Registers `ids` through DPS (not counted): the hub knows only registered devices.
async fn provision(setup: &Setup, ids: &[String]) -> Result<(), Error> {
    let results: Vec<_> = futures_util::stream::iter(ids)
        .map(|id| register_raw(setup, id))
        .buffer_unordered(50)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;
    Ok(())
}

async fn hub_client(setup: &Setup, id: &str) -> Result<hub_client::HubClient, Error> {
    let key = setup.group.derive(id)?;
    Ok(hub_client::HubClient::builder(setup.host.as_str(), id, key)
        .endpoint(setup.endpoint.as_str())
        .tls(setup.tls.clone())
        .max_in_flight(WINDOW)
        .keep_alive(Duration::from_secs(60))
        .connect()
        .await?)
}

/// One connection, `WINDOW` messages in flight: allocations per message.
async fn telemetry(setup: &Setup) -> Result<(), Error> {
    let ids = ["tel-sdk".to_owned(), "tel-raw".to_owned()];
    provision(setup, &ids).await?;
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let client = hub_client(setup, &ids[0]).await?;
    telemetry::send_windowed(&client, &payload, 0, WINDOW * 4, WINDOW).await;
    let before = heap();
    let (_, errors) = telemetry::send_windowed(&client, &payload, 0, MESSAGES, WINDOW).await;
    report("telemetry", "sdk", MESSAGES, &before);
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    client.close().await;

    let key = raw::derive_key(&setup.group_bytes, &ids[1]);
    let mut conn = raw::hub_connect(&setup.raw, &ids[1], &key, 60)
        .await
        .map_err(|e| e.0)?;
    conn.telemetry(&ids[1], 0, WINDOW * 4, WINDOW)
        .await
        .map_err(|e| e.0)?;
    let before = heap();
    conn.telemetry(&ids[1], 0, MESSAGES, WINDOW)
        .await
        .map_err(|e| e.0)?;
    report("telemetry", "raw", MESSAGES, &before);
    Ok(())
}

/// `IDLE` connections held open: the heap each keeps once connected and settled.
async fn idle(setup: &Setup) -> Result<(), Error> {
    let ids: Vec<String> = (0..IDLE * 2).map(|n| format!("idle-{n:04}")).collect();
    provision(setup, &ids).await?;
    let settle = Duration::from_millis(500);
    let print = |client: &str, before: &dhat::HeapStats| {
        let after = heap();
        println!(
            "{}",
            serde_json::json!({
                "part": "idle",
                "client": client,
                "count": IDLE,
                "heap_bytes_per": (after.curr_bytes.saturating_sub(before.curr_bytes)) as f64 / IDLE as f64,
                "heap_blocks_per": (after.curr_blocks.saturating_sub(before.curr_blocks)) as f64 / IDLE as f64,
            })
        );
    };
    let before = heap();
    let mut clients = Vec::new();
    for id in &ids[..IDLE] {
        clients.push(hub_client(setup, id).await?);
    }
    tokio::time::sleep(settle).await;
    print("sdk", &before);
    if std::env::var_os("DHAT_OUT").is_some() {
        // The profile's "at the end" figures are then what the idle clients keep.
        drop(PROFILER.lock().map(|mut p| p.take()));
        std::process::exit(0);
    }
    futures_util::future::join_all(clients.iter().map(hub_client::HubClient::close)).await;
    drop(clients);

    let before = heap();
    let mut conns = Vec::new();
    for id in &ids[IDLE..] {
        let key = raw::derive_key(&setup.group_bytes, id);
        let mut conn = raw::hub_connect(&setup.raw, id, &key, 60)
            .await
            .map_err(|e| e.0)?;
        // The same protocol state as the SDK's idle client: its subscriptions and the twin.
        conn.subscribe_and_get_twin(id).await.map_err(|e| e.0)?;
        conns.push(tokio::spawn(conn.keep_alive(Duration::from_secs(60))));
    }
    tokio::time::sleep(settle).await;
    print("raw", &before);
    for task in conns {
        task.abort();
    }
    Ok(())
}

async fn run(parts: &[String]) -> Result<(), Error> {
    let emulator = Emulator::start()?;
    let ca_pem = std::fs::read(&emulator.ca)?;
    let (host, port) = emulator
        .endpoint
        .rsplit_once(':')
        .ok_or("endpoint must be host:port")?;
    let addr = (host, port.parse::<u16>()?)
        .to_socket_addrs()?
        .find(std::net::SocketAddr::is_ipv4)
        .ok_or("endpoint does not resolve")?;
    use base64::Engine as _;
    let setup = Setup {
        endpoint: emulator.endpoint.clone(),
        host: host.to_owned(),
        scope: emulator.scope.clone(),
        tls: dps_client::TlsConfig::default()
            .webpki_roots(false)
            .add_root_pem(&ca_pem)?,
        raw: RawTarget::new(addr, host, &ca_pem, &emulator.scope).map_err(|e| e.0)?,
        group: dps_auth::GroupKey::from_base64(GROUP_KEY)?,
        group_bytes: base64::engine::general_purpose::STANDARD.decode(GROUP_KEY)?,
    };
    let all = parts.is_empty();
    let wants = |part: &str| all || parts.iter().any(|p| p == part);
    if wants("registration") {
        registration(&setup).await?;
    }
    if wants("in-flight") {
        in_flight(&setup).await?;
    }
    if wants("telemetry") {
        telemetry(&setup).await?;
    }
    if wants("idle") {
        idle(&setup).await?;
    }
    Ok(())
}

/// The running profiler, written out when dropped.
static PROFILER: std::sync::Mutex<Option<dhat::Profiler>> = std::sync::Mutex::new(None);

fn main() -> Result<(), Error> {
    let parts: Vec<String> = std::env::args().skip(1).collect();
    // A full profile (allocation sites) on request; counts only otherwise. With `idle`, the
    // profile is written while the SDK's idle clients are connected, and the run stops there.
    let profiler = match std::env::var_os("DHAT_OUT") {
        Some(path) => dhat::Profiler::builder().file_name(path).build(),
        None => dhat::Profiler::builder().testing().build(),
    };
    *PROFILER.lock().map_err(|_| "poisoned")? = Some(profiler);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&parts));
    drop(PROFILER.lock().map(|mut p| p.take()));
    result
}
