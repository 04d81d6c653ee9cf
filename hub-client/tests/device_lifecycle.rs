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

async fn issued_certificate(kind: Kind) {
    let emu = TestEmulator::start().await;
    let id = format!("issued-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = std::sync::Arc::new(
        dps_auth::RenewableIdentity::open(&id, dir.path().join("identity.pem")).unwrap(),
    );
    let device = builder(&emu, kind, &id)
        .credential(key)
        .issued_certificate(std::sync::Arc::clone(&identity))
        .store(FileStore::new(dir.path().join("assignment.json")))
        .start()
        .unwrap();
    let seen = until_connected(&mut device.lifecycle_events()).await;
    assert!(
        seen.contains(&LifecycleEvent::CertificateRenewed {
            via: hub_client::device::Issuer::Dps
        }),
        "{seen:?}"
    );
    assert!(
        identity.has_certificate(),
        "installed before the hub connect"
    );
    let record = device.assignment().unwrap();
    assert!(!record.issued_certificate_chain.is_empty());
    device
        .hub()
        .send(Message::new("with the issued certificate"))
        .await
        .unwrap();

    // Renewal where the hub does not issue (the default policy when asked directly without
    // a hub renewal policy): by provisioning again with a CSR for a new key.
    let mut events = device.lifecycle_events();
    device.renew_certificate().unwrap();
    let queued = device
        .hub()
        .try_send(Message::new("across the renewal"))
        .unwrap();
    let seen = until_connected(&mut events).await;
    assert!(
        seen.iter().any(|e| matches!(
            e,
            LifecycleEvent::Reprovisioning {
                reason: ReprovisionReason::CertificateRenewal,
                ..
            }
        )),
        "{seen:?}"
    );
    assert!(seen.contains(&LifecycleEvent::CertificateRenewed {
        via: hub_client::device::Issuer::Dps
    }));
    let renewed = device.assignment().unwrap();
    assert_ne!(
        renewed.issued_certificate_chain, record.issued_certificate_chain,
        "a new certificate"
    );
    tokio::time::timeout(LIMIT, queued).await.unwrap().unwrap();
    assert_eq!(
        telemetry(&emu, &id),
        ["with the issued certificate", "across the renewal"]
    );
    device.close().await;

    // The renewed identity is on disk: a restart connects with it, from the cache.
    let reopened = dps_auth::RenewableIdentity::open(&id, dir.path().join("identity.pem")).unwrap();
    assert_eq!(reopened.validity(), identity.validity());
    emu.shutdown().await;
}

#[tokio::test]
async fn the_first_registration_gets_a_certificate_for_the_hub_over_mqtt() {
    issued_certificate(Kind::Mqtt).await;
}

#[tokio::test]
async fn the_first_registration_gets_a_certificate_for_the_hub_over_websocket() {
    issued_certificate(Kind::Ws).await;
}

/// Disabled on the hub: the cached identity is refused, DPS assigns the same (still disabled)
/// device, the hub refuses it again: the device stops and says why, after exactly one
/// registration, instead of provisioning in a loop.
#[tokio::test]
async fn a_disabled_device_is_reported_not_retried() {
    let emu = TestEmulator::start().await;
    let id = "disabled-device";
    let key = emu.enroll_symmetric(id).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assignment.json");
    let device = builder(&emu, Kind::Mqtt, id)
        .credential(key.clone())
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    until_connected(&mut device.lifecycle_events()).await;
    device.close().await;
    let mut identity = emu.device(emu.hub(), id).unwrap();
    identity.status = dps_emulator::model::DeviceStatus::Disabled;
    emu.update_device(emu.hub(), identity, None).await.unwrap();
    let requests = emu.device_requests(id);

    let device = builder(&emu, Kind::Mqtt, id)
        .credential(key)
        .store(FileStore::new(&path))
        .start()
        .unwrap();
    let mut events = device.lifecycle_events();
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(LIMIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        let stopped = matches!(event, LifecycleEvent::Stopped(_));
        seen.push(event);
        if stopped {
            break;
        }
    }
    assert_eq!(
        seen.last(),
        Some(&LifecycleEvent::Stopped(
            hub_client::device::DeviceStopReason::DeviceDisabled { code: 5 }
        )),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, LifecycleEvent::Reprovisioning { .. }))
            .count(),
        1,
        "{seen:?}"
    );
    // Register plus its status polls: one registration's worth, then nothing more.
    let after = emu.device_requests(id);
    assert!(after > requests);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(emu.device_requests(id), after, "no loop");
    assert!(matches!(
        device.hub().send(Message::new("x")).await,
        Err(hub_client::SendError::Closed)
    ));
    emu.shutdown().await;
}

/// Every configuration problem at once, typed, before anything starts.
#[tokio::test]
async fn a_bad_configuration_lists_every_problem() {
    let error = DeviceClient::builder("", "bad id!")
        .payload_json("{not json")
        .start()
        .unwrap_err();
    let hub_client::HubError::Config(config) = &error else {
        panic!("{error}")
    };
    let problems = config.problems();
    assert!(problems.contains(&hub_client::ConfigProblem::EmptyIdScope));
    assert!(problems.contains(&hub_client::ConfigProblem::NoCredential));
    assert!(problems.contains(&hub_client::ConfigProblem::Payload));
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, hub_client::ConfigProblem::RegistrationId(_)))
    );
    let text = error.to_string();
    assert!(
        text.contains("id scope is empty") && text.contains("no credential"),
        "{text}"
    );
}

