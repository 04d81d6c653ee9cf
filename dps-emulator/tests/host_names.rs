//! #15 item 2: the real host-name layout. DPS answers at `global.azure-devices-provisioning.net`
//! and each linked hub at its own `{name}.azure-devices.net`; devices provisioned across several
//! linked hubs connect to their hub with full host-name verification (SNI plus the certificate's
//! subject alternative names, checked by rustls' WebPKI verifier). The names resolve to the
//! emulator's loopback address, as a test's `/etc/hosts` entry would make them.

mod common;

use std::collections::BTreeSet;

use common::hub::*;
use common::*;
use dps_emulator::EmulatorConfig;

const DPS_HOST: &str = "global.azure-devices-provisioning.net";
const HUBS: [&str; 3] = [
    "hub-a.azure-devices.net",
    "hub-b.azure-devices.net",
    "hub-c.azure-devices.net",
];

async fn connect_to(emu: &dps_emulator::Emulator, name: &str, packet: &[u8]) -> Conn {
    match connect_raw_named(emu, name, None, packet).await {
        ConnectOutcome::Accepted(conn) => *conn,
        ConnectOutcome::Refused(code) => panic!("CONNECT to {name} refused: {code:?}"),
        ConnectOutcome::Closed => panic!("{name} closed without CONNACK"),
    }
}

#[tokio::test]
async fn devices_provisioned_across_linked_hubs_connect_with_host_name_checks() {
    let emu = TestEmulator::start_with(|config: EmulatorConfig| {
        let mut config = config.behaviour(fast()).linked_hubs(HUBS);
        config.hostname = DPS_HOST.into();
        config
    })
    .await;
    let group_key = key(3, 64);
    emu.put_group_value(sym_group("fleet", &group_key, &key(4, 64)))
        .await;

    // Hashed allocation over three hubs: register until every hub has a device.
    let scope = emu.id_scope().to_owned();
    let mut assigned = Vec::new();
    for i in 0..40 {
        let registration_id = format!("dev-{i}");
        let device_key = derived(&group_key, &registration_id);
        let packet = connect_packet(
            &registration_id,
            &username(&scope, &registration_id, API),
            Some(&sas(&device_key, &scope, &registration_id)),
        );
        let mut conn = connect_to(&emu, DPS_HOST, &packet).await;
        conn.subscribe_dps().await;
        let state = conn.provision_ok().await.registration_state.unwrap();
        let hub = state.assigned_hub.unwrap();
        assert!(HUBS.contains(&hub.as_str()), "{hub}");
        assigned.push((registration_id, device_key, hub));
        let hubs: BTreeSet<&str> = assigned.iter().map(|(_, _, h)| h.as_str()).collect();
        if hubs.len() == HUBS.len() {
            break;
        }
    }
    let hubs: BTreeSet<&str> = assigned.iter().map(|(_, _, h)| h.as_str()).collect();
    assert_eq!(hubs.len(), HUBS.len(), "every linked hub got a device");

    // Each device connects to the hub it was assigned to, by that hub's name.
    for (device_id, device_key, hub) in &assigned {
        let packet = hub_connect_packet(
            &client_id(device_id, None),
            &hub_username(hub, device_id, None),
            Some(&hub_sas(device_key, hub, device_id)),
            60,
            true,
        );
        let mut conn = connect_to(&emu, hub, &packet).await;
        conn.telemetry(device_id, "", b"hello").await;
    }

    // A name the emulator does not serve fails verification: the check is real.
    let refused = tls_named(&emu, emu.mqtt_addr(), "hub-z.azure-devices.net", None).await;
    let error = refused.expect_err("an unknown host name is refused");
    assert!(
        error.to_string().contains("NotValidForName")
            || error.to_string().to_lowercase().contains("not valid for"),
        "{error}"
    );
}

/// A hub linked after the first start is covered at the next start (the certificate is
/// re-issued for the new name set), while the CA devices trust stays the same.
#[tokio::test]
async fn a_hub_linked_later_is_covered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |hubs: Vec<&'static str>| {
        let config = EmulatorConfig::new(dir.path())
            .behaviour(fast())
            .linked_hubs(hubs);
        dps_emulator::Emulator::start(config)
    };
    let emu = start(vec![HUBS[0]]).await.unwrap();
    let ca = emu.ca_der().clone();
    assert!(
        tls_named(&emu, emu.mqtt_addr(), HUBS[1], None)
            .await
            .is_err()
    );
    emu.shutdown().await;

    let emu = start(vec![HUBS[0], HUBS[1]]).await.unwrap();
    assert_eq!(emu.ca_der(), &ca, "devices keep trusting the same CA");
    for name in [HUBS[0], HUBS[1], "localhost"] {
        assert!(
            tls_named(&emu, emu.mqtt_addr(), name, None).await.is_ok(),
            "{name}"
        );
    }
    emu.shutdown().await;
}
