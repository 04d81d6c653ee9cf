//! #15 item 3: the read-only fields as the hub keeps them, and connection-state notifications
//! on the events feed next to the lifecycle notifications.

mod common;

use std::time::Duration;

use common::hub::*;
use common::*;
use dps_emulator::{CloudToDeviceMessage, DeviceConnectionState, HubEventKind};
use serde_json::Value;

#[tokio::test]
async fn read_only_fields_and_connection_state_notifications() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "ro-1").await;
    let created = emu.device(&hub, "ro-1").unwrap();
    assert_eq!(
        created.connection_state,
        DeviceConnectionState::Disconnected
    );
    assert_eq!(
        created.connection_state_updated_time,
        "0001-01-01T00:00:00Z"
    );
    assert_eq!(created.cloud_to_device_message_count, 0);
    assert_service_time(&created.status_updated_time);

    let since = last_event(&emu);
    let conn = hub_device(&emu, "ro-1", &key).await;
    let connected = wait_event(&emu, since, |e| {
        e.kind == HubEventKind::DeviceConnectionState
    })
    .await;
    assert_eq!(connected.device_id, "ro-1");
    assert_eq!(connected.properties["opType"], "deviceConnected");
    assert_eq!(connected.properties["hubName"], hub);
    assert_eq!(
        connected.properties["iothub-message-schema"],
        "deviceConnectionStateNotification"
    );
    assert_eq!(
        connected.system_properties["iothub-message-source"],
        "deviceConnectionStateEvents"
    );
    let first: Value = connected.body_json().unwrap();
    let first = first["sequenceNumber"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 64);
    let live = emu.device(&hub, "ro-1").unwrap();
    assert_eq!(live.connection_state, DeviceConnectionState::Connected);
    assert_service_time(&live.connection_state_updated_time);
    assert_service_time(&live.last_activity_time);

    drop(conn);
    let disconnected = wait_event(&emu, connected.sequence_number, |e| {
        e.kind == HubEventKind::DeviceConnectionState
    })
    .await;
    assert_eq!(disconnected.properties["opType"], "deviceDisconnected");
    let second: Value = disconnected.body_json().unwrap();
    assert!(
        second["sequenceNumber"].as_str().unwrap() > first.as_str(),
        "increasing"
    );
    let deadline = tokio::time::Instant::now() + STEP;
    while emu.device(&hub, "ro-1").unwrap().connection_state != DeviceConnectionState::Disconnected
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // cloudToDeviceMessageCount counts what is queued; etag and statusUpdatedTime move with
    // an update; generationId is new when the identity is re-created.
    emu.send_c2d(&hub, "ro-1", CloudToDeviceMessage::new("one"))
        .await
        .unwrap();
    emu.send_c2d(&hub, "ro-1", CloudToDeviceMessage::new("two"))
        .await
        .unwrap();
    assert_eq!(
        emu.device(&hub, "ro-1")
            .unwrap()
            .cloud_to_device_message_count,
        2
    );
    let before = emu.device(&hub, "ro-1").unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut disabled = before.clone();
    disabled.status = dps_emulator::model::DeviceStatus::Disabled;
    let reply = hub_service(
        &emu,
        "PUT",
        "/devices/ro-1",
        Some(&serde_json::to_value(&disabled).unwrap()),
        &[("if-match", format!("\"{}\"", before.etag))],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let after = emu.device(&hub, "ro-1").unwrap();
    assert_ne!(after.etag, before.etag);
    assert!(after.status_updated_time > before.status_updated_time);
    assert_eq!(after.generation_id, before.generation_id);
    let reply = hub_service(&emu, "DELETE", "/devices/ro-1", None, &[]).await;
    assert_eq!(reply.status, 204);
    create_sas_device(&emu, "ro-1").await;
    assert_ne!(
        emu.device(&hub, "ro-1").unwrap().generation_id,
        before.generation_id
    );
}
