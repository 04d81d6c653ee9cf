//! The device lifecycle paths the emulator plays (#12), over real MQTT-over-TLS connections
//! and the REST API: a device moved to another hub (service-behaviour.md §1.12), deleted or
//! disabled on its hub (CONNACK 5, §3.4), keys rotated on the service side, and hubs that
//! refuse with a chosen CONNACK code or are unreachable for a while.

mod common;

use std::time::{Duration, Instant};

use common::hub::*;
use common::*;
use dps_core::dps::Substatus;
use dps_emulator::model::DeviceStatus;
use dps_emulator::{Emulator, HubFaults, KeySlot};
use rumqttc::mqttbytes::v4::ConnectReturnCode;
use serde_json::{Value, json};

const HUB_A: &str = "hub-a.localhost";
const HUB_B: &str = "hub-b.localhost";

async fn two_hubs() -> TestEmulator {
    start_with(|c| c.linked_hubs([HUB_A, HUB_B])).await
}

/// Registers over DPS with `key`; the assigned hub, device id and substatus.
async fn provision_with(
    emu: &Emulator,
    registration_id: &str,
    key: &str,
) -> (String, String, Option<Substatus>) {
    let mut dps = sas_device(emu, registration_id, key).await;
    let state = dps.provision_ok().await.registration_state.unwrap();
    (
        state.assigned_hub.unwrap(),
        state.device_id.unwrap(),
        state.substatus,
    )
}

/// CONNECT to `hub` as `device_id` with a SAS token signed with `key`.
async fn connect_hub(
    emu: &Emulator,
    hub: &str,
    device_id: &str,
    key: &str,
) -> Result<Conn, ConnectReturnCode> {
    let token = hub_sas(key, hub, device_id);
    hub_connect(emu, hub, device_id, None, Some(token), None).await
}

/// A hub CONNECT that must get no CONNACK at all (the hub is unreachable).
async fn connect_gets_no_connack(emu: &Emulator, hub: &str, device_id: &str, key: &str) -> bool {
    let packet = hub_connect_packet(
        device_id,
        &hub_username(hub, device_id, None),
        Some(&hub_sas(key, hub, device_id)),
        60,
        true,
    );
    matches!(
        connect_raw(emu, None, &packet).await,
        ConnectOutcome::Closed
    )
}

/// An emulator-only REST call with an `iothubowner` token.
async fn hub_rest(emu: &Emulator, method: &str, path: &str, body: Option<Value>) -> HttpReply {
    hub_service(emu, method, path, body.as_ref(), &[]).await
}

// ---------------------------------------------------------------------------------------------
// Moved to another hub

