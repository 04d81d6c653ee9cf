//! Backpressure through TCP: a receiver that stops reading stops the session reading the
//! socket, so the server's writes stall (instead of its messages piling up in the client), the
//! session stays alive meanwhile (writes, PINGREQs, no false keep-alive timeout), and every
//! message arrives, in order, once the receiver reads again. Over real TLS on a real socket,
//! against a small MQTT server that streams publishes as fast as TCP lets it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dps_auth::{Credentials, SasToken};
use dps_testkit::conformance::trusting;
use dps_testkit::pki::Ca;
use dps_transport_mqtt::{ConnectOptions, Incoming, MqttTransport, QoS, Transport};
use rumqttc::mqttbytes::{self, v4};
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Messages the server sends, and the size of each payload: 64 MiB in all, far more than the
/// socket buffers of both ends hold.
const MESSAGES: u32 = 4096;
const PAYLOAD: usize = 16 * 1024;
const TOTAL: u64 = MESSAGES as u64 * PAYLOAD as u64;

/// What the server observed.
#[derive(Default)]
struct Seen {
    /// Payload bytes written into the socket so far.
    written: AtomicU64,
    pingreqs: AtomicU32,
    pubacks: AtomicU32,
    /// QoS 0 publishes from the client.
    publishes: AtomicU32,
}

/// A TLS MQTT server for one client: CONNACK, then [`MESSAGES`] QoS 1 publishes written as
/// fast as the socket takes them, while another task reads and counts what the client sends.
async fn streaming_server(ca: &Ca) -> (u16, Arc<Seen>) {
    let leaf = ca.server(&["localhost"], None);
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der()], leaf.key())
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let counts = Arc::clone(&seen);
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let (mut read, mut write) = tokio::io::split(tls);
        let mut buffer = BytesMut::new();
        let connect = next_packet(&mut read, &mut buffer).await;
        assert!(
            matches!(connect, Some(v4::Packet::Connect(..))),
            "{connect:?}"
        );
        let mut out = BytesMut::new();
        v4::Packet::ConnAck(v4::ConnAck::new(v4::ConnectReturnCode::Success, false))
            .write(&mut out, usize::MAX)
            .unwrap();
        write.write_all(&out).await.unwrap();
        let reader_counts = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Some(packet) = next_packet(&mut read, &mut buffer).await {
                let counter = match packet {
                    v4::Packet::PingReq => &reader_counts.pingreqs,
                    v4::Packet::PubAck(_) => &reader_counts.pubacks,
                    v4::Packet::Publish(_) => &reader_counts.publishes,
                    _ => continue,
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        for index in 0..MESSAGES {
            let mut payload = vec![0u8; PAYLOAD];
            payload[..4].copy_from_slice(&index.to_be_bytes());
            let mut publish =
                v4::Publish::from_bytes("data", mqttbytes::QoS::AtLeastOnce, Bytes::from(payload));
            publish.pkid = u16::try_from(index % 65_000 + 1).unwrap();
            let mut out = BytesMut::new();
            v4::Packet::Publish(publish)
                .write(&mut out, usize::MAX)
                .unwrap();
            if write.write_all(&out).await.is_err() {
                return;
            }
            counts.written.fetch_add(PAYLOAD as u64, Ordering::SeqCst);
        }
        let _ = write.flush().await;
        // Keep the connection open until the test ends.
        std::future::pending::<()>().await;
    });
    (port, seen)
}

async fn next_packet<R: tokio::io::AsyncRead + Unpin>(
    read: &mut R,
    buffer: &mut BytesMut,
) -> Option<v4::Packet> {
    loop {
        match v4::Packet::read(buffer, usize::MAX) {
            Ok(packet) => return Some(packet),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => panic!("bad packet from the client: {e}"),
        }
        if read.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
}

/// Waits until `value` stops changing for half a second, and returns it.
async fn settled(value: &AtomicU64) -> u64 {
    let mut last = value.load(Ordering::SeqCst);
    let mut still = 0;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = value.load(Ordering::SeqCst);
        if now == last {
            still += 1;
            if still == 5 {
                return now;
            }
        } else {
            still = 0;
            last = now;
        }
    }
    panic!("the server never stopped writing ({last} bytes)");
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_connection_pushes_back_through_tcp_and_delivers_everything_later() {
    let ca = Ca::root("backpressure test root");
    let (port, seen) = streaming_server(&ca).await;
    let options = ConnectOptions::new(
        format!("localhost:{port}"),
        "dev-backpressure",
        "user",
        Credentials::Sas(SasToken::from("not-checked".to_owned())),
    )
    .with_tls(trusting(&ca.der))
    .with_keep_alive(Duration::from_secs(1));
    let mut connection = MqttTransport::new().connect(&options).await.unwrap();

    // Nothing is received: the server's writes stall far short of the whole stream, because
    // the session stops reading once its channel is full.
    let stalled = settled(&seen.written).await;
    assert!(
        stalled < TOTAL / 2,
        "the server wrote {stalled} of {TOTAL} bytes into a connection nobody reads"
    );

    // Paused, the session is alive: its own publishes go out, it keeps pinging, and the
    // server's unread answers are not mistaken for silence (1.5 × keep-alive passes).
    connection
        .publish("up", "while paused", QoS::AtMostOnce)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(connection.close_reason(), None);
    assert_eq!(
        seen.written.load(Ordering::SeqCst),
        stalled,
        "still stalled"
    );
    assert!(seen.pingreqs.load(Ordering::SeqCst) >= 1, "pings went on");
    assert_eq!(seen.publishes.load(Ordering::SeqCst), 1);

    // Reading again: every message, in order, and each acknowledgement reaches the server.
    for expected in 0..MESSAGES {
        let message = tokio::time::timeout(Duration::from_secs(10), connection.recv())
            .await
            .expect("the stream resumes")
            .expect("the connection stays open");
        let Incoming::Publish {
            payload, packet_id, ..
        } = message
        else {
            panic!("not a publish");
        };
        let index = u32::from_be_bytes(payload[..4].try_into().unwrap());
        assert_eq!(index, expected);
        assert_eq!(payload.len(), PAYLOAD);
        connection.ack(packet_id.unwrap()).unwrap();
    }
    assert_eq!(seen.written.load(Ordering::SeqCst), TOTAL);
    eventually("every PUBACK reached the server", || {
        seen.pubacks.load(Ordering::SeqCst) == MESSAGES
    })
    .await;
    assert_eq!(connection.close_reason(), None);
}
