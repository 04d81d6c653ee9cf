//! File upload with **Azurite** as the storage account linked to the emulator's hub: the hub
//! creates the container and signs the blob SAS with Azurite's account key, the device uploads
//! to Azurite over TLS (one Put Blob, and blocks), and the notification carries the size the
//! hub read back from Azurite.
//!
//! Azurite comes from npm (`npm install --prefix target/azurite azurite`, which `.ci/run`
//! does). Without it these tests say so and pass, except under CI (`CI` set), where a missing
//! Azurite fails them.

#![cfg(feature = "file-upload")]

use std::time::Duration;

use dps_auth::SymmetricKey;
use dps_emulator::azurite::{Azurite, AzuriteError};
use dps_emulator::model::{HubAuthType, HubAuthentication, SymmetricKeyAttestation};
use dps_emulator::{DeviceIdentity, Emulator, EmulatorConfig, FileUploadConfig};
use hub_client::TlsConfig;
use hub_client::upload::FileUploader;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn azurite(dir: &std::path::Path) -> Option<Azurite> {
    match Azurite::start(dir).await {
        Ok(azurite) => Some(azurite),
        Err(AzuriteError::NotInstalled) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "Azurite is not installed: skipped (npm install --prefix target/azurite azurite)"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_in_azurite() {
    let dir = tempfile::tempdir().unwrap();
    let Some(azurite) = azurite(dir.path()).await else {
        return;
    };
    let config = EmulatorConfig::new(dir.path())
        .file_upload(FileUploadConfig::default().with_storage(azurite.account()));
    let emu = Emulator::start(config).await.unwrap();
    let hub = emu.default_hub().to_owned();
    emu.create_device(
        &hub,
        DeviceIdentity {
            device_id: "az-1".into(),
            authentication: HubAuthentication {
                kind: HubAuthType::Sas,
                symmetric_key: Some(SymmetricKeyAttestation {
                    primary_key: Some(KEY.into()),
                    secondary_key: None,
                }),
                x509_thumbprint: None,
            },
            ..DeviceIdentity::default()
        },
    )
    .await
    .unwrap();

    // The device trusts only the emulator's CA: Azurite serves the emulator's certificate.
    let tls = TlsConfig::default()
        .webpki_roots(false)
        .add_root(emu.ca_der().clone());
    let uploader = FileUploader::builder(&hub, "az-1", SymmetricKey::from_base64(KEY).unwrap())
        .endpoint(format!("localhost:{}", emu.https_addr().port()))
        .tls(tls)
        .block_size(64 * 1024)
        .retries(3, Duration::from_millis(50))
        .build()
        .unwrap();

    let small = uploader
        .upload_bytes("small.txt", "to azurite")
        .await
        .unwrap();
    assert_eq!(
        small.blob_url,
        format!(
            "https://127.0.0.1:{}/devstoreaccount1/fileupload/az-1/small.txt",
            azurite.port()
        )
    );
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let large = uploader
        .upload_bytes("dir/large.bin", data.clone())
        .await
        .unwrap();
    assert_eq!(large.size, 200_000);

    // Read back from Azurite (through the emulator's account SAS).
    assert_eq!(
        emu.download_blob("fileupload", "az-1/small.txt")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"to azurite"[..])
    );
    assert_eq!(
        emu.download_blob("fileupload", "az-1/dir/large.bin")
            .await
            .unwrap()
            .unwrap(),
        data
    );
    assert!(
        emu.blob("fileupload", "az-1/small.txt").is_none(),
        "not in the built-in store"
    );
    let sizes: Vec<u64> = emu
        .file_upload_notifications(&hub, 0)
        .iter()
        .map(|n| n.blob_size_in_bytes)
        .collect();
    assert_eq!(sizes, vec![10, 200_000]);

    // Azurite checks the hub's blob SAS: a tampered signature, or the SAS used for another
    // blob, is refused with 403.
    let target = uploader.create_sas_uri("checked.txt").await.unwrap();
    let url = target.blob_url_with_sas();
    let path_and_query = url
        .split_once("127.0.0.1")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, rest)| format!("/{rest}"))
        .unwrap();
    assert_eq!(put(&emu, azurite.port(), &path_and_query).await, 201);
    let tampered = path_and_query.replace("sig=", "sig=AAAA");
    assert_eq!(put(&emu, azurite.port(), &tampered).await, 403);
    let elsewhere = path_and_query.replace("checked.txt", "other.txt");
    assert_eq!(put(&emu, azurite.port(), &elsewhere).await, 403);

    emu.shutdown().await;
    azurite.stop().await;
}

/// A raw Put Blob to Azurite over TLS (trusting the emulator's CA); the status.
async fn put(emu: &Emulator, port: u16, path_and_query: &str) -> u16 {
    use http_body_util::Full;
    let tls = TlsConfig::default()
        .webpki_roots(false)
        .add_root(emu.ca_der().clone());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let stream = tls.handshake("127.0.0.1", tcp, None).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method("PUT")
        .uri(path_and_query)
        .header("host", format!("127.0.0.1:{port}"))
        .header("x-ms-version", "2020-12-06")
        .header("x-ms-blob-type", "BlockBlob")
        .header("content-length", "2")
        .body(Full::new(bytes::Bytes::from_static(b"ok")))
        .unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}
