//! How the emulator's store scales with the fleet (#15 item 5): registrations per second and
//! emulator CPU per registration with 1,000 / 10,000 / 100,000 devices already registered, the
//! restart time with them, and the store's size on disk.
//!
//! ```text
//! cargo build --release -p dps-emulator --bin dps-emulator
//! cargo run --release -p dps-benches --bin store_scale -- [SIZES] [NEW] [IN-FLIGHT]
//!     SIZES      devices already registered, comma-separated (default 1000,10000,100000)
//!     NEW        registrations measured at each size (default 200)
//!     IN-FLIGHT  registrations in flight at once (default 20)
//! ```
//!
//! The fleet already registered is written as the JSON snapshot of earlier versions (one
//! registered device, replicated with new ids), which the emulator migrates into its database
//! at its first start, so that preparing 100,000 devices does not take as long as registering
//! them; the emulator is then restarted on its database (the restart time) and the measured
//! registrations go through its MQTT endpoint with the SDK's `ProvisioningClient`. The emulator
//! runs as its own process, so its CPU time is its own (`/proc/<pid>/stat`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dps_benches::measure;
use dps_client::{ProvisioningClient, TlsConfig};
use futures_util::StreamExt as _;

type Error = Box<dyn std::error::Error>;

/// A fixed group key: the benchmark needs a key, not a secret.
const GROUP_KEY: &str = "c3RvcmUtc2NhbGUtZ3JvdXAta2V5LWZvci10aGUtYmVuY2htYXJrcy0wMDAwMDA=";
const TEMPLATE_ID: &str = "tpl-device-000";

struct Running {
    child: Child,
    pid: u32,
    endpoint: String,
    ca: PathBuf,
    scope: String,
    /// From spawn to the ready line.
    startup: Duration,
}

