//! Upload a file through the hub: a blob SAS URI from the hub, the upload to blob storage (in
//! blocks, with progress), and the notification the hub passes on to the service side.
//!
//! With `IOTHUB_DEVICE_CONNECTION_STRING` set it uploads through that device's hub (which must
//! have a storage account linked); without it it starts the local emulator, whose built-in blob
//! endpoint stores the file, and shows the notification:
//!
//! ```text
//! cargo run --example file_upload
//! ```
//!
//! Against **Azurite** instead of the built-in endpoint: Azurite must serve HTTPS (devices only
//! upload over TLS), e.g. with the certificate of a `dps emulator` data directory, which covers
//! `localhost` and `127.0.0.1`:
//!
//! ```text
//! dps emulator --data-dir .dps-emulator &            # once, to create the certificates
//! npx azurite-blob --blobHost 127.0.0.1 --location /tmp/azurite \
//!     --cert .dps-emulator/server.pem --key .dps-emulator/server.key &
//! AZURITE_BLOB_ENDPOINT=https://127.0.0.1:10000/devstoreaccount1 \
//! AZURITE_CA_FILE=.dps-emulator/ca.pem cargo run --example file_upload
//! ```
//!
//! (`AZURITE_ACCOUNT_NAME` and `AZURITE_ACCOUNT_KEY` default to Azurite's well-known
//! development account.)

mod common;

use std::time::Duration;

use dps_emulator::azurite::{ACCOUNT_KEY, ACCOUNT_NAME};
use dps_emulator::{FileUploadConfig, StorageAccount};
use hub_client::TlsConfig;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let azurite = env("AZURITE_BLOB_ENDPOINT");
    let azurite_ca = env("AZURITE_CA_FILE");
    let (target, builder) = common::HubTarget::from_env_or_emulator_with(
        "IOTHUB_DEVICE_CONNECTION_STRING",
        "file-upload-device-001",
        None,
        |config| match &azurite {
            None => config,
            Some(endpoint) => {
                let mut account = StorageAccount::new(
                    env("AZURITE_ACCOUNT_NAME").unwrap_or_else(|| ACCOUNT_NAME.into()),
                    env("AZURITE_ACCOUNT_KEY").unwrap_or_else(|| ACCOUNT_KEY.into()),
                    endpoint.clone(),
                );
                if let Some(ca) = &azurite_ca {
                    account = account.with_ca_file(ca);
                }
                config.file_upload(FileUploadConfig::default().with_storage(account))
            }
        },
    )
    .await?;
    let hub = builder.connect().await?;
    println!("connected to {} as {}", target.hub, hub.device_id());

    // The uploader takes the client's hub, credentials, TLS policy and proxy. The emulator
    // serves HTTPS on its own port; Azure on 443.
    let mut uploads = hub.file_upload();
    if let Some(emulator) = &target.emulator {
        uploads = uploads.endpoint(format!("localhost:{}", emulator.https_addr().port()));
        if let Some(ca) = &azurite_ca {
            let tls = TlsConfig::default()
                .webpki_roots(false)
                .add_root(emulator.ca_der().clone())
                .add_root_pem(&std::fs::read(ca)?)?;
            uploads = uploads.tls(tls);
        }
    }
    let uploader = uploads
        .block_size(1024 * 1024)
        .retries(4, Duration::from_millis(500))
        .on_progress(|p| {
            println!(
                "  {} KiB stored ({} blocks)",
                p.bytes_uploaded / 1024,
                p.blocks
            )
        })
        .build()?;

    // A 3.5 MiB log file: four blocks of 1 MiB, committed with one block list.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("device.log");
    let line = "2026-11-28T05:00:00Z INFO sensor ok temperature=21.5\n";
    std::fs::write(&path, line.repeat(3_500 * 1024 / line.len()))?;
    println!("uploading {} ...", path.display());
    let uploaded = uploader.upload_path("logs/device.log", &path).await?;
    println!("uploaded {} bytes to {}", uploaded.size, uploaded.blob_url);

    // Small content from memory goes in a single request.
    let note = uploader
        .upload_bytes("notes/hello.txt", "hello from the device")
        .await?;
    println!("uploaded {} bytes to {}", note.size, note.blob_url);

    hub.close().await;
    if let Some(emulator) = &target.emulator {
        for n in emulator.file_upload_notifications(&target.hub, 0) {
            println!(
                "  service side notified: {} ({} bytes) at {}",
                n.blob_name, n.blob_size_in_bytes, n.enqueued_time_utc
            );
        }
        // Read the blob back from the linked storage (the built-in endpoint or Azurite).
        let stored = emulator
            .download_blob("fileupload", &uploaded.blob_name)
            .await?
            .unwrap_or_default();
        let same = stored == std::fs::read(&path)?;
        println!("  the stored blob matches the file: {same}");
        if !same {
            return Err("the stored blob differs from the file".into());
        }
    }
    Ok(())
}
