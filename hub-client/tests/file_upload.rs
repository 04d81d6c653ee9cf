//! File upload end to end against the embedded emulator (its hub endpoints and its built-in
//! blob endpoint, over real TLS): one Put Blob for small content, blocks for large content
//! from a file or any reader with progress, a failed read notified to the hub, the hub's
//! 403006, X.509 credentials, the `HubClient` accessor, and an HTTP proxy that cuts a tunnel
//! mid-block so the block is retried.

#![cfg(feature = "file-upload")]

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use dps_auth::SymmetricKey;
use hub_client::ProxyConfig;
use hub_client::upload::{FileUploader, FileUploaderBuilder, UploadError, UploadProgress};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const CONTAINER: &str = "fileupload";

fn uploader(env: &Env, device_id: &str, key: &str) -> FileUploaderBuilder {
    FileUploader::builder(&env.hub, device_id, SymmetricKey::from_base64(key).unwrap())
        .endpoint(env.endpoint(Kind::Ws))
        .tls(env.tls())
        .retries(4, Duration::from_millis(20))
}

/// Deterministic content of `len` bytes.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn small_content_goes_in_one_put_blob_and_is_notified() {
    let env = start().await;
    let key = env.device("fu-small").await;
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&reports);
    let uploader = uploader(&env, "fu-small", &key)
        .on_progress(move |p| seen.lock().unwrap().push(p))
        .build()
        .unwrap();
    let uploaded = uploader
        .upload_bytes("hello.txt", &b"hello, blob"[..])
        .await
        .unwrap();
    assert_eq!(uploaded.size, 11);
    assert_eq!(uploaded.blob_name, "fu-small/hello.txt");
    assert_eq!(
        uploaded.blob_url,
        format!(
            "https://localhost:{}/dpsemulator/fileupload/fu-small/hello.txt",
            env.emu.https_addr().port()
        )
    );
    assert_eq!(
        env.emu.blob(CONTAINER, "fu-small/hello.txt").as_deref(),
        Some(&b"hello, blob"[..])
    );
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].bytes_uploaded, reports[0].blocks), (11, 1));

    let notifications = env.emu.file_upload_notifications(&env.hub, 0);
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].blob_name, "fu-small/hello.txt");
    assert_eq!(notifications[0].blob_size_in_bytes, 11);
    assert_eq!(notifications[0].blob_uri, uploaded.blob_url);
    assert_eq!(env.emu.active_file_uploads(&env.hub, "fu-small"), 0);
    // Nothing of the SAS leaks through Debug.
    assert!(!format!("{uploader:?}").contains("sig="));
}

#[tokio::test]
async fn a_large_file_goes_in_blocks_with_progress() {
    let env = start().await;
    let key = env.device("fu-large").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data = content(300 * 1024 + 17);
    std::fs::write(&path, &data).unwrap();

    let reports = Arc::new(Mutex::new(Vec::<UploadProgress>::new()));
    let seen = Arc::clone(&reports);
    let uploader = uploader(&env, "fu-large", &key)
        .block_size(64 * 1024)
        .on_progress(move |p| seen.lock().unwrap().push(p))
        .build()
        .unwrap();
    let uploaded = uploader.upload_path("dumps/big.bin", &path).await.unwrap();
    assert_eq!(uploaded.size, data.len() as u64);
    assert_eq!(
        env.emu.blob(CONTAINER, "fu-large/dumps/big.bin").unwrap(),
        data
    );
    let reports = reports.lock().unwrap().clone();
    assert_eq!(
        reports.len(),
        5,
        "five blocks of 64 KiB at most: {reports:?}"
    );
    assert_eq!(reports.last().unwrap().bytes_uploaded, data.len() as u64);
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].bytes_uploaded < w[1].bytes_uploaded)
    );
    assert_eq!(
        env.emu.file_upload_notifications(&env.hub, 0)[0].blob_size_in_bytes,
        data.len() as u64
    );
}

