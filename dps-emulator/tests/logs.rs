//! #11: the emulator's logs, at `trace`, carry no SAS token, key or signature, including what
//! the WebSocket layer traces (tungstenite logs every frame with its payload, and the MQTT
//! CONNECT frame carries the token).

mod common;

use std::io::Write;
use std::sync::Mutex;

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_carry_no_secret_over_websocket() {
    // The emulator's own filter at the most verbose level; `log` records (tungstenite's) are
    // captured too.
    tracing_subscriber::fmt()
        .with_env_filter(dps_emulator::cli::log_filter("trace"))
        .with_writer(|| Capture)
        .with_ansi(false)
        .try_init()
        .unwrap();

    let emu = start().await;
    let primary = key(1, 64);
    emu.put_enrollment(
        enrollment(sym_enrollment("log-dev", &primary, &key(2, 64))),
        None,
    )
    .await
    .unwrap();
    let scope = emu.id_scope().to_owned();
    let token = sas(&primary, &scope, "log-dev");

    let stream = tls(&emu, emu.https_addr(), None).await;
    let mut request = "wss://localhost/$iothub/websocket"
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let connect = connect_packet("log-dev", &username(&scope, "log-dev", API), Some(&token));
    ws.send(Message::Binary(connect.into())).await.unwrap();
    let connack = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("CONNACK in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        connack.into_data().as_ref(),
        &[0x20, 0x02, 0x00, 0x00],
        "CONNACK accepted"
    );
    let _ = ws.close(None).await;
    drop(emu);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(
        logs.contains("DPS device connected") && logs.contains("TRACE"),
        "the capture works: {logs}"
    );
    let encoded_signature = token
        .split("sig=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap()
        .to_owned();
    let signature = encoded_signature
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    for (what, secret) in [
        ("token", token.as_str()),
        ("signature", encoded_signature.as_str()),
        ("decoded signature", signature.as_str()),
        ("key", primary.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
        assert!(
            !logs.contains(&hex(secret)),
            "the {what} is in the logs as hex"
        );
    }
}
