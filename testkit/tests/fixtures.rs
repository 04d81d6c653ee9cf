//! The kit's own checks: the fixtures really enroll what they say, and the test PKI builds
//! chains that a real verifier (rustls' webpki) accepts.

use std::sync::Arc;

use dps_emulator::model::AttestationType;
use dps_testkit::emulator::{TestEmulator, test_key};
use dps_testkit::pki::{self, Ca};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{ServerName, UnixTime};

#[tokio::test]
async fn symmetric_enrollment_hands_back_the_stored_key() {
    let emu = TestEmulator::start().await;
    let key = emu.enroll_symmetric("kit-sym").await;
    let stored = emu.enrollment("kit-sym").unwrap();
    let primary = stored
        .settings
        .attestation
        .symmetric_key
        .unwrap()
        .primary_key;
    assert_eq!(primary.as_deref(), Some(key.to_base64().as_str()));
    assert!(emu.dps_endpoint().starts_with("localhost:"));
    assert_eq!(emu.dps_endpoint(), emu.hub_endpoint());
    assert_ne!(emu.mqtt_endpoint(), emu.https_endpoint());
}

#[tokio::test]
async fn group_enrollment_hands_back_the_stored_key() {
    let emu = TestEmulator::start().await;
    let key = emu.enroll_group("kit-group").await;
    let stored = emu.enrollment_group("kit-group").unwrap();
    let primary = stored
        .settings
        .attestation
        .symmetric_key
        .unwrap()
        .primary_key;
    // The group key never shows itself: compare what both derive for one device.
    let stored = dps_auth::GroupKey::from_base64(&primary.unwrap()).unwrap();
    assert_eq!(
        stored.derive("dev-1").unwrap().to_base64(),
        key.derive("dev-1").unwrap().to_base64()
    );
}

#[tokio::test]
async fn x509_enrollment_holds_the_device_certificate() {
    let emu = TestEmulator::start().await;
    let device = emu.enroll_x509("kit-x509").await;
    let stored = emu.enrollment("kit-x509").unwrap();
    assert_eq!(stored.settings.attestation.kind, AttestationType::X509);
    let info = stored
        .settings
        .attestation
        .x509
        .unwrap()
        .client_certificates
        .unwrap()
        .primary
        .unwrap()
        .info
        .unwrap();
    assert_eq!(info.sha256_thumbprint, Some(device.thumbprint()));
    let identity = device.identity(&[]);
    assert_eq!(identity.registration_id().unwrap(), "kit-x509");
    assert_eq!(identity.chain_len(), 1);
}

#[tokio::test]
async fn hub_devices_and_modules_get_the_returned_keys() {
    let emu = TestEmulator::start().await;
    let device_key = emu.create_sas_device("kit-dev").await;
    let module_key = emu.create_sas_module("kit-dev", "kit-mod").await;
    assert_eq!(device_key, test_key(7));
    assert_ne!(device_key, module_key);
    let device = emu.device(emu.hub(), "kit-dev").unwrap();
    let stored = device.authentication.symmetric_key.unwrap().primary_key;
    assert_eq!(stored.as_deref(), Some(device_key.as_str()));
    let module = emu.module(emu.hub(), "kit-dev", "kit-mod").unwrap();
    let stored = module.authentication.symmetric_key.unwrap().primary_key;
    assert_eq!(stored.as_deref(), Some(module_key.as_str()));
}

#[test]
fn a_server_chain_through_an_intermediate_verifies_against_the_root() {
    let root = Ca::root("Kit Root");
    let intermediate = root.intermediate("Kit Intermediate");
    let server = intermediate.server(&["localhost"], None);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.der.clone()).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let now = UnixTime::now();
    let chain = [intermediate.der.clone()];
    assert!(
        verifier
            .verify_server_cert(&server.der(), &chain, &name, &[], now)
            .is_ok()
    );
    // Without the intermediate, or for another name, it must not verify.
    assert!(
        verifier
            .verify_server_cert(&server.der(), &[], &name, &[], now)
            .is_err()
    );
    let other = ServerName::try_from("other.example").unwrap();
    assert!(
        verifier
            .verify_server_cert(&server.der(), &chain, &other, &[], now)
            .is_err()
    );
}

#[test]
fn device_identities_carry_the_presented_chain() {
    let root = Ca::root("Kit Root");
    let intermediate = root.intermediate("Kit Intermediate");
    let leaf = intermediate.leaf("kit-device");
    let identity = leaf.identity(&[&intermediate.pem]);
    assert_eq!(identity.chain_len(), 2);
    assert_eq!(identity.registration_id().unwrap(), "kit-device");
    assert_eq!(identity.leaf(), &leaf.der());
    let presented = leaf.clone().presenting(&[&intermediate.der, &root.der]);
    assert_eq!(presented.chain.len(), 3);
    assert_eq!(pki::self_signed("kit-self").thumbprint().len(), 64);
    let (csr, _key) = pki::csr("kit-csr");
    assert!(!csr.is_empty());
    assert_eq!(pki::hex(&[0x0a, 0xff]), "0AFF");
}
