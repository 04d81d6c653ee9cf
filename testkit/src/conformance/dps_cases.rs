//! Cases against the DPS emulator: registration, X.509 chains, refusals, keep-alive.

use std::time::Duration;

use dps_auth::{Credentials, SymmetricKey, X509Identity};
use dps_transport_mqtt::{QoS, TransportError};

use super::harness::*;
use crate::emulator::TestEmulator;
use crate::pki::Ca;

/// Case: SAS register round trip.
pub async fn sas_register_round_trip(setup: Setup) {
    let emulator = TestEmulator::start().await;
    let key = enroll_sas(&emulator, "dev-sas").await;
    let credentials = sas_credentials(&key, emulator.id_scope(), "dev-sas");
    let options = dps_options(&setup, &emulator, "dev-sas", credentials);
    let mut connection = connect(&setup, &options).await;
    assert!(!connection.session_present());
    register(&mut connection, "dev-sas", 1).await;
    assert_eq!(connection.close_reason(), None);
    connection.disconnect().await;
    emulator.shutdown().await;
}

async fn x509_case(setup: Setup, enroll_root: bool) {
    let emulator = TestEmulator::start().await;
    let root = Ca::root("Test Root CA");
    let intermediate = root.intermediate("Test Intermediate CA");
    let leaf = intermediate.leaf("dev-x509");
    let signing = if enroll_root {
        root.pem.clone()
    } else {
        intermediate.pem.clone()
    };
    emulator.enroll_x509_group("group-x509", &signing).await;
    let chain_pem = format!("{}{}", leaf.pem, intermediate.pem);
    let identity = X509Identity::from_pem(chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    assert_eq!(identity.chain_len(), 2);
    let options = dps_options(&setup, &emulator, "dev-x509", Credentials::X509(identity));
    let mut connection = connect(&setup, &options).await;
    register(&mut connection, "dev-x509", 7).await;
    connection.disconnect().await;
    emulator.shutdown().await;
}

/// Case: X.509 chain via intermediate group.
pub async fn x509_chain_via_intermediate_group(setup: Setup) {
    x509_case(setup, false).await;
}

/// The group trusts only the root, so the intermediate must come from the client's chain.
pub async fn x509_full_chain_is_presented(setup: Setup) {
    x509_case(setup, true).await;
}

/// Case: wrong key is refused with code 5.
pub async fn wrong_key_is_refused_with_code_5(setup: Setup) {
    let emulator = TestEmulator::start().await;
    enroll_sas(&emulator, "dev-wrong").await;
    let other = SymmetricKey::from_base64("b3RoZXIta2V5").unwrap();
    let credentials = sas_credentials(&other, emulator.id_scope(), "dev-wrong");
    let options = dps_options(&setup, &emulator, "dev-wrong", credentials);
    let error = connect_err(&setup, &options).await;
    assert_eq!(error, TransportError::Refused { code: 5 });
    assert!(error.is_credentials());
    assert!(!error.is_retriable());
    emulator.shutdown().await;
}

/// Case: QoS 2 is unsupported and never sent.
pub async fn qos2_is_unsupported_and_never_sent(setup: Setup) {
    let emulator = TestEmulator::start().await;
    let key = enroll_sas(&emulator, "dev-q2").await;
    let credentials = sas_credentials(&key, emulator.id_scope(), "dev-q2");
    let options = dps_options(&setup, &emulator, "dev-q2", credentials);
    let mut connection = connect(&setup, &options).await;
    let error = connection
        .publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
            "{}",
            QoS::ExactlyOnce,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Unsupported(_)), "{error:?}");
    let error = connection
        .subscribe(&[(REGISTER_FILTER, QoS::ExactlyOnce)])
        .await
        .unwrap_err();
    assert!(matches!(error, TransportError::Unsupported(_)), "{error:?}");
    // The emulator closes on a QoS 2 publish, so the connection still working proves nothing
    // was sent.
    register(&mut connection, "dev-q2", 2).await;
    connection.disconnect().await;
    emulator.shutdown().await;
}

/// Case: keep alive pings keep an idle connection open.
pub async fn keep_alive_pings_keep_an_idle_connection_open(setup: Setup) {
    let emulator = TestEmulator::start().await;
    let key = enroll_sas(&emulator, "dev-idle").await;
    let credentials = sas_credentials(&key, emulator.id_scope(), "dev-idle");
    let options = dps_options(&setup, &emulator, "dev-idle", credentials)
        .with_keep_alive(Duration::from_secs(1));
    let mut connection = connect(&setup, &options).await;
    // The emulator drops connections silent for 1.5 × keep-alive.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(connection.close_reason(), None);
    register(&mut connection, "dev-idle", 3).await;
    connection.disconnect().await;
    emulator.shutdown().await;
}
