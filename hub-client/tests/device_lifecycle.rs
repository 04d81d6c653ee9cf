//! The device lifecycle client end to end against the emulator, over MQTT and WebSocket: a
//! cached start with no DPS call, a deleted device provisioning again with its telemetry kept,
//! key rotation survived with the secondary key.

mod common;

use std::time::Duration;

use common::{Kind, eventually};
use dps_core::device::{LifecycleEvent, ReprovisionReason, Source};
use dps_testkit::emulator::{TestEmulator, test_key};
use hub_client::device::{
    CredentialSlot, DeviceClient, DeviceClientBuilder, FileStore, RecoveryBackoff,
};
use hub_client::{FixedEntropy, Message, MqttTransport, SymmetricKey, WebSocketTransport};
use tokio::sync::broadcast;

const LIMIT: Duration = Duration::from_secs(30);

fn builder(emu: &TestEmulator, kind: Kind, registration_id: &str) -> DeviceClientBuilder {
    let (endpoint, builder) = match kind {
        Kind::Mqtt => (
            emu.mqtt_endpoint(),
            DeviceClient::builder(emu.id_scope(), registration_id).transport(MqttTransport::new()),
        ),
        Kind::Ws => (
            emu.https_endpoint(),
            DeviceClient::builder(emu.id_scope(), registration_id)
                .transport(WebSocketTransport::new()),
        ),
    };
    let hub_endpoint = endpoint.clone();
    builder
        .dps_endpoint(endpoint)
        .hub_endpoint(move |_| hub_endpoint.clone())
        .tls(emu.tls())
        .connect_timeout(Duration::from_secs(10))
        .recovery(RecoveryBackoff::new(
            Duration::from_millis(200),
            Duration::from_secs(1),
        ))
        .entropy(FixedEntropy(7))
}

