//! Durable before acknowledged, against a real crash (#11, #15): the `dps-emulator` binary
//! runs as a child process, devices register over MQTT and service clients create enrollments
//! and hub devices over HTTPS, all at once; the child is killed with SIGKILL (`kill -9`) right
//! after a share of the acknowledgements has arrived, with more writes still in flight. Every
//! write that was acknowledged must be there when the data directory is opened again.

#![cfg(unix)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use dps_emulator::{Emulator, EmulatorConfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Clients of each kind writing one write after the other until the emulator dies.
const WORKERS: usize = 4;
/// Acknowledgements of each kind received before the kill.
const KILL_AFTER: usize = 10;

struct Child9 {
    child: Mutex<Child>,
    mqtt: SocketAddr,
    https: SocketAddr,
    tls: Arc<ClientConfig>,
    scope: String,
    dps_cs: String,
    hub_cs: String,
}

impl Child9 {
    /// SIGKILL (`Child::kill` on Unix): no shutdown, no final commit, no clean close of the
    /// database.
    fn kill_9(&self) {
        let mut child = self.child.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Child9 {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn spawn(dir: &Path, group_key: &str) -> Child9 {
    let config = json!({
        "behaviour": {"retryAfterSeconds": 0, "pollsBeforeAssignment": 0},
        "enrollmentGroups": [{
            "enrollmentGroupId": "fleet",
            "attestation": {"type": "symmetricKey",
                            "symmetricKey": {"primaryKey": group_key, "secondaryKey": group_key}}
        }]
    });
    let config_path = dir.with_extension("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dps-emulator"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--mqtt-port", "0", "--https-port", "0", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let field = |name: &str| info[name].as_str().unwrap().to_owned();
    let port = |endpoint: String| endpoint.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let ca = CertificateDer::from_pem_file(field("caFile")).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    Child9 {
        child: Mutex::new(child),
        mqtt: SocketAddr::from(([127, 0, 0, 1], port(field("mqttEndpoint")))),
        https: SocketAddr::from(([127, 0, 0, 1], port(field("httpsEndpoint")))),
        tls: Arc::new(tls),
        scope: field("idScope"),
        dps_cs: field("dpsConnectionString"),
        hub_cs: field("hubConnectionString"),
    }
}

fn token(cs: &str) -> String {
    service_token_with(
        connection_string_field(cs, "HostName"),
        connection_string_field(cs, "SharedAccessKey"),
        connection_string_field(cs, "SharedAccessKeyName"),
        unix_now() + 3600,
    )
}

/// What was acknowledged: a device assigned, an enrollment created, a hub device created.
#[derive(Debug)]
enum Ack {
    Registered(String),
    Enrolled(String),
    Created(String),
}

/// Registers `id` of the group over MQTT; its id once assigned.
async fn register(emu: &Child9, group_key: &str, id: String) -> Option<Ack> {
    let key = derived(group_key, &id);
    let packet = connect_packet(
        &id,
        &username(&emu.scope, &id, API),
        Some(&sas(&key, &emu.scope, &id)),
    );
    let ConnectOutcome::Accepted(mut conn) =
        connect_raw_to(Arc::clone(&emu.tls), emu.mqtt, &packet).await
    else {
        return None;
    };
    conn.subscribe_dps().await;
    let answer = conn.provision(Vec::new()).await;
    (answer.status() == 200
        && answer
            .operation()
            .registration_state?
            .assigned_hub
            .is_some())
    .then_some(Ack::Registered(id))
}

/// Creates an individual enrollment over the DPS service API.
async fn enroll(emu: &Child9, id: String) -> Option<Ack> {
    let body = sym_enrollment(&id, &key(7, 32), &key(8, 32));
    let reply = https_to(
        Arc::clone(&emu.tls),
        emu.https,
        "PUT",
        &format!("/enrollments/{id}?api-version=2021-10-01"),
        &[("authorization", token(&emu.dps_cs))],
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await;
    (reply.status == 200).then_some(Ack::Enrolled(id))
}

/// Creates a device identity over the hub service API.
async fn create_device(emu: &Child9, id: String) -> Option<Ack> {
    let reply = https_to(
        Arc::clone(&emu.tls),
        emu.https,
        "PUT",
        &format!("/devices/{id}?api-version=2021-04-12"),
        &[("authorization", token(&emu.hub_cs))],
        Some(serde_json::to_vec(&json!({ "deviceId": id })).unwrap()),
    )
    .await;
    (reply.status == 200).then_some(Ack::Created(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let group_key = key(42, 32);
    let emu = Arc::new(spawn(&data, &group_key));

    let (acks, mut acked) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for kind in 0..3 {
        for worker in 0..WORKERS {
            let (emu, acks, group_key) = (Arc::clone(&emu), acks.clone(), group_key.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("w{worker}-{n:04}");
                    // A connection cut by the kill is a write that was never acknowledged (the
                    // helpers panic on it, which ends this worker).
                    let ack = match kind {
                        0 => register(&emu, &group_key, format!("reg-{id}")).await,
                        1 => enroll(&emu, format!("enr-{id}")).await,
                        _ => create_device(&emu, format!("hub-{id}")).await,
                    };
                    let Some(ack) = ack else { return };
                    if acks.send(ack).is_err() {
                        return;
                    }
                }
            }));
        }
    }
    drop(acks);

    // Every kind has writes acknowledged and more in flight when the process dies.
    let mut received = Vec::new();
    let mut per_kind = [0; 3];
    while per_kind.iter().any(|&n| n < KILL_AFTER) {
        let ack = acked.recv().await.expect("acknowledgements until the kill");
        per_kind[match ack {
            Ack::Registered(_) => 0,
            Ack::Enrolled(_) => 1,
            Ack::Created(_) => 2,
        }] += 1;
        received.push(ack);
    }
    // The writers whose exchange the kill cuts short panic in the helpers' expectations (a
    // reply, a handshake): expected, and kept out of the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    emu.kill_9();
    for task in tasks {
        let _ = task.await;
    }
    std::panic::set_hook(hook);
    // Acknowledgements the server sent before it died, read after the kill, count as well.
    while let Ok(ack) = acked.try_recv() {
        received.push(ack);
    }
    drop(emu);

    let restarted = Emulator::start(EmulatorConfig::new(&data)).await.unwrap();
    let hub = restarted.default_hub().to_owned();
    for ack in &received {
        match ack {
            Ack::Registered(id) => {
                let record = restarted
                    .registration(id)
                    .unwrap_or_else(|e| panic!("acknowledged registration {id} lost: {e:?}"));
                assert_eq!(record.assigned_hub.as_deref(), Some(hub.as_str()), "{id}");
                assert!(
                    restarted.hub_device(&hub, id).is_some(),
                    "hub device of {id} lost"
                );
            }
            Ack::Enrolled(id) => {
                assert!(
                    restarted.enrollment(id).is_ok(),
                    "acknowledged enrollment {id} lost"
                );
            }
            Ack::Created(id) => {
                assert!(
                    restarted.hub_device(&hub, id).is_some(),
                    "acknowledged hub device {id} lost"
                );
            }
        }
    }
    restarted.shutdown().await;
}