/// Renewal over the hub's credentials topic, due by itself at a share of the lifetime: 202,
/// then 200 with the new chain, installed with its key, the connection moved to it, no DPS
/// request, telemetry queued across it delivered.
async fn renewed_over_the_hub(kind: Kind) {
    let emu = TestEmulator::start().await;
    emu.set_certificate_lifetime(Duration::from_secs(100))
        .unwrap();
    let id = format!("renewed-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = std::sync::Arc::new(
        dps_auth::RenewableIdentity::open(&id, dir.path().join("identity.pem")).unwrap(),
    );
    let device = builder(&emu, kind, &id)
        .credential(key)
        .issued_certificate(std::sync::Arc::clone(&identity))
        // Due at 3 % of 100 s: three seconds after issuance.
        .renewal(
            hub_client::device::CertificateRenewal::default()
                .at_percent(3)
                .jitter_percent(0),
        )
        .start()
        .unwrap();
    let mut events = device.lifecycle_events();
    let first = until_connected(&mut events).await;
    assert!(first.contains(&LifecycleEvent::CertificateRenewed {
        via: hub_client::device::Issuer::Dps
    }));
    let (issued_from, issued_to) = identity.validity().unwrap();
    assert_eq!(issued_to - issued_from, 100);
    let requests = emu.device_requests(&id);

    let queued = device
        .hub()
        .try_send(Message::new("around the renewal"))
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(LIMIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        let renewed = event
            == LifecycleEvent::CertificateRenewed {
                via: hub_client::device::Issuer::Hub,
            };
        seen.push(event);
        if renewed {
            break;
        }
    }
    assert!(
        first.contains(&LifecycleEvent::CsrNeeded) || seen.contains(&LifecycleEvent::CsrNeeded),
        "{first:?} {seen:?}"
    );
    // The connection moves to the new certificate.
    let after = until_connected(&mut events).await;
    assert!(matches!(
        after.last(),
        Some(LifecycleEvent::Connected { .. })
    ));
    let (renewed_from, _) = identity.validity().unwrap();
    assert!(renewed_from >= issued_from, "a new certificate");
    assert_ne!(
        device.assignment().unwrap().issued_certificate_chain,
        Vec::<String>::new()
    );
    assert_eq!(emu.device_requests(&id), requests, "no DPS request");
    tokio::time::timeout(LIMIT, queued).await.unwrap().unwrap();
    device
        .hub()
        .send(Message::new("on the new certificate"))
        .await
        .unwrap();
    // At least once, in order: a message still in flight when the session moved to the new
    // certificate is sent again on the new connection, and the hub may then have it twice.
    let mut got = telemetry(&emu, &id);
    got.dedup();
    assert_eq!(got, ["around the renewal", "on the new certificate"]);
    device.close().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_certificate_is_renewed_over_the_hub_before_it_expires_over_mqtt() {
    renewed_over_the_hub(Kind::Mqtt).await;
}

#[tokio::test]
async fn a_certificate_is_renewed_over_the_hub_before_it_expires_over_websocket() {
    renewed_over_the_hub(Kind::Ws).await;
}

/// The real host-name layout with full verification: DPS at
/// `global.azure-devices-provisioning.net`, the device assigned to a second linked hub by its
/// own name; every name is connected to at the emulator's address
/// (`TlsConfig::connect_address`) and its certificate verified for that name.
async fn real_host_names(kind: Kind) {
    const DPS_HOST: &str = "global.azure-devices-provisioning.net";
    let emu = TestEmulator::start_with(|c| {
        let mut c = c.linked_hubs([HUB_A, HUB_B]);
        c.hostname = DPS_HOST.into();
        c
    })
    .await;
    let id = format!("named-{kind:?}").to_lowercase();
    let key = emu.enroll_symmetric(&id).await;
    enroll_on(&emu, &id, HUB_B).await;
    let addr = match kind {
        Kind::Mqtt => emu.mqtt_addr(),
        Kind::Ws => emu.https_addr(),
    };
    let tls = emu
        .tls()
        .connect_address(DPS_HOST, addr)
        .connect_address(HUB_A, addr)
        .connect_address(HUB_B, addr);
    let port = addr.port();
    let device = builder(&emu, kind, &id)
        .dps_endpoint(format!("{DPS_HOST}:{port}"))
        .hub_endpoint(move |hub| format!("{hub}:{port}"))
        .tls(tls)
        .credential(key)
        .start()
        .unwrap();
    let seen = until_connected(&mut device.lifecycle_events()).await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, LifecycleEvent::Provisioned { hub, .. } if hub == HUB_B)),
        "{seen:?}"
    );
    device.hub().send(Message::new("by name")).await.unwrap();
    assert_eq!(telemetry_on(&emu, HUB_B, &id), ["by name"]);
    device.close().await;

    // A name the certificate does not cover is refused by the verification, not connected.
    let wrong = builder(&emu, kind, &id)
        .dps_endpoint(format!("not-covered.example:{port}"))
        .tls(emu.tls().connect_address("not-covered.example", addr))
        .credential(SymmetricKey::from_base64(&test_key(9)).unwrap())
        .start()
        .unwrap();
    let mut events = wrong.lifecycle_events();
    let stopped = loop {
        let event = tokio::time::timeout(LIMIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let LifecycleEvent::Stopped(reason) = event {
            break reason;
        }
    };
    assert_eq!(stopped, hub_client::device::DeviceStopReason::Unrecoverable);
    emu.shutdown().await;
}

#[tokio::test]
async fn the_real_host_names_are_verified_over_mqtt() {
    real_host_names(Kind::Mqtt).await;
}

#[tokio::test]
async fn the_real_host_names_are_verified_over_websocket() {
    real_host_names(Kind::Ws).await;
}
