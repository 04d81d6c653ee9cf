//! #15 item 3: import and export jobs with no storage account at all: the container URIs point
//! at the emulator's own blob endpoint (`Emulator::builtin_container_uri`), reached over HTTPS
//! like any storage account, with a container SAS.

mod common;

use std::time::Duration;

use common::hub::*;
use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_through_the_builtin_blob_endpoint() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key_a = create_sas_device(&emu, "builtin-a").await;
    create_sas_device(&emu, "builtin-b").await;
    let container = emu
        .builtin_container_uri("exports", Duration::from_secs(600))
        .expect("the built-in blob endpoint is on by default");
    assert!(container.starts_with("https://"), "{container}");

    let job = run_job(
        &emu,
        json!({"type": "export", "outputBlobContainerUri": container, "excludeKeysInExport": false}),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let text = String::from_utf8(emu.blob("exports", "devices.txt").expect("devices.txt")).unwrap();
    let exported: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 2, "{text}");
    assert_eq!(exported[0]["id"], "builtin-a");
    assert_eq!(
        exported[0]["authentication"]["symmetricKey"]["primaryKey"],
        key_a.as_str()
    );

    // The device goes; importing the export brings it back with its keys.
    emu.delete_device(&hub, "builtin-a", None).await.unwrap();
    assert!(emu.device(&hub, "builtin-a").is_err());
    let job = run_job(
        &emu,
        json!({"type": "import", "inputBlobContainerUri": container, "outputBlobContainerUri": container}),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    let back = emu.device(&hub, "builtin-a").expect("imported again");
    assert_eq!(
        back.authentication
            .symmetric_key
            .unwrap()
            .primary_key
            .as_deref(),
        Some(key_a.as_str())
    );

    // A wrong SAS is refused by the endpoint: the job fails with a reason, no panic.
    let forged = container.replace("sig=", "sig=AAAA");
    let job = run_job(
        &emu,
        json!({"type": "export", "outputBlobContainerUri": forged}),
    )
    .await;
    assert_eq!(job["status"], "failed", "{job}");
    emu.shutdown().await;
}
