//! #15 item 3: import and export jobs against Azurite, the Azure Storage emulator (npm
//! `azurite`; `.ci/run` installs it under `target/azurite`, or set `AZURITE_BLOB` to its
//! `azurite-blob` script). The containers are reached the way the service reaches them: a
//! container URI with a SAS.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::hub::*;
use common::*;
use dps_auth::Signer as _;
use serde_json::{Value, json};

/// Azurite's well-known development account.
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service, stopped (by its process id) on drop.
struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn azurite_script() -> PathBuf {
    if let Some(path) = std::env::var_os("AZURITE_BLOB") {
        return path.into();
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/azurite/node_modules/.bin/azurite-blob");
    assert!(
        local.exists(),
        "Azurite is needed: `npm install --prefix target/azurite azurite` (what .ci/run does), \
         or set AZURITE_BLOB to an azurite-blob script"
    );
    local
}

fn start_azurite() -> Azurite {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(azurite_script())
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--silent",
        ])
        .arg("--skipApiVersionCheck")
        .arg("--location")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("azurite-blob starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "Azurite listens in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    Azurite {
        child,
        port,
        _dir: dir,
    }
}

/// An account SAS (blob service; service, container and object level; read, add, create,
/// write, delete, list), as `az storage account generate-sas` makes one.
fn account_sas() -> String {
    let (permissions, expiry, version) = ("racwdl", "2099-01-01T00:00:00Z", "2019-12-12");
    let to_sign = format!("{ACCOUNT}\n{permissions}\nb\nsco\n\n{expiry}\n\n\n{version}\n");
    let key = dps_auth::SymmetricKey::from_base64(ACCOUNT_KEY).unwrap();
    let signature =
        base64::engine::general_purpose::STANDARD.encode(key.sign(to_sign.as_bytes()).unwrap());
    let encode = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    format!(
        "sv={version}&ss=b&srt=sco&sp={permissions}&se={}&sig={}",
        encode(expiry),
        encode(&signature)
    )
}

