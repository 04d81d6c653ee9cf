//! Resource limits (#11): what an unauthenticated, slow or non-reading client can hold.

mod common;

use std::time::Duration;

use common::*;
use dps_emulator::{EmulatorConfig, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// Generous bound for "promptly": far below the limits the defaults would apply (30 s), so a
/// test fails when the emulator waits for the client instead of refusing it.
const PROMPTLY: Duration = Duration::from_secs(10);

fn with_limits(adjust: impl FnOnce(&mut Limits)) -> impl FnOnce(EmulatorConfig) -> EmulatorConfig {
    move |mut config| {
        adjust(&mut config.file.behaviour.limits);
        config
    }
}

/// Enrolls `id` with a symmetric key; the primary key.
async fn enroll(emu: &dps_emulator::Emulator, id: &str) -> String {
    let primary = key(1, 64);
    emu.put_enrollment(enrollment(sym_enrollment(id, &primary, &key(2, 64))), None)
        .await
        .unwrap();
    primary
}

/// Reads until the peer closes (or the bound passes); what was read.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match timeout(PROMPTLY, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_valid_token_is_refused_before_its_body_is_read() {
    let emu = start().await;
    let mut stream = tls(&emu, emu.https_addr(), None).await;
    // Announces a 4 MB body and sends none of it.
    let head = "POST /enrollments/query?api-version=2021-10-01 HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream)
        .await
        .expect("answered and closed without waiting for the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_times_out() {
    let emu = start_with(with_limits(|l| l.http_body_timeout_seconds = 1)).await;
    let mut stream = tls(&emu, emu.https_addr(), None).await;
    let head = format!(
        "POST /enrollments/query?api-version=2021-10-01 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"qu",
        service_token(&emu)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await.expect("closed in time");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_first_packet_is_refused_without_being_read() {
    let emu = start().await;
    let mut stream = tls(&emu, emu.mqtt_addr(), None).await;
    // A CONNECT announcing 257 KiB: the fixed header and the first kilobyte only.
    let len = 257 * 1024;
    let mut bytes = vec![0x10];
    let mut rest = len;
    loop {
        let mut byte = (rest % 128) as u8;
        rest /= 128;
        if rest > 0 {
            byte |= 0x80;
        }
        bytes.push(byte);
        if rest == 0 {
            break;
        }
    }
    bytes.extend(std::iter::repeat_n(0u8, 1024));
    stream.write_all(&bytes).await.unwrap();
    assert!(
        read_to_close(&mut stream).await.is_some(),
        "the connection is closed at once, not after the rest of the packet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_keep_alive_is_closed_when_idle() {
    let emu = start_with(with_limits(|l| l.idle_timeout_seconds = 1)).await;
    let key = enroll(&emu, "idle-dev").await;
    let scope = emu.id_scope();
    let mut connect = rumqttc::mqttbytes::v4::Connect::new("idle-dev");
    connect.keep_alive = 0;
    connect.clean_session = true;
    connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
        username(scope, "idle-dev", API),
        sas(&key, scope, "idle-dev"),
    ));
    let packet = encode(&rumqttc::mqttbytes::v4::Packet::Connect(connect));
    let ConnectOutcome::Accepted(mut conn) = connect_raw(&emu, None, &packet).await else {
        panic!("CONNECT refused");
    };
    assert!(
        conn.is_closed_within(PROMPTLY).await,
        "a silent connection with keep-alive 0 is closed after the idle limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_capped() {
    let emu = start_with(with_limits(|l| l.max_unauthenticated_connections = 2)).await;
    // Two connections that never even start TLS hold both slots.
    let _a = tokio::net::TcpStream::connect(emu.mqtt_addr())
        .await
        .unwrap();
    let _b = tokio::net::TcpStream::connect(emu.https_addr())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(emu.mqtt_addr())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let closed = timeout(PROMPTLY, third.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "the third unauthenticated connection is closed at once: {closed:?}"
    );

    // Once they go, connections are admitted again, and an authenticated one no longer
    // counts against the cap.
    drop((_a, _b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let key = enroll(&emu, "capped-dev").await;
    let first = sas_device(&emu, "capped-dev", &key).await;
    let second = https(
        &emu,
        "GET",
        "/emulator/faults",
        &[("authorization", service_token(&emu))],
        None,
    )
    .await;
    assert_eq!(second.status, 200);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_client_that_never_reads_is_closed() {
    let emu = start_with(with_limits(|l| l.write_timeout_seconds = 1)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive window, so the server's writes stall soon.
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(emu.https_addr()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(&emu, None));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    let request = format!(
        "GET /emulator/faults?api-version=2021-10-01 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: {}\r\n\r\n",
        service_token(&emu)
    );
    // Pipelines requests and never reads an answer: once the server's writes stall for the
    // write timeout it closes, and writing fails.
    let writer = async {
        for _ in 0..200_000 {
            if stream.write_all(request.as_bytes()).await.is_err() {
                return true;
            }
        }
        false
    };
    let closed = timeout(Duration::from_secs(60), writer).await;
    assert_eq!(closed, Ok(true), "the server closed the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_first_message_over_websocket_is_refused_without_being_read() {
    let emu = start().await;
    let mut stream = tls(&emu, emu.https_addr(), None).await;
    let upgrade = "GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "upgrade answered");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    // One binary frame announcing 200 KiB (within the WebSocket message limit, which is sized
    // for publishes), of which only 20 KiB are sent: a CONNECT never needs that much.
    let len: u64 = 200 * 1024;
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend(std::iter::repeat_n(0x10u8, 20 * 1024));
    // The server may close while this is still being written.
    let _ = stream.write_all(&frame).await;
    assert!(
        read_to_close(&mut stream).await.is_some(),
        "the connection is closed once a CONNECT's worth of bytes is exceeded"
    );
}
