//! The hub's file upload endpoints and the built-in blob endpoint over real HTTPS, as a device
//! SDK and the Blob REST API call them: SAS URI, Put Blob, Put Block + Put Block List, Get
//! Blob, the notification and its file upload event, and the hub's rules (device
//! authentication, blob SAS checks, 10 uploads in progress at most, SAS TTL).

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::hub::*;
use common::*;
use dps_emulator::{FileUploadConfig, HubEventKind};
use serde_json::{Value, json};

/// Asks for a SAS URI as the device `device_id` with `token`.
async fn sas_uri(
    emu: &dps_emulator::Emulator,
    token: &str,
    device_id: &str,
    name: &str,
) -> HttpReply {
    https(
        emu,
        "POST",
        &format!("/devices/{device_id}/files?api-version={HUB_API}"),
        &[("authorization", token.to_owned())],
        Some(serde_json::to_vec(&json!({ "blobName": name })).unwrap()),
    )
    .await
}

async fn notify(
    emu: &dps_emulator::Emulator,
    token: &str,
    device_id: &str,
    correlation_id: &str,
    success: bool,
) -> HttpReply {
    let body = json!({
        "correlationId": correlation_id,
        "isSuccess": success,
        "statusCode": if success { 200 } else { 500 },
        "statusDescription": if success { "ok" } else { "upload failed" },
    });
    https(
        emu,
        "POST",
        &format!("/devices/{device_id}/files/notifications?api-version={HUB_API}"),
        &[("authorization", token.to_owned())],
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

/// The blob's path and query (`/{account}/{container}/{blob}?{sas}`) from a SAS URI answer.
fn blob_path(info: &Value) -> String {
    let host = info["hostName"].as_str().unwrap();
    let account_path = host.split_once('/').map_or("", |(_, p)| p);
    format!(
        "/{account_path}/{}/{}{}",
        info["containerName"].as_str().unwrap(),
        info["blobName"].as_str().unwrap(),
        info["sasToken"].as_str().unwrap()
    )
}

fn json_body(reply: &HttpReply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

#[tokio::test]
async fn upload_with_put_blob_and_blocks_then_notify() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "uploader-1").await;
    let token = hub_sas(&key, &hub, "uploader-1");
    let since = last_event(&emu);

    // 1. The SAS URI: the blob is named under the device, in the upload container.
    let reply = sas_uri(&emu, &token, "uploader-1", "logs/today.txt").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let info = json_body(&reply);
    assert_eq!(info["blobName"], "uploader-1/logs/today.txt");
    assert_eq!(info["containerName"], "fileupload");
    assert_eq!(
        info["hostName"],
        format!("localhost:{}/dpsemulator", emu.https_addr().port())
    );
    let sas = info["sasToken"].as_str().unwrap();
    assert!(sas.starts_with("?sv=") && sas.contains("&sig="), "{sas}");
    assert_eq!(emu.active_file_uploads(&hub, "uploader-1"), 1);

    // 2. Put Blob, then read it back with the same SAS.
    let path = blob_path(&info);
    let put = https(
        &emu,
        "PUT",
        &path,
        &[
            ("x-ms-blob-type", "BlockBlob".into()),
            ("x-ms-version", "2020-12-06".into()),
        ],
        Some(b"first version".to_vec()),
    )
    .await;
    assert_eq!(put.status, 201, "{put:?}");
    assert!(put.headers.contains_key("etag"));
    let get = https(&emu, "GET", &path, &[], None).await;
    assert_eq!(
        (get.status, get.body.as_slice()),
        (200, &b"first version"[..])
    );
    // A ranged read, as the storage SDKs start a download.
    let ranged = https(
        &emu,
        "GET",
        &path,
        &[("x-ms-range", "bytes=6-33554431".into())],
        None,
    )
    .await;
    assert_eq!(
        (ranged.status, ranged.body.as_slice()),
        (206, &b"version"[..])
    );
    assert_eq!(ranged.headers["content-range"], "bytes 6-12/13");

    // Put Block twice, commit in the other order: the blob is replaced.
    let (query_start, sas_query) = path.split_once('?').unwrap();
    for (id, content) in [("AAAA", "one "), ("AAAB", "two ")] {
        let reply = https(
            &emu,
            "PUT",
            &format!("{query_start}?comp=block&blockid={id}&{sas_query}"),
            &[],
            Some(content.as_bytes().to_vec()),
        )
        .await;
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    let list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>AAAB</Latest><Latest>AAAA</Latest></BlockList>";
    let commit = https(
        &emu,
        "PUT",
        &format!("{query_start}?comp=blocklist&{sas_query}"),
        &[],
        Some(list.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(commit.status, 201, "{commit:?}");
    assert_eq!(
        emu.blob("fileupload", "uploader-1/logs/today.txt")
            .as_deref(),
        Some(&b"two one "[..])
    );
    // A block list naming an unknown block is refused.
    let bad = https(
        &emu,
        "PUT",
        &format!("{query_start}?comp=blocklist&{sas_query}"),
        &[],
        Some(b"<BlockList><Uncommitted>AAAC</Uncommitted></BlockList>".to_vec()),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.headers["x-ms-error-code"], "InvalidBlockList");

    // 3. The notification releases the upload and reaches the service side.
    let correlation = info["correlationId"].as_str().unwrap();
    let reply = notify(&emu, &token, "uploader-1", correlation, true).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(emu.active_file_uploads(&hub, "uploader-1"), 0);
    let notifications = emu.file_upload_notifications(&hub, since);
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    let n = &notifications[0];
    assert_eq!(n.device_id, "uploader-1");
    assert_eq!(n.blob_name, "uploader-1/logs/today.txt");
    assert_eq!(n.blob_size_in_bytes, 8);
    assert_eq!(
        n.blob_uri,
        format!(
            "https://localhost:{}/dpsemulator/fileupload/uploader-1/logs/today.txt",
            emu.https_addr().port()
        )
    );
    // The same event on the REST feed.
    let feed = hub_service(
        &emu,
        "GET",
        &format!("/emulator/hubs/{hub}/events?since={since}"),
        None,
        &[],
    )
    .await;
    let events = json_body(&feed);
    let upload = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "fileUpload")
        .expect("a fileUpload event");
    assert_eq!(upload["deviceId"], "uploader-1");
    assert_eq!(
        upload["body"]["text"]
            .as_str()
            .map(|t| t.contains("blobSizeInBytes")),
        Some(true)
    );

    // The correlation is gone: a second notification is refused.
    let again = notify(&emu, &token, "uploader-1", correlation, true).await;
    assert_eq!(again.status, 400, "{again:?}");
}

#[tokio::test]
async fn blob_sas_and_device_credentials_are_checked() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "uploader-2").await;
    let token = hub_sas(&key, &hub, "uploader-2");

    // No token, a token of another device, a wrong key: 401 with the service's error code.
    let other_key = create_sas_device(&emu, "someone-else").await;
    let wrong_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    for bad in [
        String::new(),
        hub_sas(&other_key, &hub, "someone-else"),
        hub_sas(&wrong_key, &hub, "uploader-2"),
    ] {
        let reply = sas_uri(&emu, &bad, "uploader-2", "a.bin").await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_eq!(json_body(&reply)["errorCode"], 401_002);
    }
    // A missing blob name.
    let reply = https(
        &emu,
        "POST",
        &format!("/devices/uploader-2/files?api-version={HUB_API}"),
        &[("authorization", token.clone())],
        Some(b"{}".to_vec()),
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");

    let info = json_body(&sas_uri(&emu, &token, "uploader-2", "a.bin").await);
    let path = blob_path(&info);
    // A tampered signature, another blob with this SAS, no SAS at all.
    let tampered = path.replace("sig=", "sig=A");
    let elsewhere = path.replace("a.bin", "b.bin");
    let unsigned = path.split('?').next().unwrap().to_owned();
    for bad in [tampered, elsewhere, unsigned] {
        let reply = https(
            &emu,
            "PUT",
            &bad,
            &[("x-ms-blob-type", "BlockBlob".into())],
            Some(b"x".to_vec()),
        )
        .await;
        assert_eq!(reply.status, 403, "{bad}: {reply:?}");
        assert_eq!(reply.headers["x-ms-error-code"], "AuthenticationFailed");
    }
    // Another container does not exist.
    let other = path.replace("/fileupload/", "/elsewhere/");
    let reply = https(&emu, "GET", &other, &[], None).await;
    assert_eq!(reply.status, 404);
    // Nothing uploaded yet.
    let reply = https(&emu, "GET", &path, &[], None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["x-ms-error-code"], "BlobNotFound");

    // A failed upload is reported too, releases the correlation, and emits no notification.
    let since = last_event(&emu);
    let reply = notify(
        &emu,
        &token,
        "uploader-2",
        info["correlationId"].as_str().unwrap(),
        false,
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(emu.active_file_uploads(&hub, "uploader-2"), 0);
    assert!(emu.file_upload_notifications(&hub, since).is_empty());
    assert!(
        !emu.hub_events(&hub, since)
            .iter()
            .any(|e| e.kind == HubEventKind::FileUpload)
    );
}

#[tokio::test]
async fn at_most_ten_uploads_in_progress_per_device() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "busy").await;
    let token = hub_sas(&key, &hub, "busy");
    let mut correlations = Vec::new();
    for i in 0..10 {
        let reply = sas_uri(&emu, &token, "busy", &format!("f{i}")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        correlations.push(
            json_body(&reply)["correlationId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let refused = sas_uri(&emu, &token, "busy", "f10").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let body = json_body(&refused);
    assert_eq!(body["errorCode"], 403_006);
    assert_eq!(
        body["message"],
        "Number of active file upload requests cannot exceed 10"
    );

    // Another device is not affected; a notification frees a slot.
    let other_key = create_sas_device(&emu, "calm").await;
    assert_eq!(
        sas_uri(&emu, &hub_sas(&other_key, &hub, "calm"), "calm", "f")
            .await
            .status,
        200
    );
    assert_eq!(
        notify(&emu, &token, "busy", &correlations[0], false)
            .await
            .status,
        204
    );
    assert_eq!(sas_uri(&emu, &token, "busy", "f10").await.status, 200);
}

#[tokio::test]
async fn the_blob_sas_expires_with_the_configured_ttl() {
    let emu = start_with(|c| {
        c.file_upload(
            FileUploadConfig::default()
                .with_sas_ttl_seconds(1)
                .with_max_concurrent_uploads(1),
        )
    })
    .await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "slow").await;
    let token = hub_sas(&key, &hub, "slow");
    let info = json_body(&sas_uri(&emu, &token, "slow", "late.bin").await);
    // The one slot is taken.
    assert_eq!(sas_uri(&emu, &token, "slow", "other").await.status, 403);
    let path = blob_path(&info);

    // Once the TTL has passed, the blob SAS is refused and the slot is free again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = https(
            &emu,
            "PUT",
            &path,
            &[("x-ms-blob-type", "BlockBlob".into())],
            Some(b"x".to_vec()),
        )
        .await;
        if reply.status == 403 {
            assert!(
                String::from_utf8_lossy(&reply.body).contains("expired"),
                "{reply:?}"
            );
            break;
        }
        assert_eq!(reply.status, 201);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SAS never expired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(emu.active_file_uploads(&hub, "slow"), 0);
    assert_eq!(sas_uri(&emu, &token, "slow", "other").await.status, 200);
}

#[tokio::test]
async fn without_a_linked_storage_account_uploads_are_refused() {
    let mut config = FileUploadConfig::default();
    config.enabled = false;
    let emu = start_with(|c| c.file_upload(config)).await;
    let key = create_sas_device(&emu, "nostore").await;
    let token = hub_sas(&key, emu.default_hub(), "nostore");
    let reply = sas_uri(&emu, &token, "nostore", "a").await;
    assert_eq!(reply.status, 400, "{reply:?}");
}

#[tokio::test]
async fn an_external_account_is_configured_from_the_config_file_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"fileUpload": {"sasTtlSeconds": 600, "storage": {"accountName": "devstoreaccount1",
            "accountKey": "a2V5", "endpoint": "http://127.0.0.1:10000/devstoreaccount1"}}}"#,
    )
    .unwrap();
    let file = dps_emulator::ConfigFile::load(&path).unwrap();
    assert_eq!(file.file_upload.sas_ttl_seconds, 600);
    let storage = file.file_upload.storage.clone().unwrap();
    assert!(
        !format!("{storage:?}").contains("a2V5"),
        "the key stays out of Debug"
    );
    // Devices upload over TLS only: a plaintext endpoint is refused at start.
    let mut config = dps_emulator::EmulatorConfig::new(dir.path().join("data"));
    config.file = file;
    let err = dps_emulator::Emulator::start(config).await.unwrap_err();
    assert!(
        matches!(err, dps_emulator::EmulatorError::FileUpload(ref m) if m.contains("https")),
        "{err}"
    );
}