impl Azurite {
    fn container_uri(&self, container: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{ACCOUNT}/{container}?{}",
            self.port,
            account_sas()
        )
    }

    /// One request; status and body.
    fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        extra: &str,
    ) -> (u16, Vec<u8>) {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-version: 2021-08-06\r\n\
             Content-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            self.port,
            body.len()
        );
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(body).unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).unwrap();
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&answer[..split]).to_string();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut body = answer[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        (status, body)
    }

    fn create_container(&self, container: &str) {
        let (status, body) = self.request(
            "PUT",
            &format!("/{ACCOUNT}/{container}?restype=container&{}", account_sas()),
            b"",
            "",
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }

    fn put_blob(&self, container: &str, name: &str, body: &[u8]) {
        let (status, answer) = self.request(
            "PUT",
            &format!("/{ACCOUNT}/{container}/{name}?{}", account_sas()),
            body,
            "x-ms-blob-type: BlockBlob\r\n",
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    }

    fn get_blob(&self, container: &str, name: &str) -> Option<String> {
        let (status, body) = self.request(
            "GET",
            &format!("/{ACCOUNT}/{container}/{name}?{}", account_sas()),
            b"",
            "",
        );
        (status == 200).then(|| String::from_utf8(body).unwrap())
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 4 + size..];
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_through_azurite() {
    let azurite = start_azurite();
    azurite.create_container("exports");
    azurite.create_container("imports");
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key_a = create_sas_device(&emu, "exp-a").await;
    create_sas_device(&emu, "exp-b").await;
    emu.patch_desired(&hub, "exp-a", json!({"interval": 30}))
        .await
        .unwrap();
    let reply = hub_service(
        &emu,
        "PATCH",
        "/twins/exp-a",
        Some(&json!({"tags": {"site": "lab"}})),
        &[("if-match", "*".to_owned())],
    )
    .await;
    assert_eq!(reply.status, 200);

    // Export, keys included: every device as a JSON line in the service's shape.
    let job = run_job(
        &emu,
        json!({"type": "export", "outputBlobContainerUri": azurite.container_uri("exports"), "excludeKeysInExport": false}),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["progress"], 100);
    let exported = lines(
        &azurite
            .get_blob("exports", "devices.txt")
            .expect("devices.txt"),
    );
    assert_eq!(exported.len(), 2);
    let a = &exported[0];
    assert_eq!(a["id"], "exp-a");
    assert_eq!(a["status"], "enabled");
    assert_eq!(a["authentication"]["type"], "sas");
    assert_eq!(
        a["authentication"]["symmetricKey"]["primaryKey"],
        key_a.as_str()
    );
    assert_eq!(a["tags"], json!({"site": "lab"}));
    assert_eq!(a["properties"]["desired"]["interval"], 30);
    assert_eq!(a["eTag"], emu.device(&hub, "exp-a").unwrap().etag);
    let names: Vec<&String> = a.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "id",
            "eTag",
            "status",
            "authentication",
            "twinETag",
            "tags",
            "properties",
            "capabilities"
        ]
    );

    // excludeKeysInExport leaves the keys out.
    let job = run_job(
        &emu,
        json!({"type": "exportDevices", "outputBlobContainerUri": azurite.container_uri("exports"),
               "outputBlobName": "nokeys.txt", "excludeKeysInExport": true}),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let exported = lines(&azurite.get_blob("exports", "nokeys.txt").unwrap());
    assert!(exported[0]["authentication"]["symmetricKey"]["primaryKey"].is_null());

    // The keyed export imports into a fresh hub as is (no importMode: createOrUpdate).
    let keyed = azurite.get_blob("exports", "devices.txt").unwrap();
    let other = start().await;
    let imports = format!(
        "{keyed}{}\n{}\n",
        json!({"id": "imp-new", "importMode": "create", "tags": {"batch": 7}}),
        json!({"id": "exp-b", "importMode": "create"}),
    );
    azurite.put_blob("imports", "devices.txt", imports.as_bytes());
    // Already there on the other hub: the second create of exp-b fails alone.
    let job = run_job(
        &other,
        json!({"type": "import", "inputBlobContainerUri": azurite.container_uri("imports"),
               "outputBlobContainerUri": azurite.container_uri("exports")}),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let imported = other.device(&hub, "exp-a").unwrap();
    assert_eq!(
        imported
            .authentication
            .symmetric_key
            .unwrap()
            .primary_key
            .as_deref(),
        Some(key_a.as_str()),
        "the keys moved with the device"
    );
    let twin = other.twin(&hub, "exp-a").unwrap();
    assert_eq!(twin.tags["site"], "lab");
    assert_eq!(twin.properties.desired["interval"], 30);
    assert_eq!(other.twin(&hub, "imp-new").unwrap().tags["batch"], 7);
    let errors = lines(
        &azurite
            .get_blob("exports", "importErrors.log")
            .expect("importErrors.log"),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["errorCode"], "DeviceAlreadyExists");

    // Jobs are listed; a job whose storage is unreachable fails with a reason and no SAS.
    let listed = hub_service(&other, "GET", "/jobs", None, &[]).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let dead = format!("http://127.0.0.1:1/{ACCOUNT}/exports?sig=secret");
    let job = run_job(
        &other,
        json!({"type": "export", "outputBlobContainerUri": dead}),
    )
    .await;
    assert_eq!(job["status"], "failed", "{job}");
    let reason = job["failureReason"].as_str().unwrap();
    assert!(!reason.contains("secret"), "{reason}");
    // Refused before it runs: an unknown type, a missing container.
    let reply = hub_service(
        &other,
        "POST",
        "/jobs/create",
        Some(&json!({"type": "backup", "outputBlobContainerUri": dead})),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    let reply = hub_service(
        &other,
        "POST",
        "/jobs/create",
        Some(&json!({"type": "import", "outputBlobContainerUri": dead})),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
}