#[tokio::test]
async fn a_moved_device_is_refused_by_its_old_hub_and_provisioned_to_the_new_one() {
    let emu = two_hubs().await;
    let primary = key(1, 32);
    let pinned = json!({ "allocationPolicy": "static", "iotHubHostName": HUB_A });
    emu.put_enrollment(
        enrollment(with(sym_enrollment("mover", &primary, &key(2, 32)), pinned)),
        None,
    )
    .await
    .unwrap();
    let (hub, device_id, substatus) = provision_with(&emu, "mover", &primary).await;
    assert_eq!(
        (hub.as_str(), substatus),
        (HUB_A, Some(Substatus::InitialAssignment))
    );
    emu.patch_desired(HUB_A, &device_id, json!({ "color": "red" }))
        .await
        .unwrap();
    let mut live = connect_hub(&emu, HUB_A, &device_id, &primary)
        .await
        .unwrap();

    assert_eq!(
        emu.move_device("mover", HUB_B).await.unwrap().as_deref(),
        Some(HUB_A)
    );
    assert!(
        live.is_closed_within(STEP).await,
        "the old hub drops the moved device"
    );
    // With its cached assignment the device is refused: deleted from that hub.
    assert_eq!(
        connect_hub(&emu, HUB_A, &device_id, &primary).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );

    // It provisions again and lands on the new hub, twin migrated (the default policy).
    let (hub, device_id, substatus) = provision_with(&emu, "mover", &primary).await;
    assert_eq!(
        (hub.as_str(), substatus),
        (HUB_B, Some(Substatus::DeviceDataMigrated))
    );
    assert!(connect_hub(&emu, HUB_B, &device_id, &primary).await.is_ok());
    assert_eq!(
        emu.twin(HUB_B, &device_id).unwrap().properties.desired["color"],
        "red"
    );
    assert!(emu.device(HUB_A, &device_id).is_err(), "gone from hub A");
    assert_eq!(
        emu.registration("mover").unwrap().assigned_hub.as_deref(),
        Some(HUB_B)
    );

    // The same through the REST API, back to hub A.
    let reply = service(
        &emu,
        "POST",
        "/emulator/registrations/mover/move",
        Some(&json!({ "iotHubHostName": HUB_A })),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["from"], HUB_B);
    assert_eq!(
        connect_hub(&emu, HUB_B, &device_id, &primary).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let (hub, _, _) = provision_with(&emu, "mover", &primary).await;
    assert_eq!(hub, HUB_A);

    // An unknown hub is refused.
    let reply = service(
        &emu,
        "POST",
        "/emulator/registrations/mover/move",
        Some(&json!({ "iotHubHostName": "elsewhere.localhost" })),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
}

#[tokio::test]
async fn reprovision_policies_decide_where_a_moved_device_lands() {
    let emu = two_hubs().await;
    let primary = key(3, 32);
    let cases = [
        // Re-provision and reset to the initial config.
        (
            "reset",
            json!({ "updateHubAssignment": true, "migrateDeviceData": false }),
            HUB_B,
            Substatus::DeviceDataReset,
            None,
        ),
        // Never re-provision: DPS puts it back where it was.
        (
            "never",
            json!({ "updateHubAssignment": false, "migrateDeviceData": false }),
            HUB_A,
            Substatus::InitialAssignment,
            Some("red"),
        ),
    ];
    for (id, policy, lands_on, substatus, color) in cases {
        let extra = json!({
            "allocationPolicy": "static", "iotHubHostName": HUB_A, "reprovisionPolicy": policy,
            "initialTwin": { "properties": { "desired": { "color": "blue" } } },
        });
        emu.put_enrollment(
            enrollment(with(sym_enrollment(id, &primary, &key(4, 32)), extra)),
            None,
        )
        .await
        .unwrap();
        let (hub, device_id, _) = provision_with(&emu, id, &primary).await;
        assert_eq!(hub, HUB_A);
        emu.patch_desired(HUB_A, &device_id, json!({ "color": "red" }))
            .await
            .unwrap();
        emu.move_device(id, HUB_B).await.unwrap();
        assert_eq!(
            connect_hub(&emu, HUB_A, &device_id, &primary).await.err(),
            Some(ConnectReturnCode::NotAuthorized),
            "{id}"
        );
        let (hub, device_id, got) = provision_with(&emu, id, &primary).await;
        assert_eq!((hub.as_str(), got), (lands_on, Some(substatus)), "{id}");
        assert!(connect_hub(&emu, &hub, &device_id, &primary).await.is_ok());
        let desired = emu.twin(&hub, &device_id).unwrap().properties.desired;
        assert_eq!(desired["color"], color.unwrap_or("blue"), "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Deleted or disabled on the hub

#[tokio::test]
async fn deleting_or_disabling_a_connected_device_drops_it_and_connack_refuses_with_5() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-gone").await;

    let mut live = connect_hub(&emu, &hub, "dev-gone", &key).await.unwrap();
    emu.set_device_status(&hub, "dev-gone", DeviceStatus::Disabled, Some("stolen"))
        .await
        .unwrap();
    assert!(live.is_closed_within(STEP).await, "disabling drops it");
    assert_eq!(
        connect_hub(&emu, &hub, "dev-gone", &key).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    emu.set_device_status(&hub, "dev-gone", DeviceStatus::Enabled, None)
        .await
        .unwrap();
    let mut live = connect_hub(&emu, &hub, "dev-gone", &key).await.unwrap();

    emu.delete_device(&hub, "dev-gone", None).await.unwrap();
    assert!(live.is_closed_within(STEP).await, "deleting drops it");
    assert_eq!(
        connect_hub(&emu, &hub, "dev-gone", &key).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

// ---------------------------------------------------------------------------------------------
// Keys regenerated

#[tokio::test]
async fn regenerated_enrollment_keys_refuse_the_old_primary_and_keep_the_secondary() {
    let emu = start().await;
    let (primary, secondary) = (key(5, 64), key(6, 64));
    emu.put_enrollment(
        enrollment(sym_enrollment("rotated", &primary, &secondary)),
        None,
    )
    .await
    .unwrap();
    let dps_connect = |key: String| {
        let emu = &emu;
        async move {
            connect(
                emu,
                "rotated",
                &username(emu.id_scope(), "rotated", API),
                Some(sas(&key, emu.id_scope(), "rotated")),
                None,
            )
            .await
            .err()
        }
    };
    let (hub, device_id, _) = provision_with(&emu, "rotated", &primary).await;

    let keys = emu
        .regenerate_enrollment_keys("rotated", KeySlot::Primary)
        .await
        .unwrap()
        .symmetric_key
        .unwrap();
    let new_primary = keys.primary_key.unwrap();
    assert_ne!(new_primary, primary);
    assert_eq!(keys.secondary_key.as_deref(), Some(secondary.as_str()));
    // DPS refuses the old primary at CONNECT (its MQTT form of 401), takes the secondary.
    assert_eq!(
        dps_connect(primary.clone()).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    provision_with(&emu, "rotated", &secondary).await;
    provision_with(&emu, "rotated", &new_primary).await;
    // The re-registration wrote the new keys to the hub identity.
    assert_eq!(
        connect_hub(&emu, &hub, &device_id, &primary).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert!(
        connect_hub(&emu, &hub, &device_id, &new_primary)
            .await
            .is_ok()
    );

    // Through REST: the secondary this time.
    let reply = service(
        &emu,
        "POST",
        "/emulator/enrollments/rotated/regenerateKeys",
        Some(&json!({ "key": "secondary" })),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["symmetricKey"]["primaryKey"], new_primary);
    assert_eq!(
        dps_connect(secondary.clone()).await,
        Some(ConnectReturnCode::NotAuthorized)
    );
    let reply = service(
        &emu,
        "POST",
        "/emulator/enrollments/nobody/regenerateKeys",
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, 404, "{reply:?}");
}

#[tokio::test]
async fn regenerated_group_and_hub_identity_keys() {
    let emu = start().await;
    let group_key = key(7, 64);
    emu.put_enrollment_group(group(sym_group("fleet", &group_key, &key(8, 64))), None)
        .await
        .unwrap();
    let member = derived(&group_key, "member-1");
    provision_with(&emu, "member-1", &member).await;
    let reply = service(
        &emu,
        "POST",
        "/emulator/enrollmentGroups/fleet/regenerateKeys",
        None,
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let new_group_key = reply.json()["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_group_key, group_key);
    let refused = connect(
        &emu,
        "member-1",
        &username(emu.id_scope(), "member-1", API),
        Some(sas(&member, emu.id_scope(), "member-1")),
        None,
    )
    .await
    .err();
    assert_eq!(refused, Some(ConnectReturnCode::NotAuthorized));
    provision_with(&emu, "member-1", &derived(&new_group_key, "member-1")).await;

    // A hub identity's keys, through the handle and REST.
    let hub = emu.default_hub().to_owned();
    let old = create_sas_device(&emu, "hub-keys").await;
    let mut live = connect_hub(&emu, &hub, "hub-keys", &old).await.unwrap();
    let device = emu
        .regenerate_device_keys(&hub, "hub-keys", KeySlot::Both)
        .await
        .unwrap();
    assert!(live.is_closed_within(STEP).await, "new credentials drop it");
    let keys = device.authentication.symmetric_key.unwrap();
    assert_eq!(
        connect_hub(&emu, &hub, "hub-keys", &old).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let secondary = keys.secondary_key.unwrap();
    assert!(
        connect_hub(&emu, &hub, "hub-keys", &secondary)
            .await
            .is_ok()
    );
    let reply = hub_rest(
        &emu,
        "POST",
        &format!("/emulator/hubs/{hub}/devices/hub-keys/regenerateKeys"),
        Some(json!({ "key": "secondary" })),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json()["authentication"]["symmetricKey"]["primaryKey"],
        keys.primary_key.unwrap()
    );
    assert_eq!(
        connect_hub(&emu, &hub, "hub-keys", &secondary).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

// ---------------------------------------------------------------------------------------------
// Hub faults

#[tokio::test]
async fn a_hub_refuses_with_a_chosen_connack_code() {
    let emu = two_hubs().await;
    let device = DeviceIdentityKey::create(&emu, HUB_A, "refused").await;
    emu.refuse_hub_connections(HUB_A, 3, Some(2)).unwrap();
    for _ in 0..2 {
        assert_eq!(
            device.connect(&emu).await.err(),
            Some(ConnectReturnCode::ServiceUnavailable)
        );
    }
    assert!(device.connect(&emu).await.is_ok(), "the count ran out");

    // Through REST: every CONNECT refused with 5 until cleared; the other hub is not affected.
    let path = format!("/emulator/hubs/{HUB_A}/faults");
    let reply = hub_rest(
        &emu,
        "PUT",
        &path,
        Some(json!({ "refuseConnect": { "returnCode": 5 } })),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["refuseConnect"]["returnCode"], 5);
    assert_eq!(
        device.connect(&emu).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let other = DeviceIdentityKey::create(&emu, HUB_B, "refused").await;
    assert!(other.connect(&emu).await.is_ok());
    let reply = hub_rest(&emu, "PUT", &path, Some(json!({}))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(device.connect(&emu).await.is_ok());

    let bad = hub_rest(
        &emu,
        "PUT",
        &path,
        Some(json!({ "refuseConnect": { "returnCode": 0 } })),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(emu.refuse_hub_connections("nowhere", 5, None).is_err());
}

#[tokio::test]
async fn a_hub_is_unreachable_for_a_while_then_back() {
    let emu = two_hubs().await;
    let device = DeviceIdentityKey::create(&emu, HUB_A, "outage").await;
    let mut live = device.connect(&emu).await.unwrap();
    let mut other = DeviceIdentityKey::create(&emu, HUB_B, "outage")
        .await
        .connect(&emu)
        .await
        .unwrap();

    let down_for = Duration::from_millis(1500);
    let since = Instant::now();
    emu.make_hub_unreachable(HUB_A, down_for).unwrap();
    assert!(
        live.is_closed_within(STEP).await,
        "the hub's connections drop"
    );
    assert!(connect_gets_no_connack(&emu, HUB_A, "outage", &device.key).await);
    let left = emu.hub_faults(HUB_A).unwrap().unreachable_for_ms.unwrap();
    assert!(left <= 1500, "{left}");
    // The other hub and DPS, on the same port, are up.
    assert!(!other.is_closed_within(Duration::from_millis(100)).await);
    let dps_key = key(9, 32);
    emu.put_enrollment(
        enrollment(sym_enrollment("during-outage", &dps_key, &key(10, 32))),
        None,
    )
    .await
    .unwrap();
    provision_with(&emu, "during-outage", &dps_key).await;

    // Back once the time is over.
    tokio::time::sleep(down_for.saturating_sub(since.elapsed()) + Duration::from_millis(50)).await;
    assert!(device.connect(&emu).await.is_ok());
    assert_eq!(emu.hub_faults(HUB_A).unwrap(), HubFaults::default());

    // Through REST, and back at once when cleared.
    let path = format!("/emulator/hubs/{HUB_A}/faults");
    let reply = hub_rest(
        &emu,
        "PUT",
        &path,
        Some(json!({ "unreachableForMs": 60_000 })),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.json()["unreachableForMs"].as_u64().unwrap() > 50_000);
    assert!(connect_gets_no_connack(&emu, HUB_A, "outage", &device.key).await);
    let reply = hub_rest(&emu, "GET", &path, None).await;
    assert!(reply.json()["unreachableForMs"].is_u64(), "{reply:?}");
    emu.make_hub_unreachable(HUB_A, Duration::ZERO).unwrap();
    assert!(device.connect(&emu).await.is_ok());
}

/// A SAS device identity created on one hub.
struct DeviceIdentityKey {
    hub: String,
    device_id: String,
    key: String,
}

impl DeviceIdentityKey {
    async fn create(emu: &Emulator, hub: &str, device_id: &str) -> Self {
        let key = key(11, 32);
        emu.create_device(hub, sas_identity(device_id, &key))
            .await
            .unwrap();
        Self {
            hub: hub.to_owned(),
            device_id: device_id.to_owned(),
            key,
        }
    }

    async fn connect(&self, emu: &Emulator) -> Result<Conn, ConnectReturnCode> {
        connect_hub(emu, &self.hub, &self.device_id, &self.key).await
    }
}