/// Lifecycle events up to and including the first `Connected`.
async fn until_connected(events: &mut broadcast::Receiver<LifecycleEvent>) -> Vec<LifecycleEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(LIMIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("connected in time; saw {seen:?}"))
            .expect("the lifecycle stream is open");
        let done = matches!(event, LifecycleEvent::Connected { .. });
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn telemetry(emu: &TestEmulator, device_id: &str) -> Vec<String> {
    emu.hub_events(emu.hub(), 0)
        .into_iter()
        .filter(|e| e.device_id == device_id && e.kind == dps_emulator::HubEventKind::Telemetry)
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

async fn cached_start(kind: Kind) {
    let emu = TestEmulator::start().await;
    let id = format!("cached-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assignment.json");

    // First run: no cache, one registration, the record saved.
    let device = builder(&emu, kind, &id)
        .credential(key.clone())
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    let mut events = device.lifecycle_events();
    let first = until_connected(&mut events).await;
    assert!(
        matches!(
            &first[..],
            [
                LifecycleEvent::Reprovisioning {
                    reason: ReprovisionReason::NoCache,
                    ..
                },
                LifecycleEvent::Provisioned {
                    source: Source::Dps,
                    ..
                },
                LifecycleEvent::Connected { .. }
            ]
        ),
        "{first:?}"
    );
    device.hub().send(Message::new("first run")).await.unwrap();
    device.close().await;
    let requests = emu.device_requests(&id);
    assert!(requests >= 1);
    assert!(path.exists(), "the assignment is on disk");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
    }

    // Second run: from the cache, zero DPS requests.
    let device = builder(&emu, kind, &id)
        .credential(key)
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    let mut events = device.lifecycle_events();
    let second = until_connected(&mut events).await;
    assert!(
        matches!(
            &second[..],
            [
                LifecycleEvent::Provisioned {
                    source: Source::Cache,
                    ..
                },
                LifecycleEvent::Connected { .. }
            ]
        ),
        "{second:?}"
    );
    assert_eq!(device.assignment().unwrap().assigned_hub, emu.hub());
    device.hub().send(Message::new("second run")).await.unwrap();
    device.close().await;
    assert_eq!(
        emu.device_requests(&id),
        requests,
        "no DPS call from the cache"
    );
    assert_eq!(telemetry(&emu, &id), ["first run", "second run"]);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_cached_start_makes_no_dps_call_over_mqtt() {
    cached_start(Kind::Mqtt).await;
}

#[tokio::test]
async fn a_cached_start_makes_no_dps_call_over_websocket() {
    cached_start(Kind::Ws).await;
}

async fn deleted_device(kind: Kind) {
    let emu = TestEmulator::start().await;
    let id = format!("deleted-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assignment.json");
    let device = builder(&emu, kind, &id)
        .credential(key.clone())
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    until_connected(&mut device.lifecycle_events()).await;
    device.close().await;
    let requests = emu.device_requests(&id);

    // The device is deleted on the hub while the device is off.
    emu.delete_device(emu.hub(), &id, None).await.unwrap();
    let device = builder(&emu, kind, &id)
        .credential(key)
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    let mut events = device.lifecycle_events();
    // Queued at once, before any connection: it must reach the re-created device.
    let receipt = device.hub().try_send(Message::new("kept")).unwrap();
    let seen = until_connected(&mut events).await;
    assert!(
        seen.iter().any(|e| matches!(
            e,
            LifecycleEvent::Reprovisioning {
                reason: ReprovisionReason::HubRefused { .. },
                ..
            }
        )),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| matches!(
        e,
        LifecycleEvent::Provisioned {
            source: Source::Dps,
            ..
        }
    )));
    tokio::time::timeout(LIMIT, receipt).await.unwrap().unwrap();
    assert!(emu.device_requests(&id) > requests, "provisioned again");
    assert!(
        emu.hub_device(emu.hub(), &id).is_some(),
        "re-created on the hub"
    );
    assert_eq!(telemetry(&emu, &id), ["kept"]);
    device.close().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_deleted_device_provisions_again_and_keeps_its_telemetry_over_mqtt() {
    deleted_device(Kind::Mqtt).await;
}

#[tokio::test]
async fn a_deleted_device_provisions_again_and_keeps_its_telemetry_over_websocket() {
    deleted_device(Kind::Ws).await;
}

async fn key_rotation(kind: Kind) {
    let emu = TestEmulator::start().await;
    let id = format!("rotated-{kind:?}").to_lowercase();
    let (old_primary, secondary, new_primary) = (test_key(1), test_key(2), test_key(3));
    let enrollment = |primary: &str| {
        serde_json::json!({
            "registrationId": id,
            "attestation": { "type": "symmetricKey", "symmetricKey": {
                "primaryKey": primary, "secondaryKey": secondary } },
        })
    };
    emu.put_enrollment_value(enrollment(&old_primary)).await;
    // The service regenerates the primary key; the device still holds the old one.
    let current = emu.enrollment(&id).unwrap();
    let mut rotated: dps_emulator::model::IndividualEnrollment =
        serde_json::from_value(enrollment(&new_primary)).unwrap();
    rotated.settings.etag = current.settings.etag.clone();
    emu.put_enrollment(rotated, None).await.unwrap();

    let device = builder(&emu, kind, &id)
        .credential(SymmetricKey::from_base64(&old_primary).unwrap())
        .credential(SymmetricKey::from_base64(&secondary).unwrap())
        .start()
        .unwrap();
    let seen = until_connected(&mut device.lifecycle_events()).await;
    assert!(
        seen.contains(&LifecycleEvent::CredentialSwitched {
            from: CredentialSlot(0),
            to: CredentialSlot(1)
        }),
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&LifecycleEvent::Connected {
            credential: CredentialSlot(1)
        })
    );
    device.hub().send(Message::new("rotated")).await.unwrap();
    eventually(LIMIT, "telemetry", || telemetry(&emu, &id) == ["rotated"]).await;
    device.close().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn key_rotation_is_survived_with_the_secondary_key_over_mqtt() {
    key_rotation(Kind::Mqtt).await;
}

#[tokio::test]
async fn key_rotation_is_survived_with_the_secondary_key_over_websocket() {
    key_rotation(Kind::Ws).await;
}

const HUB_A: &str = "hub-a.azure-devices.net";
const HUB_B: &str = "hub-b.azure-devices.net";

/// Points `registration_id`'s enrollment at `hub` (the next registration lands there).
async fn enroll_on(emu: &TestEmulator, registration_id: &str, hub: &str) {
    let mut enrollment = emu.enrollment(registration_id).unwrap();
    enrollment.settings.iot_hubs = Some(vec![hub.to_owned()]);
    emu.put_enrollment(enrollment, None).await.unwrap();
}

fn telemetry_on(emu: &TestEmulator, hub: &str, device_id: &str) -> Vec<String> {
    emu.hub_events(hub, 0)
        .into_iter()
        .filter(|e| e.device_id == device_id && e.kind == dps_emulator::HubEventKind::Telemetry)
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect()
}

async fn moved_device(kind: Kind) {
    let emu = TestEmulator::start_with(|c| c.linked_hubs([HUB_A, HUB_B])).await;
    let id = format!("moved-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    enroll_on(&emu, &id, HUB_A).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assignment.json");
    let device = builder(&emu, kind, &id)
        .credential(key.clone())
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    until_connected(&mut device.lifecycle_events()).await;
    assert_eq!(device.assignment().unwrap().assigned_hub, HUB_A);
    device.hub().send(Message::new("on a")).await.unwrap();
    let requests = emu.device_requests(&id);

    // The operator moves the device while it is connected: the enrollment now allocates hub
    // B, and the identity leaves hub A (which drops the connection and refuses it from now on).
    let mut events = device.lifecycle_events();
    enroll_on(&emu, &id, HUB_B).await;
    emu.delete_device(HUB_A, &id, None).await.unwrap();
    let receipt = device
        .hub()
        .try_send(Message::new("after the move"))
        .unwrap();
    let seen = until_connected(&mut events).await;
    assert!(
        seen.iter().any(|e| matches!(
            e,
            LifecycleEvent::Reprovisioning {
                reason: ReprovisionReason::HubRefused { .. },
                ..
            }
        )),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| matches!(e, LifecycleEvent::Provisioned { source: Source::Dps, hub, .. } if hub == HUB_B)));
    tokio::time::timeout(LIMIT, receipt).await.unwrap().unwrap();
    assert_eq!(device.assignment().unwrap().assigned_hub, HUB_B);
    assert!(emu.device_requests(&id) > requests);
    assert_eq!(telemetry_on(&emu, HUB_A, &id), ["on a"]);
    assert_eq!(telemetry_on(&emu, HUB_B, &id), ["after the move"]);
    device.close().await;

    // The saved record points at hub B: the next start goes there with no DPS call.
    let requests = emu.device_requests(&id);
    let device = builder(&emu, kind, &id)
        .credential(key)
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    let seen = until_connected(&mut device.lifecycle_events()).await;
    assert!(
        matches!(&seen[0], LifecycleEvent::Provisioned { source: Source::Cache, hub, .. } if hub == HUB_B)
    );
    assert_eq!(emu.device_requests(&id), requests);
    device.close().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_moved_device_provisions_again_to_its_new_hub_over_mqtt() {
    moved_device(Kind::Mqtt).await;
}

#[tokio::test]
async fn a_moved_device_provisions_again_to_its_new_hub_over_websocket() {
    moved_device(Kind::Ws).await;
}

async fn hub_down_then_back(kind: Kind) {
    let emu = TestEmulator::start().await;
    let id = format!("outage-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    let addr = match kind {
        Kind::Mqtt => emu.mqtt_addr(),
        Kind::Ws => emu.https_addr(),
    };
    // The hub is reached through a relay that can fail; DPS directly.
    let relay = common::Relay::start(addr).await;
    let hub_endpoint = relay.endpoint();
    let device = builder(&emu, kind, &id)
        .hub_endpoint(move |_| hub_endpoint.clone())
        .credential(key)
        .hub_attempts(3)
        .session_config(|c| {
            c.backoff(
                hub_client::Backoff::default()
                    .base(Duration::from_millis(50))
                    .max(Duration::from_millis(200))
                    .max_jitter(Duration::from_millis(10)),
            )
        })
        .start()
        .unwrap();
    let mut events = device.lifecycle_events();
    until_connected(&mut events).await;
    let requests = emu.device_requests(&id);

    // The hub goes away: connections cut, new ones refused.
    relay.block(true);
    relay.cut();
    let receipts: Vec<_> = (0..5)
        .map(|i| {
            device
                .hub()
                .try_send(Message::new(format!("during {i}")))
                .unwrap()
        })
        .collect();
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        let event = tokio::time::timeout(LIMIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let LifecycleEvent::Reprovisioning { reason, .. } = event {
            reasons.push(reason);
        }
    }
    assert_eq!(
        reasons[0],
        ReprovisionReason::HubUnreachable { attempts: 3 },
        "{reasons:?}"
    );
    assert!(emu.device_requests(&id) > requests, "provisioned again");

    // The hub comes back: the device connects, and everything queued arrives, once.
    relay.block(false);
    until_connected(&mut events).await;
    for receipt in receipts {
        tokio::time::timeout(LIMIT, receipt).await.unwrap().unwrap();
    }
    let got = telemetry(&emu, &id);
    let expected: Vec<String> = (0..5).map(|i| format!("during {i}")).collect();
    assert_eq!(got, expected);
    device.close().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_hub_down_then_back_loses_no_telemetry_over_mqtt() {
    hub_down_then_back(Kind::Mqtt).await;
}

#[tokio::test]
async fn a_hub_down_then_back_loses_no_telemetry_over_websocket() {
    hub_down_then_back(Kind::Ws).await;
}