/// A reader that yields `data` in small pieces, then fails if `fail` is set.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    fail: bool,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at == self.data.len() {
            if self.fail {
                return Poll::Ready(Err(io::Error::other("the sensor went away")));
            }
            return Poll::Ready(Ok(()));
        }
        let n = (self.data.len() - self.at).min(1000).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn any_reader_and_a_failed_read_is_reported_to_the_hub() {
    let env = start().await;
    let key = env.device("fu-reader").await;
    let uploader = uploader(&env, "fu-reader", &key)
        .block_size(16 * 1024)
        .build()
        .unwrap();
    let data = content(40_000);
    let reader = Trickle {
        data: data.clone(),
        at: 0,
        fail: false,
    };
    uploader.upload_file("stream.bin", reader).await.unwrap();
    assert_eq!(
        env.emu.blob(CONTAINER, "fu-reader/stream.bin").unwrap(),
        data
    );

    // The reader fails after two blocks: the error is the read's, the hub is told (the upload
    // is released), and no notification reaches the service side.
    let failing = Trickle {
        data: content(40_000),
        at: 0,
        fail: true,
    };
    let err = uploader
        .upload_file("broken.bin", failing)
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Read(_)), "{err}");
    assert_eq!(env.emu.active_file_uploads(&env.hub, "fu-reader"), 0);
    let notified: Vec<_> = env
        .emu
        .file_upload_notifications(&env.hub, 0)
        .into_iter()
        .map(|n| n.blob_name)
        .collect();
    assert_eq!(notified, vec!["fu-reader/stream.bin".to_owned()]);
    assert!(env.emu.blob(CONTAINER, "fu-reader/broken.bin").is_none());
}

#[tokio::test]
async fn the_three_steps_and_the_hubs_limit() {
    let env = start().await;
    let key = env.device("fu-steps").await;
    let uploader = uploader(&env, "fu-steps", &key).build().unwrap();
    let mut targets = Vec::new();
    for i in 0..10 {
        targets.push(uploader.create_sas_uri(&format!("f{i}")).await.unwrap());
    }
    let err = uploader.create_sas_uri("f10").await.unwrap_err();
    match &err {
        UploadError::Hub {
            status, error_code, ..
        } => assert_eq!((*status, *error_code), (403, Some(403_006))),
        other => panic!("{other}"),
    }
    assert!(!err.is_transient());
    assert!(!format!("{:?}", targets[0]).contains("sig="));

    // Step 2 and 3 by hand for one; the others are released as failed.
    let mut reader = &b"by hand"[..];
    let size = uploader
        .upload_to_blob(&targets[0], &mut reader)
        .await
        .unwrap();
    assert_eq!(size, 7);
    uploader
        .notify(
            &targets[0].correlation_id,
            &hub_client::upload::UploadStatus::success(),
        )
        .await
        .unwrap();
    for target in &targets[1..] {
        let status = hub_client::upload::UploadStatus::failure(500, "not needed");
        uploader
            .notify(&target.correlation_id, &status)
            .await
            .unwrap();
    }
    assert_eq!(env.emu.active_file_uploads(&env.hub, "fu-steps"), 0);
    assert_eq!(env.emu.file_upload_notifications(&env.hub, 0).len(), 1);
    // An unknown correlation id is the hub's error.
    let err = uploader
        .notify("nope", &hub_client::upload::UploadStatus::success())
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Hub { status: 400, .. }), "{err}");
    // A wrong key is refused by the hub.
    let wrong = self::uploader(&env, "fu-steps", &dps_testkit::emulator::test_key(200))
        .build()
        .unwrap();
    let err = wrong.create_sas_uri("x").await.unwrap_err();
    assert!(matches!(err, UploadError::Hub { status: 401, .. }), "{err}");
}

