//! `dps send` against the in-process emulator's hub: connection strings, registration files,
//! properties, and the exit codes of refusals and bad input.

use std::process::Output;

use dps_emulator::model::{DeviceStatus, HubAuthType, HubAuthentication, SymmetricKeyAttestation};
use dps_emulator::{DeviceIdentity, Emulator, EmulatorConfig, HubEventKind};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Env {
    emu: Emulator,
    dir: tempfile::TempDir,
    hub: String,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(EmulatorConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), emu.ca_pem()).unwrap();
    let hub = emu.default_hub().to_owned();
    Env { emu, dir, hub }
}

impl Env {
    async fn device(&self, device_id: &str) {
        let device = DeviceIdentity {
            device_id: device_id.into(),
            authentication: HubAuthentication {
                kind: HubAuthType::Sas,
                symmetric_key: Some(SymmetricKeyAttestation {
                    primary_key: Some(KEY.into()),
                    secondary_key: None,
                }),
                x509_thumbprint: None,
            },
            ..DeviceIdentity::default()
        };
        self.emu.create_device(&self.hub, device).await.unwrap();
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    fn endpoint(&self) -> String {
        format!("localhost:{}", self.emu.mqtt_addr().port())
    }

    fn connection_string(&self, device_id: &str, key: &str) -> String {
        format!(
            "HostName={};DeviceId={device_id};SharedAccessKey={key};GatewayHostName={}",
            self.hub,
            self.endpoint()
        )
    }
}

async fn dps(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dps"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_with_a_connection_string() {
    let env = start().await;
    env.device("cli-1").await;
    let cs = env.connection_string("cli-1", KEY);
    let ca = env.ca();
    let output = dps(args(&[
        "send",
        "--connection-string",
        &cs,
        "--ca-file",
        &ca,
        "--count",
        "3",
        "--property",
        "source=cli",
    ]))
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["sent"], 3);
    assert_eq!(summary["deviceId"], "cli-1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sent message #3"), "{stderr}");
    assert!(!stderr.contains(KEY) && !String::from_utf8_lossy(&output.stdout).contains(KEY));
    let events = env.emu.hub_events(&env.hub, 0);
    let telemetry: Vec<_> = events
        .iter()
        .filter(|e| e.device_id == "cli-1" && e.kind == HubEventKind::Telemetry)
        .collect();
    assert_eq!(telemetry.len(), 3);
    assert_eq!(telemetry[2].properties["source"], "cli");
    assert_eq!(
        telemetry[2].body_json(),
        Some(serde_json::json!({ "messageNumber": 3 }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_from_a_registration_file_over_websocket() {
    let env = start().await;
    env.device("cli-2").await;
    let file = env.dir.path().join("registration.json");
    std::fs::write(
        &file,
        serde_json::json!({ "assignedHub": env.hub, "deviceId": "cli-2", "status": "assigned" })
            .to_string(),
    )
    .unwrap();
    let endpoint = format!("localhost:{}", env.emu.https_addr().port());
    let (ca, file) = (env.ca(), file.display().to_string());
    let output = dps(args(&[
        "send",
        "--from-registration",
        &file,
        "--symmetric-key",
        KEY,
        "--endpoint",
        &endpoint,
        "--transport",
        "ws",
        "--ca-file",
        &ca,
        "--payload",
        r#"{"hello":"world"}"#,
    ]))
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = env.emu.hub_events(&env.hub, 0);
    let event = events
        .iter()
        .find(|e| e.device_id == "cli-2" && e.kind == HubEventKind::Telemetry)
        .unwrap();
    assert_eq!(
        event.body_json(),
        Some(serde_json::json!({ "hello": "world" }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_bad_input_have_their_exit_codes() {
    let env = start().await;
    env.device("cli-3").await;
    let ca = env.ca();

    // A wrong key: the hub refuses (10), and the key is never echoed.
    let wrong = "BBECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cs = env.connection_string("cli-3", wrong);
    let output = dps(args(&[
        "send",
        "--connection-string",
        &cs,
        "--ca-file",
        &ca,
    ]))
    .await;
    assert_eq!(output.status.code(), Some(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && !stderr.contains(wrong),
        "{stderr}"
    );

    // A disabled device: 10 too.
    let mut device = env.emu.device(&env.hub, "cli-3").unwrap();
    device.status = DeviceStatus::Disabled;
    env.emu.update_device(&env.hub, device, None).await.unwrap();
    let cs = env.connection_string("cli-3", KEY);
    let output = dps(args(&[
        "send",
        "--connection-string",
        &cs,
        "--ca-file",
        &ca,
    ]))
    .await;
    assert_eq!(output.status.code(), Some(10));

    // Untrusted server certificate: 17.
    let output = dps(args(&["send", "--connection-string", &cs])).await;
    assert_eq!(
        output.status.code(),
        Some(17),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Bad input: 3.
    for bad in [
        args(&["send", "--connection-string", "HostName=h;DeviceId=d"]),
        args(&["send", "--connection-string", &cs, "--payload", "{not json"]),
        args(&["send", "--connection-string", &cs, "--property", "novalue"]),
    ] {
        let output = dps(bad.clone()).await;
        assert_eq!(output.status.code(), Some(3), "{bad:?}");
    }
    // Usage: 2.
    let output = dps(args(&["send", "--symmetric-key", KEY])).await;
    assert_eq!(output.status.code(), Some(2));
}
