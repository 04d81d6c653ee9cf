//! `dps enroll` and `dps registry` against the in-process emulator's service APIs, with the
//! connection strings it prints: the shell-only recipe (enroll, provision, manage the device).

use std::io::Write as _;
use std::process::{Output, Stdio};

use dps_emulator::model::{AttestationType, DeviceStatus, ProvisioningStatus};
use dps_emulator::{EmulatorFixture, ServiceFailure};
use serde_json::Value;

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "HxwdHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

struct Env {
    emu: EmulatorFixture,
    ca: String,
}

async fn start() -> Env {
    let emu = EmulatorFixture::start().await.unwrap();
    let ca = emu.info().ca_file.display().to_string();
    Env { emu, ca }
}

impl Env {
    fn dps_cs(&self) -> String {
        self.emu.info().dps_connection_string.clone()
    }

    fn hub_cs(&self) -> String {
        self.emu.info().hub_connection_string.clone()
    }

    /// `dps {list} --connection-string {cs} --ca-file {ca}`.
    async fn run(&self, list: &[&str], cs: &str) -> Output {
        let mut args: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["--connection-string".into(), cs.to_owned()]);
        args.extend(["--ca-file".into(), self.ca.clone()]);
        dps(args, None).await
    }
}

async fn dps(args: Vec<String>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dps"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn ok_json(output: &Output) -> Value {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_a_device_provision_it_and_manage_its_identity_from_the_shell() {
    let env = start().await;
    let cs = env.dps_cs();

    // Individual, generated symmetric keys.
    let stored = ok_json(
        &env.run(
            &["enroll", "individual", "--registration-id", "cli-dev-1"],
            &cs,
        )
        .await,
    );
    let key = stored["attestation"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.emu.enrollment("cli-dev-1").unwrap().primary_key(),
        Some(key.as_str())
    );

    // The printed key provisions the device, end to end through the CLI.
    let endpoint = env.emu.endpoints().mqtt_endpoint;
    let scope = env.emu.id_scope().to_owned();
    let output = dps(
        [
            "provision",
            "--id-scope",
            &scope,
            "--registration-id",
            "cli-dev-1",
            "--symmetric-key",
            &key,
            "--endpoint",
            &endpoint,
            "--ca-file",
            &env.ca,
        ]
        .map(str::to_owned)
        .to_vec(),
        None,
    )
    .await;
    let assignment = ok_json(&output);
    assert_eq!(
        assignment["assignedHub"],
        env.emu.default_hub(),
        "{assignment}"
    );

    // The identity DPS created: get, disable (the device can no longer connect), enable.
    let hub_cs = env.hub_cs();
    let device = ok_json(
        &env.run(&["registry", "get", "--device-id", "cli-dev-1"], &hub_cs)
            .await,
    );
    assert_eq!(device["status"], "enabled");
    let disabled = ok_json(
        &env.run(
            &[
                "registry",
                "disable",
                "--device-id",
                "cli-dev-1",
                "--reason",
                "stolen",
            ],
            &hub_cs,
        )
        .await,
    );
    assert_eq!(disabled["status"], "disabled");
    let hub = env.emu.default_hub().to_owned();
    let stored = env.emu.device(&hub, "cli-dev-1").unwrap();
    assert_eq!(stored.status, DeviceStatus::Disabled);
    assert_eq!(stored.status_reason.as_deref(), Some("stolen"));
    ok_json(
        &env.run(&["registry", "enable", "--device-id", "cli-dev-1"], &hub_cs)
            .await,
    );
    assert_eq!(
        env.emu.device(&hub, "cli-dev-1").unwrap().status,
        DeviceStatus::Enabled
    );

    // Create with given keys, and with generated ones; delete.
    let created = ok_json(
        &env.run(
            &[
                "registry",
                "create",
                "--device-id",
                "cli-dev-2",
                "--symmetric-key",
                KEY_A,
                "--secondary-key",
                KEY_B,
            ],
            &hub_cs,
        )
        .await,
    );
    assert_eq!(
        created["authentication"]["symmetricKey"]["primaryKey"],
        KEY_A
    );
    let generated = ok_json(
        &env.run(&["registry", "create", "--device-id", "cli-dev-3"], &hub_cs)
            .await,
    );
    assert!(
        generated["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .is_some_and(|k| k.len() > 20)
    );
    let gone = env
        .run(&["registry", "delete", "--device-id", "cli-dev-3"], &hub_cs)
        .await;
    assert_eq!(gone.status.code(), Some(0));
    let missing = env
        .run(&["registry", "get", "--device-id", "cli-dev-3"], &hub_cs)
        .await;
    assert_eq!(
        missing.status.code(),
        Some(14),
        "not found is a rejected request"
    );
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("404"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_x509_get_delete_and_refusals() {
    let env = start().await;
    let cs = env.dps_cs();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["cli-x509".to_owned()]).unwrap();
    let pem_path = dir.path().join("device.pem");
    std::fs::write(&pem_path, cert.cert.pem()).unwrap();
    let pem_path = pem_path.display().to_string();

    // Symmetric-key group with given keys, disabled, pinned to a hub.
    let hub = env.emu.default_hub().to_owned();
    let group = ok_json(
        &env.run(
            &[
                "enroll",
                "group",
                "--group-id",
                "cli-fleet",
                "--symmetric-key",
                KEY_A,
                "--secondary-key",
                KEY_B,
                "--iot-hub",
                &hub,
                "--disabled",
            ],
            &cs,
        )
        .await,
    );
    assert_eq!(group["attestation"]["symmetricKey"]["primaryKey"], KEY_A);
    let stored = env.emu.enrollment_group("cli-fleet").unwrap();
    assert_eq!(
        stored.settings.provisioning_status,
        ProvisioningStatus::Disabled
    );
    assert_eq!(
        stored.settings.iot_hubs.as_deref(),
        Some(&[hub.clone()][..])
    );

    // X.509: an individual enrollment with the device certificate, a group with a signing one.
    ok_json(
        &env.run(
            &[
                "enroll",
                "individual",
                "--registration-id",
                "cli-x509",
                "--certificate",
                &pem_path,
            ],
            &cs,
        )
        .await,
    );
    let x509 = env.emu.enrollment("cli-x509").unwrap();
    assert_eq!(x509.settings.attestation.kind, AttestationType::X509);
    ok_json(
        &env.run(
            &[
                "enroll",
                "group",
                "--group-id",
                "cli-certs",
                "--certificate",
                &pem_path,
            ],
            &cs,
        )
        .await,
    );
    let certs = env.emu.enrollment_group("cli-certs").unwrap();
    assert!(
        certs
            .settings
            .attestation
            .x509
            .unwrap()
            .signing_certificates
            .is_some()
    );

    // get and delete.
    let got = ok_json(
        &env.run(&["enroll", "get", "--group-id", "cli-fleet"], &cs)
            .await,
    );
    assert_eq!(got["enrollmentGroupId"], "cli-fleet");
    let deleted = env
        .run(&["enroll", "delete", "--registration-id", "cli-x509"], &cs)
        .await;
    assert_eq!(
        deleted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let failure: ServiceFailure = env.emu.enrollment("cli-x509").unwrap_err();
    assert_eq!(failure.status, 404);

    // The connection string from standard input keeps it out of the process list.
    let output = dps(
        [
            "enroll",
            "get",
            "--group-id",
            "cli-fleet",
            "--connection-string",
            "-",
            "--ca-file",
            &env.ca,
        ]
        .map(str::to_owned)
        .to_vec(),
        Some(format!("{cs}\n")),
    )
    .await;
    assert_eq!(ok_json(&output)["enrollmentGroupId"], "cli-fleet");

    // A wrong key: 10, and the key never appears in the message.
    let wrong = cs.replace(cs.split("SharedAccessKey=").nth(1).unwrap(), KEY_B);
    let refused = env
        .run(&["enroll", "get", "--group-id", "cli-fleet"], &wrong)
        .await;
    assert_eq!(refused.status.code(), Some(10));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!stderr.contains(KEY_B), "{stderr}");
    // A certificate file that is not PEM: 3, before any request.
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let not_pem = not_pem.display().to_string();
    let bad = env
        .run(
            &[
                "enroll",
                "individual",
                "--registration-id",
                "x",
                "--certificate",
                &not_pem,
            ],
            &cs,
        )
        .await;
    assert_eq!(
        bad.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // The DPS connection string against the hub's API: the hub refuses its policy.
    let wrong_service = env.run(&["registry", "get", "--device-id", "x"], &cs).await;
    assert_eq!(wrong_service.status.code(), Some(10));
}
