//! Manual completion against the emulator's IoT Hub, over MQTT/TLS and MQTT/WebSocket: nothing
//! is acknowledged before the application completes it, and what it never completed comes
//! again after a reconnect (at least once into the application's own store).

mod common;

use std::time::Duration;

use common::{Kind, eventually, start};
use dps_emulator::CloudToDeviceMessage;
use hub_client::{Delivered, Subscription};

const STEP: Duration = Duration::from_secs(10);

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

both_transports!(c2d_is_acknowledged_on_complete_and_redelivered_when_not);

async fn next_delivery<T>(stream: &mut Subscription<T>) -> Delivered<T> {
    tokio::time::timeout(STEP, stream.recv_delivery())
        .await
        .expect("an item in time")
        .expect("the stream is open")
}

async fn c2d_is_acknowledged_on_complete_and_redelivered_when_not(kind: Kind) {
    let env = start().await;
    let key = env.device("manual").await;
    let connect = || {
        env.builder(kind, "manual", &key)
            .manual_completion(true)
            .connect()
    };
    let count = || {
        env.emu
            .device(&env.hub, "manual")
            .unwrap()
            .cloud_to_device_message_count
    };
    let send = |id: &'static str| {
        env.emu.send_c2d(
            &env.hub,
            "manual",
            CloudToDeviceMessage::new(id).message_id(id),
        )
    };

    let hub = connect().await.unwrap();
    let mut c2d = hub.c2d_messages().unwrap();
    send("m1").await.unwrap();
    let delivered = next_delivery(&mut c2d).await;
    assert_eq!(delivered.item().message_id(), Some("m1"));
    // In the application's hands but not completed: the hub still has it.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(count(), 1, "acknowledged before it was completed");
    }
    let message = delivered.complete();
    assert_eq!(message.message_id(), Some("m1"));
    eventually(STEP, "m1 acknowledged on complete", || count() == 0).await;

    // Taken, never completed (the application crashed before storing it): comes again.
    send("m2").await.unwrap();
    let (message, completion) = next_delivery(&mut c2d).await.into_parts();
    assert_eq!(message.message_id(), Some("m2"));
    assert!(completion.is_pending());
    drop(completion);
    hub.close().await;
    drop(c2d);
    assert_eq!(count(), 1);

    let hub = connect().await.unwrap();
    let mut c2d = hub.c2d_messages().unwrap();
    let delivered = next_delivery(&mut c2d).await;
    assert_eq!(delivered.item().message_id(), Some("m2"));
    delivered.complete();
    eventually(STEP, "m2 acknowledged on the new connection", || {
        count() == 0
    })
    .await;
    hub.close().await;
}
