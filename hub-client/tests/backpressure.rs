//! Nothing acknowledged before the application has it: a full stream holds the delivery (and
//! its PUBACK) and pauses reading, so a busy application loses nothing, over MQTT/TLS and
//! MQTT/WebSocket against the emulator's IoT Hub.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Kind, eventually, next, start};
use dps_emulator::CloudToDeviceMessage;

const STEP: Duration = Duration::from_secs(10);
/// The hub's queue-full error for cloud-to-device messages.
const QUEUE_FULL: u32 = 403_004;

macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mqtt() {
                super::$name(Kind::Mqtt).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn websocket() {
                super::$name(Kind::Ws).await;
            }
        }
    )*};
}

both_transports!(
    full_stream_holds_the_delivery_unacknowledged_until_there_is_room,
    busy_application_loses_none_of_400_c2d,
);

/// The second message finds the stream full: the hub keeps it (no PUBACK) until the
/// application reads, then it comes on the same connection and is acknowledged.
async fn full_stream_holds_the_delivery_unacknowledged_until_there_is_room(kind: Kind) {
    let env = start().await;
    let key = env.device("c2d-full").await;
    let hub = env
        .builder(kind, "c2d-full", &key)
        .stream_capacity(1)
        .connect()
        .await
        .unwrap();
    let count = || {
        env.emu
            .device(&env.hub, "c2d-full")
            .unwrap()
            .cloud_to_device_message_count
    };
    let send = |id: &'static str| {
        env.emu.send_c2d(
            &env.hub,
            "c2d-full",
            CloudToDeviceMessage::new(id).message_id(id),
        )
    };
    // The first fills the stream (capacity 1) and is acknowledged: the hub forgets it.
    send("m1").await.unwrap();
    eventually(STEP, "the first is acknowledged", || count() == 0).await;
    // The second finds the stream full: held, not acknowledged, the hub keeps it.
    send("m2").await.unwrap();
    send("m3").await.unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(count(), 2, "the held messages must stay with the hub");
    }
    let mut c2d = hub.c2d_messages().unwrap();
    for id in ["m1", "m2", "m3"] {
        assert_eq!(next(&mut c2d, STEP).await.message_id(), Some(id));
    }
    eventually(STEP, "the held ones are acknowledged", || count() == 0).await;
    assert_eq!(
        hub.connection_state(),
        Some(hub_client::ConnectionState::Connected)
    );
    hub.close().await;
}

/// The reproduction: 400 messages to a device whose application is busy, stream
/// capacity 16. The hub's queue (50) fills and pushes back on the sender; all 400 arrive, in
/// order, and the hub ends with nothing queued.
async fn busy_application_loses_none_of_400_c2d(kind: Kind) {
    const TOTAL: usize = 400;
    let env = start().await;
    let key = env.device("busy").await;
    let hub = env
        .builder(kind, "busy", &key)
        .stream_capacity(16)
        .connect()
        .await
        .unwrap();
    let mut c2d = hub.c2d_messages().unwrap();
    let count = || {
        env.emu
            .device(&env.hub, "busy")
            .unwrap()
            .cloud_to_device_message_count
    };
    let send_all = async {
        let mut refused = 0_u32;
        for i in 0..TOTAL {
            let id = format!("c{i}");
            loop {
                let message = CloudToDeviceMessage::new(id.clone()).message_id(id.clone());
                match env.emu.send_c2d(&env.hub, "busy", message).await {
                    Ok(_) => break,
                    Err(failure) if failure.error_code == QUEUE_FULL => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(failure) => panic!("send_c2d: {}", failure.message),
                }
            }
        }
        refused
    };
    let read_all = async {
        // Busy: the application reads nothing for a while. The hub's queue fills to its limit
        // and stays full, because nothing beyond the 16 in the stream is acknowledged.
        eventually(STEP, "the hub's queue fills", || count() >= 50).await;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            assert!(
                count() >= 50,
                "the hub's queue drained while the application was busy"
            );
        }
        let mut seen = Vec::with_capacity(TOTAL);
        while seen.len() < TOTAL {
            let message = next(&mut c2d, STEP).await;
            seen.push(message.message_id().unwrap_or_default().to_owned());
        }
        seen
    };
    let (refused, seen) = tokio::join!(send_all, read_all);
    assert!(refused > 0, "the hub's queue never pushed back");
    let expected: Vec<String> = (0..TOTAL).map(|i| format!("c{i}")).collect();
    assert_eq!(seen, expected, "every message, once, in order");
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        TOTAL,
        "no duplicates"
    );
    eventually(STEP, "all acknowledged", || count() == 0).await;
    hub.close().await;
}
