//! `dps upload` against the in-process emulator: a file by path, standard input, the printed
//! blob URL, and the exit codes of a refused key and bad input.

use std::io::Write as _;
use std::process::{Output, Stdio};

use dps_emulator::model::{HubAuthType, HubAuthentication, SymmetricKeyAttestation};
use dps_emulator::{DeviceIdentity, Emulator, EmulatorConfig};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEY: &str = "HxwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgEAAAA=";

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
    let device = DeviceIdentity {
        device_id: "cli-up".into(),
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
    emu.create_device(&hub, device).await.unwrap();
    Env { emu, dir, hub }
}

impl Env {
    fn common(&self, key: &str) -> Vec<String> {
        vec![
            "upload".into(),
            "--connection-string".into(),
            format!(
                "HostName={};DeviceId=cli-up;SharedAccessKey={key}",
                self.hub
            ),
            "--endpoint".into(),
            format!("localhost:{}", self.emu.https_addr().port()),
            "--ca-file".into(),
            self.dir.path().join("ca.pem").display().to_string(),
        ]
    }
}

async fn dps(args: Vec<String>, stdin: Option<Vec<u8>>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dps"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(&bytes).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_a_file_and_standard_input() {
    let env = start().await;
    let path = env.dir.path().join("report.csv");
    std::fs::write(&path, "a,b\n1,2\n").unwrap();
    let mut args = env.common(KEY);
    args.push(path.display().to_string());
    let out = dps(args, None).await;
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        url,
        format!(
            "https://localhost:{}/dpsemulator/fileupload/cli-up/report.csv\n",
            env.emu.https_addr().port()
        )
    );
    assert_eq!(
        env.emu.blob("fileupload", "cli-up/report.csv").as_deref(),
        Some(&b"a,b\n1,2\n"[..])
    );

    // Standard input, in blocks of 1000 bytes.
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
    let mut args = env.common(KEY);
    args.extend(["--name", "piped/data.bin", "--block-size", "1000", "-"].map(String::from));
    let out = dps(args, Some(data.clone())).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("/cli-up/piped/data.bin\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("5000 bytes stored"));
    assert_eq!(
        env.emu.blob("fileupload", "cli-up/piped/data.bin").unwrap(),
        data
    );
    assert_eq!(env.emu.file_upload_notifications(&env.hub, 0).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_bad_input_have_their_exit_codes() {
    let env = start().await;
    let path = env.dir.path().join("x.txt");
    std::fs::write(&path, "x").unwrap();

    // A wrong key: the hub refuses, exit code 10, and the key is not echoed.
    let mut args = env.common(OTHER_KEY);
    args.push(path.display().to_string());
    let out = dps(args, None).await;
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(OTHER_KEY));

    // Standard input without --name, a missing file: exit code 3.
    let mut args = env.common(KEY);
    args.push("-".into());
    assert_eq!(dps(args, Some(b"x".to_vec())).await.status.code(), Some(3));
    let mut args = env.common(KEY);
    args.push(env.dir.path().join("missing.txt").display().to_string());
    let out = dps(args, None).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // The file is opened before the hub is asked, so no upload was left in progress.
    assert_eq!(env.emu.active_file_uploads(&env.hub, "cli-up"), 0);
}