#[tokio::test]
async fn an_x509_device_uploads_with_its_certificate() {
    use dps_emulator::DeviceIdentity;
    use dps_emulator::model::{HubAuthType, HubAuthentication, X509Thumbprint};

    let env = start().await;
    let cert = dps_testkit::pki::self_signed("fu-x509");
    env.emu
        .create_device(
            &env.hub,
            DeviceIdentity {
                device_id: "fu-x509".into(),
                authentication: HubAuthentication {
                    kind: HubAuthType::SelfSigned,
                    symmetric_key: None,
                    x509_thumbprint: Some(X509Thumbprint {
                        primary_thumbprint: Some(cert.thumbprint()),
                        secondary_thumbprint: None,
                    }),
                },
                ..DeviceIdentity::default()
            },
        )
        .await
        .unwrap();
    let identity = cert.identity(&[]);
    let uploader = FileUploader::builder(&env.hub, "fu-x509", identity)
        .endpoint(env.endpoint(Kind::Ws))
        .tls(env.tls())
        .build()
        .unwrap();
    uploader.upload_bytes("cert.txt", "x509").await.unwrap();
    assert_eq!(
        env.emu.blob(CONTAINER, "fu-x509/cert.txt").as_deref(),
        Some(&b"x509"[..])
    );
}

#[tokio::test]
async fn the_hub_clients_uploader_shares_its_credentials() {
    let env = start().await;
    let key = env.device("fu-client").await;
    let hub = env
        .builder(Kind::Mqtt, "fu-client", &key)
        .connect()
        .await
        .unwrap();
    let uploader = hub
        .file_upload()
        .endpoint(env.endpoint(Kind::Ws))
        .build()
        .unwrap();
    assert_eq!(uploader.device_id(), "fu-client");
    uploader
        .upload_bytes("from-client.txt", "hi")
        .await
        .unwrap();
    assert_eq!(
        env.emu
            .blob(CONTAINER, "fu-client/from-client.txt")
            .as_deref(),
        Some(&b"hi"[..])
    );
    hub.close().await;
}

/// An HTTP CONNECT proxy that counts tunnels and cuts the first one that carries more than
/// `cut_after` bytes upstream (once).
struct CuttingProxy {
    addr: std::net::SocketAddr,
    tunnels: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    async fn start(cut_after: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (t, c) = (Arc::clone(&tunnels), Arc::clone(&cuts));
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                t.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(tunnel(client, cut_after, Arc::clone(&c)));
            }
        });
        Self {
            addr,
            tunnels,
            cuts,
        }
    }
}

async fn tunnel(mut client: TcpStream, cut_after: usize, cuts: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if client.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(head.starts_with("CONNECT "), "{head}");
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        return;
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .unwrap();
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.split();
    let up = async {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            sent += n;
            if sent > cut_after
                && cuts
                    .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                // A network failure in the middle of a block.
                return;
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut ur, &mut cw);
    tokio::select! {
        () = up => {}
        _ = down => {}
    }
}

#[tokio::test]
async fn through_a_proxy_a_cut_block_is_retried() {
    let env = start().await;
    let key = env.device("fu-proxy").await;
    let proxy = CuttingProxy::start(100 * 1024).await;
    let uploader = uploader(&env, "fu-proxy", &key)
        .proxy(ProxyConfig::new(format!("http://{}", proxy.addr)))
        .block_size(64 * 1024)
        .build()
        .unwrap();
    let data = content(256 * 1024);
    let uploaded = uploader
        .upload_bytes("via-proxy.bin", data.clone())
        .await
        .unwrap();
    assert_eq!(uploaded.size, data.len() as u64);
    assert_eq!(
        env.emu.blob(CONTAINER, "fu-proxy/via-proxy.bin").unwrap(),
        data
    );
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "one tunnel was cut");
    // The hub request, the blob connection, its replacement after the cut, the notification.
    assert!(proxy.tunnels.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn a_hub_request_cut_by_the_network_is_retried() {
    let env = start().await;
    let key = env.device("fu-hub-retry").await;
    // The first tunnel (the SAS URI request) is cut at its first bytes.
    let proxy = CuttingProxy::start(0).await;
    let uploader = uploader(&env, "fu-hub-retry", &key)
        .proxy(ProxyConfig::new(format!("http://{}", proxy.addr)))
        .build()
        .unwrap();
    uploader.upload_bytes("retried.txt", "again").await.unwrap();
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(
        env.emu
            .blob(CONTAINER, "fu-hub-retry/retried.txt")
            .as_deref(),
        Some(&b"again"[..])
    );
    assert_eq!(env.emu.active_file_uploads(&env.hub, "fu-hub-retry"), 0);
}