impl Running {
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn spawn(binary: &Path, data_dir: &Path) -> Result<Running, Error> {
    let config = serde_json::json!({
        "behaviour": {"retryAfterSeconds": 0, "pollsBeforeAssignment": 0},
        "enrollmentGroups": [{
            "enrollmentGroupId": "fleet",
            "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY, "secondaryKey": GROUP_KEY}}
        }]
    });
    let config_path = data_dir.with_extension("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config)?)?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--mqtt-port", "0", "--https-port", "0", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let ready = dps_benches::ready::read(&mut child)?.ok_or("the emulator did not start")?;
    let startup = started.elapsed();
    Ok(Running {
        pid: child.id(),
        child,
        endpoint: ready.endpoint,
        ca: ready.ca,
        scope: ready.scope,
        startup,
    })
}

/// Registers `ids` with `in_flight` at once; the wall time.
async fn register(
    emulator: &Running,
    ids: Vec<String>,
    in_flight: usize,
) -> Result<Duration, Error> {
    let ca = std::fs::read(&emulator.ca)?;
    let tls = TlsConfig::default().webpki_roots(false).add_root_pem(&ca)?;
    let group = dps_auth::GroupKey::from_base64(GROUP_KEY)?;
    let started = Instant::now();
    let results: Vec<Result<(), String>> = futures_util::stream::iter(ids)
        .map(|id| {
            let tls = tls.clone();
            let key = group.derive(&id);
            let (endpoint, scope) = (emulator.endpoint.clone(), emulator.scope.clone());
            async move {
                let key = key.map_err(|e| e.to_string())?;
                ProvisioningClient::new(scope, id.clone(), key)
                    .endpoint(endpoint)
                    .tls(tls)
                    .register()
                    .await
                    .map(drop)
                    .map_err(|e| format!("{id}: {e}"))
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(e.into());
    }
    Ok(elapsed)
}

/// The template device's registration record and hub device, read out of the database, in the
/// snapshot's shape.
fn template_rows(db: &Path) -> Result<serde_json::Value, Error> {
    let db = redb::Database::open(db)?;
    let read = db.begin_read()?;
    let row = |table: &str, key: &str| -> Result<serde_json::Value, Error> {
        let table = read.open_table(redb::TableDefinition::<&str, &[u8]>::new(table))?;
        let value = table.get(key)?.ok_or(format!("no {key} in the store"))?;
        Ok(serde_json::from_slice(value.value())?)
    };
    let hub_key = format!("localhost/{TEMPLATE_ID}");
    Ok(serde_json::json!({
        "registrations": { TEMPLATE_ID: row("registrations", TEMPLATE_ID)? },
        "hubDevices": { hub_key.clone(): row("hub_devices", &hub_key)? },
    }))
}

/// A store file with `n` registered devices, made from the template store's one device.
fn write_fleet(template: &serde_json::Value, n: usize, path: &Path) -> Result<u64, Error> {
    let registration = template["registrations"][TEMPLATE_ID].to_string();
    let hub_key = format!("localhost/{TEMPLATE_ID}");
    let device = template["hubDevices"][&hub_key].to_string();
    let mut registrations = serde_json::Map::new();
    let mut devices = serde_json::Map::new();
    for i in 0..n {
        let id = format!("pre-device-{i:07}");
        registrations.insert(
            id.clone(),
            serde_json::from_str(&registration.replace(TEMPLATE_ID, &id))?,
        );
        devices.insert(
            format!("localhost/{id}"),
            serde_json::from_str(&device.replace(TEMPLATE_ID, &id))?,
        );
    }
    let mut store = template.clone();
    store["registrations"] = registrations.into();
    store["hubDevices"] = devices.into();
    std::fs::write(path, serde_json::to_vec_pretty(&store)?)?;
    Ok(std::fs::metadata(path)?.len())
}

fn copy_keys(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".pem") || name.to_string_lossy().ends_with(".key") {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args
        .first()
        .map_or("1000,10000,100000", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let new: usize = args.get(1).map_or(Ok(200), |a| a.parse())?;
    let in_flight: usize = args.get(2).map_or(Ok(20), |a| a.parse())?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release/dps-emulator");
    if !binary.exists() {
        return Err(
            "build it first: cargo build --release -p dps-emulator --bin dps-emulator".into(),
        );
    }
    let work = target.join("store-scale");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // One registered device: the template of the fleets.
    let template_dir = work.join("template");
    let emulator = spawn(&binary, &template_dir)?;
    runtime.block_on(register(&emulator, vec![TEMPLATE_ID.to_owned()], 1))?;
    emulator.stop();
    let template = template_rows(&template_dir.join("state.redb"))?;

    println!("{}", measure::machine());
    println!(
        "| devices registered | store on disk | restart | registrations/s ({new} new, {in_flight} in flight) | emulator CPU per registration | first start (migration) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let dir = work.join(format!("fleet-{n}"));
        copy_keys(&template_dir, &dir)?;
        write_fleet(&template, n, &dir.join("state.json"))?;
        // The first start migrates the snapshot; the measured one restarts on the database.
        let migrating = Instant::now();
        spawn(&binary, &dir)?.stop();
        let migration = migrating.elapsed();
        let emulator = spawn(&binary, &dir)?;
        let cpu_before = measure::pid_cpu(emulator.pid).unwrap_or_default();
        let ids = (0..new).map(|i| format!("new-device-{i:05}")).collect();
        let elapsed = runtime.block_on(register(&emulator, ids, in_flight))?;
        let cpu = measure::pid_cpu(emulator.pid)
            .unwrap_or_default()
            .saturating_sub(cpu_before);
        let startup = emulator.startup;
        emulator.stop();
        let bytes = std::fs::metadata(dir.join("state.redb"))?.len();
        let rate = new as f64 / elapsed.as_secs_f64();
        let cpu_per = cpu.as_secs_f64() * 1000.0 / new as f64;
        println!(
            "| {n} | {:.1} MB | {:.2} s | {rate:.0} | {cpu_per:.1} ms | {:.1} s |",
            bytes as f64 / 1e6,
            startup.as_secs_f64(),
            migration.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
