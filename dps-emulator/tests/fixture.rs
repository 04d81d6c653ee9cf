//! #15 item 6: the easy fixture. Constructors and key helpers instead of struct literals, a
//! fixture that owns its directory and hands out what a client needs (used here by a real
//! MQTT-over-TLS registration), the sample config file, and a busy port named in the error.

mod common;

use common::*;
use dps_emulator::model::{AttestationType, EnrollmentGroup, IndividualEnrollment};
use dps_emulator::{ConfigFile, EmulatorConfig, EmulatorError, EmulatorFixture};

#[tokio::test]
async fn fixture_credentials_provision_a_device_and_the_directory_goes_with_it() {
    let emu = EmulatorFixture::start_with(|c| c.behaviour(fast()))
        .await
        .unwrap();
    let dir = emu.data_dir().to_path_buf();
    assert!(dir.join("ca.pem").exists());

    let device = emu.enroll_symmetric_key("fixture-dev").await.unwrap();
    assert_eq!(device.endpoints.id_scope, emu.id_scope());
    assert_eq!(
        device.endpoints.mqtt_endpoint,
        format!("localhost:{}", emu.mqtt_addr().port())
    );
    assert_eq!(&device.endpoints.ca_der, emu.ca_der());
    let shown = format!("{device:?}");
    assert!(!shown.contains(&device.symmetric_key), "{shown}");

    // The handed-out key really provisions the device.
    let mut conn = sas_device(&emu, "fixture-dev", &device.symmetric_key).await;
    let state = conn.provision_ok().await.registration_state.unwrap();
    assert_eq!(state.assigned_hub.as_deref(), Some(emu.default_hub()));

    // A device of a group: the group is created once, each key derived from its group key.
    let first = emu.enroll_group_device("fleet", "fleet-1").await.unwrap();
    let second = emu.enroll_group_device("fleet", "fleet-2").await.unwrap();
    let group = emu.enrollment_group("fleet").unwrap();
    let group_key = group.primary_key().unwrap();
    assert_eq!(first.symmetric_key, derived(group_key, "fleet-1"));
    assert_eq!(second.symmetric_key, derived(group_key, "fleet-2"));
    let mut conn = sas_device(&emu, "fleet-2", &second.symmetric_key).await;
    assert!(conn.provision_ok().await.registration_state.is_some());

    // An X.509 group has no key to hand out: a typed error, not a panic.
    emu.put_enrollment_group(EnrollmentGroup::x509("certs", self_signed("ca").pem), None)
        .await
        .unwrap();
    assert!(matches!(
        emu.enroll_group_device("certs", "d").await,
        Err(dps_emulator::FixtureError::NoSymmetricKey(_))
    ));

    emu.shutdown().await;
    assert!(!dir.exists(), "the fixture removes its directory");
}

#[tokio::test]
async fn constructors_build_what_the_service_takes() {
    let emu = EmulatorFixture::start().await.unwrap();
    let stored = emu
        .put_enrollment(IndividualEnrollment::symmetric_key("ctor-1"), None)
        .await
        .unwrap();
    assert_eq!(
        stored.settings.attestation.kind,
        AttestationType::SymmetricKey
    );
    assert!(stored.primary_key().is_some_and(|k| !k.is_empty()));

    let leaf = self_signed("ctor-x509");
    let stored = emu
        .put_enrollment(IndividualEnrollment::x509("ctor-x509", &leaf.pem), None)
        .await
        .unwrap();
    assert_eq!(stored.settings.attestation.kind, AttestationType::X509);
    assert!(stored.primary_key().is_none());
    // The certificate is recognised: the device connects with it and is assigned.
    let mut conn = x509_device(&emu, "ctor-x509", &leaf).await.unwrap();
    assert!(conn.provision_ok().await.registration_state.is_some());

    let group = emu
        .put_enrollment_group(
            EnrollmentGroup::symmetric_key("g").with_iot_hubs([emu.default_hub()]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        group.device_key("dev-9").unwrap(),
        derived(group.primary_key().unwrap(), "dev-9")
    );
    // The same JSON a service client would send.
    assert_eq!(
        serde_json::to_value(IndividualEnrollment::symmetric_key("a")).unwrap(),
        serde_json::json!({
            "registrationId": "a",
            "attestation": {"type": "symmetricKey", "symmetricKey": {}},
            "provisioningStatus": "enabled"
        })
    );
    emu.shutdown().await;
}

/// The documented sample config loads and does what its comments say.
#[tokio::test]
async fn the_sample_config_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("emulator.sample.toml");
    let file = ConfigFile::load(&path).unwrap();
    assert_eq!(file.linked_hubs, ["localhost", "hub-b.azure-devices.net"]);
    assert_eq!(file.behaviour, dps_emulator::Behaviour::default());
    let emu = EmulatorFixture::start_with(|mut c: EmulatorConfig| {
        c.file = file;
        c
    })
    .await
    .unwrap();
    let generated = emu.enrollment("sample-device-1").unwrap();
    assert!(generated.primary_key().is_some());
    let fixed = emu.enrollment("sample-device-2").unwrap();
    assert_eq!(
        fixed.primary_key(),
        Some("c2FtcGxlLXByaW1hcnkta2V5LTAxMjM0NTY3ODk=")
    );
    let mut conn = sas_device(&emu, "sample-device-2", fixed.primary_key().unwrap()).await;
    let state = conn.provision_ok().await.registration_state.unwrap();
    assert_eq!(
        state.assigned_hub.as_deref(),
        Some("hub-b.azure-devices.net")
    );
    assert!(
        emu.enrollment_group("sample-fleet")
            .unwrap()
            .primary_key()
            .is_some()
    );
    emu.shutdown().await;
}

/// A busy port is named in the error, with the flag that picks another.
#[tokio::test]
async fn a_busy_port_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = EmulatorFixture::start_with(|mut c: EmulatorConfig| {
        c.mqtt_port = port;
        c
    })
    .await
    .unwrap_err();
    assert!(matches!(error, EmulatorError::Listen(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("--mqtt-port"), "{text}");
}
