//! IoT Plug and Play conventions end to end against the emulator's hub, over MQTT/TLS and
//! MQTT/WebSocket: a component's writable property set while the device is offline is handed
//! over once after the reconnect, acknowledged by the conventions, and the service reads the
//! acknowledgement back; component telemetry carries `$.sub`; component commands are routed.

mod common;

use std::time::Duration;

use common::{Kind, next, start};
use dps_emulator::MethodInvocation;
use hub_client::pnp::{ReportedPatch, ack_code};
use hub_client::{DesiredUpdate, Message};
use serde_json::json;

const STEP: Duration = Duration::from_secs(10);
const COMPONENTS: [&str; 2] = ["thermostat1", "thermostat2"];

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
    writable_properties_are_acknowledged_once,
    component_telemetry_and_commands
);

async fn writable_properties_are_acknowledged_once(kind: Kind) {
    let env = start().await;
    let device = "pnp-writable";
    let key = env.device(device).await;
    // Set while the device has never connected: it must see it in the first resync.
    env.emu
        .patch_desired(
            &env.hub,
            device,
            json!({ "thermostat1": { "__t": "c", "targetTemperature": 23.5 }, "mode": "eco" }),
        )
        .await
        .unwrap();

    let client = env.builder(kind, device, &key).connect().await.unwrap();
    let mut updates = client.desired_patches().unwrap();
    let update = next(&mut updates, STEP).await;
    assert!(matches!(update, DesiredUpdate::Resync { .. }), "{update:?}");
    let mut pending = update.writable_properties(&COMPONENTS);
    pending.sort_by(|a, b| a.name.cmp(&b.name));
    let summary: Vec<_> = pending
        .iter()
        .map(|p| (p.component.as_deref(), p.name.as_str(), p.value.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (None, "mode", json!("eco")),
            (Some("thermostat1"), "targetTemperature", json!(23.5)),
        ]
    );
    let version = pending[0].version;
    let mut patch = ReportedPatch::new();
    for property in &pending {
        patch = patch.ack(property.ack(ack_code::COMPLETED).description("applied"));
    }
    client.update_reported(&patch).await.unwrap();

    // The service reads the acknowledgement where the conventions put it.
    let twin = serde_json::to_value(env.emu.twin(&env.hub, device).unwrap()).unwrap();
    let reported = &twin["properties"]["reported"];
    assert_eq!(reported["thermostat1"]["__t"], json!("c"));
    assert_eq!(
        reported["thermostat1"]["targetTemperature"],
        json!({ "value": 23.5, "ac": 200, "av": version, "ad": "applied" })
    );
    assert_eq!(reported["mode"]["av"], json!(version));
    client.close().await;

    // Reconnected with nothing new: the resync hands over nothing to acknowledge again.
    let client = env.builder(kind, device, &key).connect().await.unwrap();
    let mut updates = client.desired_patches().unwrap();
    let update = next(&mut updates, STEP).await;
    assert!(matches!(update, DesiredUpdate::Resync { .. }), "{update:?}");
    assert_eq!(update.writable_properties(&COMPONENTS), vec![]);

    // A patch while connected comes out with its own version.
    env.emu
        .patch_desired(
            &env.hub,
            device,
            json!({ "thermostat2": { "__t": "c", "targetTemperature": 19 } }),
        )
        .await
        .unwrap();
    let update = next(&mut updates, STEP).await;
    let properties = update.writable_properties(&COMPONENTS);
    assert_eq!(properties.len(), 1);
    assert_eq!(properties[0].component.as_deref(), Some("thermostat2"));
    assert_eq!(Some(properties[0].version), update.version());
    client.close().await;
}

async fn component_telemetry_and_commands(kind: Kind) {
    let env = start().await;
    let device = "pnp-commands";
    let key = env.device(device).await;
    let client = env
        .builder(kind, device, &key)
        .model_id("dtmi:com:example:TemperatureController;2")
        .connect()
        .await
        .unwrap();
    client
        .send(
            Message::json(&json!({ "temperature": 21.5 }))
                .unwrap()
                .component("thermostat1"),
        )
        .await
        .unwrap();
    let telemetry = env.telemetry_of(device);
    assert_eq!(telemetry.len(), 1);
    assert!(
        telemetry[0]
            .system_properties
            .values()
            .any(|v| v == "thermostat1"),
        "the component reaches the hub: {:?}",
        telemetry[0].system_properties
    );

    let mut requests = client.method_requests().unwrap();
    let answering = tokio::spawn(async move {
        let request = next(&mut requests, STEP).await;
        assert_eq!(
            (request.component(), request.command()),
            (Some("thermostat2"), "getMaxMinReport")
        );
        request
            .respond(200, json!({ "maxTemp": 21.5 }))
            .await
            .unwrap();
    });
    let answer = env
        .emu
        .invoke_method(
            &env.hub,
            device,
            MethodInvocation::new("thermostat2*getMaxMinReport").response_timeout(5),
        )
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.payload),
        (200, json!({ "maxTemp": 21.5 }))
    );
    answering.await.unwrap();
    client.close().await;
}
