//! The emulated DPS device endpoint over real MQTT-over-TLS connections: the registration flow,
//! authentication (SAS forms, group keys, X.509 chains), enrollment semantics, allocation,
//! reprovisioning, custom allocation, certificate issuance, fault injection, protocol rules,
//! persistence across restarts, and robustness against hostile input.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use dps_auth::SasStyle;
use dps_core::dps::{RegistrationStatus, Substatus};
use dps_core::sas::ResourceEncoding;
use dps_emulator::model::{DeviceStatus, HubAuthType};
use dps_emulator::{
    Behaviour, ConfigError, ConfigFile, Emulator, EmulatorConfig, Faults, InjectStatus, RateLimit,
};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, SubscribeReasonCode};
use serde_json::{Value, json};
use sha1::Digest as _;

const HUBS: [&str; 3] = ["hub-a.local", "hub-b.local", "hub-c.local"];

/// Enrolls `id` with a symmetric key; returns (primary, secondary).
async fn enroll(emu: &Emulator, id: &str) -> (String, String) {
    let (primary, secondary) = (key(1, 64), key(2, 64));
    emu.put_enrollment(enrollment(sym_enrollment(id, &primary, &secondary)), None)
        .await
        .unwrap();
    (primary, secondary)
}

fn sha1_hex(der: &[u8]) -> String {
    hex(&sha1::Sha1::digest(der))
}

fn sha256_hex(der: &[u8]) -> String {
    hex(&sha2::Sha256::digest(der))
}

fn assert_operation_id(id: &str) {
    let parts: Vec<&str> = id.splitn(3, '.').collect();
    assert_eq!(parts.len(), 3, "{id}");
    assert!(
        parts[0].len() == 1 && parts[0].as_bytes()[0].is_ascii_digit(),
        "{id}"
    );
    assert!(
        parts[1].len() == 16 && parts[1].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let uuid = uuid::Uuid::parse_str(parts[2]).unwrap();
    assert_eq!(uuid.hyphenated().to_string(), parts[2], "{id}");
}

fn payload_json(state: &dps_core::dps::DeviceRegistrationResult) -> Option<Value> {
    state
        .payload
        .as_ref()
        .map(|raw| serde_json::from_str(raw.get()).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Registration flow

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_poll_until_assigned_with_the_full_state() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "flow-dev").await;
    emu.set_timing(1, 3);
    let mut dev = sas_device(&emu, "flow-dev", &primary).await;

    let first = dev.register("r1", r#"{"registrationId":"flow-dev"}"#).await;
    assert!(
        first
            .topic
            .starts_with("$dps/registrations/res/202/?$rid=r1&retry-after=1"),
        "{first:?}"
    );
    let response = first.response();
    assert_eq!(
        (response.topic.status, response.topic.retry_after),
        (202, Some(1))
    );
    let body = first.json();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["operationId", "status"], "{first:?}");
    assert_eq!(body["status"], "assigning");
    let operation_id = body["operationId"].as_str().unwrap().to_owned();
    assert_operation_id(&operation_id);

    // Polls while the operation is assigning carry the registration id.
    for rid in ["p1", "p2"] {
        let answer = dev.poll(rid, &operation_id).await;
        assert_eq!(answer.status(), 202, "{answer:?}");
        assert_eq!(answer.response().topic.retry_after, Some(1));
        let op = answer.operation();
        assert_eq!(op.status, RegistrationStatus::Assigning);
        assert_eq!(op.operation_id, operation_id);
        assert_eq!(
            op.registration_state.unwrap().registration_id.as_deref(),
            Some("flow-dev")
        );
    }

    let last = dev.poll("p3", &operation_id).await;
    assert_eq!(last.status(), 200, "{last:?}");
    assert_eq!(last.response().topic.retry_after, None);
    let op = last.operation();
    assert_eq!(op.operation_id, operation_id);
    assert_eq!(op.status, RegistrationStatus::Assigned);
    let state = op.registration_state.unwrap();
    assert_eq!(state.registration_id.as_deref(), Some("flow-dev"));
    assert_eq!(state.assigned_hub.as_deref(), Some("localhost"));
    assert_eq!(state.device_id.as_deref(), Some("flow-dev"));
    assert_eq!(state.status, Some(RegistrationStatus::Assigned));
    assert_eq!(state.substatus, Some(Substatus::InitialAssignment));
    assert_service_time(state.created_date_time_utc.as_deref().unwrap());
    assert_service_time(state.last_updated_date_time_utc.as_deref().unwrap());
    let etag = base64::engine::general_purpose::STANDARD
        .decode(state.etag.as_deref().unwrap())
        .unwrap();
    assert!(
        etag.len() > 2 && etag.starts_with(b"\"") && etag.ends_with(b"\""),
        "{etag:?}"
    );
    assert_eq!(state.symmetric_key.unwrap().enrollment_group_id, None);
    assert!(state.x509.is_none());
    assert!(state.payload.is_none());
    assert!(state.issued_certificate_chain.is_none());
    assert!(last.json()["registrationState"]["symmetricKey"].is_object());

    // A completed operation keeps answering 200.
    assert_eq!(dev.poll("p4", &operation_id).await.status(), 200);

    // The service side recorded the same.
    let record = emu.registration("flow-dev").unwrap();
    assert_eq!(record.assigned_hub.as_deref(), Some("localhost"));
    assert_eq!(record.status, RegistrationStatus::Assigned);
    assert_eq!(record.etag, state.etag);
    let device = emu.hub_device("localhost", "flow-dev").unwrap();
    assert_eq!(device.status, DeviceStatus::Enabled);
    assert_eq!(device.authentication.kind, HubAuthType::Sas);
    assert_eq!(
        device
            .authentication
            .symmetric_key
            .unwrap()
            .primary_key
            .as_deref(),
        Some(primary.as_str())
    );
    assert_eq!(device.registration_id.as_deref(), Some("flow-dev"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_polls_answers_the_register_with_the_result() {
    let emu = start_with(|c| {
        c.behaviour(Behaviour {
            polls_before_assignment: 0,
            ..fast()
        })
    })
    .await;
    let (primary, _) = enroll(&emu, "direct-dev").await;
    let mut dev = sas_device(&emu, "direct-dev", &primary).await;
    let answer = dev.register("1", "").await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.response().topic.retry_after, None);
    let op = answer.operation();
    assert_eq!(op.status, RegistrationStatus::Assigned);
    assert_operation_id(&op.operation_id);
    assert_eq!(
        op.registration_state.unwrap().assigned_hub.as_deref(),
        Some("localhost")
    );

    // The knob can change at run time.
    emu.set_timing(0, 1);
    assert_eq!(dev.register("2", "").await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_operation_ids_get_404() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "op-a").await;
    emu.put_enrollment(
        enrollment(sym_enrollment("op-b", &primary, &key(3, 64))),
        None,
    )
    .await
    .unwrap();
    let mut a = sas_device(&emu, "op-a", &primary).await;
    let mut b = sas_device(&emu, "op-b", &primary).await;

    let answer = a
        .poll(
            "1",
            "4.0bdadb0c47c2d6b4.4a081f01-0000-4000-8000-000000000000",
        )
        .await;
    assert_eq!(answer.status(), 404, "{answer:?}");
    let error = answer.error();
    assert_eq!(error.error_code.0, 404_201);
    assert!(error.tracking_id.is_some() && error.message.is_some());
    assert_service_time(error.timestamp_utc.as_deref().unwrap());

    // Another device's operation is not visible.
    let op_b = b.register("1", "").await.operation().operation_id;
    assert_eq!(a.poll("2", &op_b).await.status(), 404);
    assert_eq!(b.poll("2", &op_b).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_bodies_of_every_sdk_are_accepted() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "body-dev").await;
    let mut dev = sas_device(&emu, "body-dev", &primary).await;
    for body in [
        "",
        " ",
        // Python
        r#"{"payload": null, "registrationId": "body-dev"}"#,
        // C#: only the payload
        r#"{"payload":{"modelId":"dtmi:com:example:thermostat;1"}}"#,
        // Embedded C / Node, ids compare without case
        r#"{"registrationId":"BODY-DEV","payload":{"a":[1,2]}}"#,
    ] {
        let answer = dev.provision(body).await;
        assert_eq!(answer.status(), 200, "body {body:?}: {answer:?}");
        let op = answer.operation();
        assert_eq!(op.status, RegistrationStatus::Assigned, "body {body:?}");
        // Without custom allocation nothing is echoed.
        assert!(op.registration_state.unwrap().payload.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_naming_another_registration_or_not_json_gets_400() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "body-dev").await;
    let mut dev = sas_device(&emu, "body-dev", &primary).await;
    for body in [r#"{"registrationId":"someone-else"}"#, "{not json", "[1,2]"] {
        let answer = dev.register("1", body).await;
        assert_eq!(answer.status(), 400, "{body}: {answer:?}");
        assert_eq!(answer.error().error_code.0, 400_004);
    }
    assert!(emu.registration("body-dev").is_err(), "nothing recorded");
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sas_form_with_either_key_is_accepted() {
    let emu = start().await;
    let id = "sas-dev";
    let (primary, secondary) = enroll(&emu, id).await;
    let scope = emu.id_scope().to_owned();
    let expiry = unix_now() + 600;
    let styles = [
        ("documented", SasStyle::documented_dps()),
        (
            "documented without skn",
            SasStyle::documented_dps().without_key_name(),
        ),
        ("embedded C", SasStyle::embedded_c()),
        ("python", SasStyle::python_dps()),
        ("node raw sr", SasStyle::node_dps()),
        ("node without skn", SasStyle::node_dps().without_key_name()),
        (
            "lower-case encoding",
            SasStyle::documented_dps().with_encoding(ResourceEncoding::Lower),
        ),
    ];
    for key in [&primary, &secondary] {
        for (name, style) in &styles {
            let token = sas_with(key, &scope, id, style, expiry);
            // SDKs append their user agent to the username.
            let user = format!(
                "{}&ClientVersion=azure-iot-device%2F2.14.0",
                username(&scope, id, API)
            );
            let conn = connect(&emu, id, &user, Some(token), None).await;
            assert!(conn.is_ok(), "{name}: {:?}", conn.err());
        }
    }
    // The token forms really differ on the wire.
    let embedded = sas_with(&primary, &scope, id, &SasStyle::embedded_c(), expiry);
    assert!(embedded.contains("%2fregistrations%2f") && !embedded.contains("skn="));
    let node = sas_with(&primary, &scope, id, &SasStyle::node_dps(), expiry);
    assert!(node.contains(&format!("sr={scope}/registrations/{id}&")));

    // And a device so authenticated registers.
    let mut dev = sas_device(&emu, id, &secondary).await;
    assert_eq!(
        dev.provision_ok().await.status,
        RegistrationStatus::Assigned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_with_the_right_connack() {
    let emu = start().await;
    let id = "auth-dev";
    let (primary, _) = enroll(&emu, id).await;
    emu.put_enrollment(
        enrollment(sym_enrollment("other-dev", &primary, &key(9, 64))),
        None,
    )
    .await
    .unwrap();
    let scope = emu.id_scope().to_owned();
    let user = username(&scope, id, API);
    let now = unix_now();
    let not_authorized = ConnectReturnCode::NotAuthorized;
    let cases: Vec<(&str, String, String, Option<String>, ConnectReturnCode)> = vec![
        (
            "wrong key",
            id.into(),
            user.clone(),
            Some(sas(&key(7, 64), &scope, id)),
            not_authorized,
        ),
        (
            "expired token",
            id.into(),
            user.clone(),
            Some(sas_with(
                &primary,
                &scope,
                id,
                &SasStyle::documented_dps(),
                now - 10,
            )),
            not_authorized,
        ),
        (
            "token for another registration",
            id.into(),
            user.clone(),
            Some(sas(&primary, &scope, "other-dev")),
            not_authorized,
        ),
        (
            "token for another scope",
            id.into(),
            user.clone(),
            Some(sas(&primary, "0ne99999999", id)),
            not_authorized,
        ),
        (
            "client id differs from the registration id",
            "other-dev".into(),
            user.clone(),
            Some(sas(&primary, &scope, id)),
            ConnectReturnCode::BadClientId,
        ),
        (
            "wrong id scope",
            id.into(),
            username("0ne99999999", id, API),
            Some(sas(&primary, "0ne99999999", id)),
            not_authorized,
        ),
        (
            "no password and no certificate",
            id.into(),
            user.clone(),
            None,
            not_authorized,
        ),
        (
            "not a SAS token",
            id.into(),
            user.clone(),
            Some("hunter2".into()),
            not_authorized,
        ),
        (
            "username without api-version",
            id.into(),
            format!("{scope}/registrations/{id}/"),
            Some(sas(&primary, &scope, id)),
            ConnectReturnCode::BadClientId,
        ),
    ];
    for (name, client_id, user, password, expected) in cases {
        let result = connect(&emu, &client_id, &user, password, None).await;
        assert_eq!(result.err(), Some(expected), "{name}");
    }
    // The good token still works.
    assert!(
        connect(&emu, id, &user, Some(sas(&primary, &scope, id)), None)
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_derived_keys_are_accepted_and_given_to_the_hub_device() {
    let emu = start().await;
    let (group_primary, group_secondary) = (key(11, 64), key(12, 64));
    emu.put_enrollment_group(
        group(sym_group("sym-group", &group_primary, &group_secondary)),
        None,
    )
    .await
    .unwrap();
    for (id, group_key) in [
        ("grp-dev-1", &group_primary),
        ("grp-dev-2", &group_secondary),
    ] {
        let mut dev = sas_device(&emu, id, &derived(group_key, id)).await;
        let op = dev.provision_ok().await;
        let state = op.registration_state.unwrap();
        assert_eq!(state.device_id.as_deref(), Some(id));
        assert_eq!(
            state.symmetric_key.unwrap().enrollment_group_id.as_deref(),
            Some("sym-group")
        );
        let device = emu.hub_device("localhost", id).unwrap();
        let keys = device.authentication.symmetric_key.unwrap();
        assert_eq!(
            keys.primary_key.as_deref(),
            Some(derived(&group_primary, id).as_str())
        );
        assert_eq!(
            keys.secondary_key.as_deref(),
            Some(derived(&group_secondary, id).as_str())
        );
    }
    // The group key itself is not a device key.
    let id = "grp-dev-3";
    let refused = connect(
        &emu,
        id,
        &username(emu.id_scope(), id, API),
        Some(sas(&group_primary, emu.id_scope(), id)),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(ConnectReturnCode::NotAuthorized));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_registration_connects_and_gets_401_at_register() {
    let emu = start().await;
    let mut dev = sas_device(&emu, "nobody", &key(5, 32)).await;
    let answer = dev.register("1", "").await;
    assert_eq!(answer.status(), 401, "{answer:?}");
    let error = answer.error();
    assert_eq!(error.error_code.0, 401_002);
    assert!(error.tracking_id.is_some());
    assert_service_time(error.timestamp_utc.as_deref().unwrap());
    assert!(emu.registration("nobody").is_err());
}

// ---------------------------------------------------------------------------------------------
// X.509

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_individual_enrollment_with_the_device_certificate() {
    let emu = start().await;
    let identity = self_signed("x509-dev");
    emu.put_enrollment(enrollment(x509_enrollment("x509-dev", &identity.pem)), None)
        .await
        .unwrap();
    let mut dev = x509_device(&emu, "x509-dev", &identity).await.unwrap();
    let op = dev.provision_ok().await;
    let state = op.registration_state.unwrap();
    assert_eq!(state.device_id.as_deref(), Some("x509-dev"));
    assert!(state.symmetric_key.is_none());
    let x509 = state.x509.unwrap();
    assert_eq!(x509.enrollment_group_id, None);
    let info = x509.certificate_info.unwrap();
    assert!(info.subject_name.unwrap().contains("CN=x509-dev"));
    assert_eq!(info.sha1_thumbprint, Some(sha1_hex(&identity.chain[0])));
    assert_eq!(info.sha256_thumbprint, Some(sha256_hex(&identity.chain[0])));
    assert_service_time(info.not_after_utc.as_deref().unwrap());

    let device = emu.hub_device("localhost", "x509-dev").unwrap();
    assert_eq!(device.authentication.kind, HubAuthType::SelfSigned);
    assert_eq!(
        device
            .authentication
            .x509_thumbprint
            .unwrap()
            .primary_thumbprint,
        Some(sha1_hex(&identity.chain[0]))
    );

    // Another certificate with the same CN is not the enrolled one.
    let impostor = self_signed("x509-dev");
    assert_eq!(
        x509_device(&emu, "x509-dev", &impostor).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_group_with_the_intermediate_enrolled() {
    let emu = start().await;
    let root = Ca::root("Test Root");
    let intermediate = root.intermediate("Test Intermediate");
    emu.put_enrollment_group(group(x509_group("inter-group", &intermediate.pem)), None)
        .await
        .unwrap();
    let identity = intermediate
        .leaf("chain-dev-1")
        .presenting(&[&intermediate.der]);
    let mut dev = x509_device(&emu, "chain-dev-1", &identity).await.unwrap();
    let state = dev.provision_ok().await.registration_state.unwrap();
    let x509 = state.x509.unwrap();
    assert_eq!(x509.enrollment_group_id.as_deref(), Some("inter-group"));
    let signing = x509.signing_certificate_info.unwrap();
    assert_eq!(signing.sha1_thumbprint, Some(sha1_hex(&intermediate.der)));
    assert!(signing.subject_name.unwrap().contains("Test Intermediate"));
    assert_eq!(
        x509.certificate_info.unwrap().sha1_thumbprint,
        Some(sha1_hex(&identity.chain[0]))
    );
    let device = emu.hub_device("localhost", "chain-dev-1").unwrap();
    assert_eq!(
        device.authentication.kind,
        HubAuthType::CertificateAuthority
    );

    // The leaf alone also reaches the enrolled intermediate (its issuer).
    let alone = intermediate.leaf("chain-dev-2");
    let mut dev = x509_device(&emu, "chain-dev-2", &alone).await.unwrap();
    assert_eq!(
        dev.provision_ok().await.status,
        RegistrationStatus::Assigned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_group_with_the_root_enrolled() {
    let emu = start().await;
    let root = Ca::root("Enrolled Root");
    let intermediate = root.intermediate("Unenrolled Intermediate");
    emu.put_enrollment_group(group(x509_group("root-group", &root.pem)), None)
        .await
        .unwrap();
    for (id, extra) in [
        ("root-dev-1", vec![&intermediate.der]),
        ("root-dev-2", vec![&intermediate.der, &root.der]),
    ] {
        let identity = intermediate.leaf(id).presenting(&extra);
        let mut dev = x509_device(&emu, id, &identity).await.unwrap();
        let x509 = dev
            .provision_ok()
            .await
            .registration_state
            .unwrap()
            .x509
            .unwrap();
        assert_eq!(x509.enrollment_group_id.as_deref(), Some("root-group"));
        assert_eq!(
            x509.signing_certificate_info.unwrap().sha1_thumbprint,
            Some(sha1_hex(&root.der)),
            "{id}"
        );
    }
    // Without the intermediate the chain cannot reach the root: unknown device.
    let identity = intermediate.leaf("root-dev-3");
    let mut dev = x509_device(&emu, "root-dev-3", &identity).await.unwrap();
    assert_eq!(dev.register("1", "").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_leaf_common_name_must_be_the_registration_id() {
    let emu = start().await;
    let root = Ca::root("Root");
    let intermediate = root.intermediate("Intermediate");
    emu.put_enrollment_group(group(x509_group("g", &intermediate.pem)), None)
        .await
        .unwrap();
    let identity = intermediate
        .leaf("someone-else")
        .presenting(&[&intermediate.der]);
    assert_eq!(
        x509_device(&emu, "cn-dev", &identity).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_chain_from_an_unknown_ca_gets_401_at_register() {
    let emu = start().await;
    let enrolled = Ca::root("Enrolled Root");
    emu.put_enrollment_group(group(x509_group("g", &enrolled.pem)), None)
        .await
        .unwrap();
    let stranger = Ca::root("Enrolled Root"); // same name, other key
    let intermediate = stranger.intermediate("Stranger Intermediate");
    let identity = intermediate
        .leaf("stray-dev")
        .presenting(&[&intermediate.der, &stranger.der]);
    let mut dev = x509_device(&emu, "stray-dev", &identity).await.unwrap();
    let answer = dev.register("1", "").await;
    assert_eq!(answer.status(), 401, "{answer:?}");
    assert_eq!(answer.error().error_code.0, 401_002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_expired_leaf_is_refused() {
    let emu = start().await;
    let root = Ca::root("Root");
    let intermediate = root.intermediate("Intermediate");
    emu.put_enrollment_group(group(x509_group("g", &intermediate.pem)), None)
        .await
        .unwrap();
    let expired = |params: &mut rcgen::CertificateParams| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    };
    let identity = intermediate
        .leaf_with("old-dev", expired)
        .presenting(&[&intermediate.der]);
    assert_eq!(
        x509_device(&emu, "old-dev", &identity).await.err(),
        Some(ConnectReturnCode::NotAuthorized),
        "group enrollment"
    );

    // An individually enrolled certificate that expired is refused too.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "old-single");
    expired(&mut params);
    let cert = params.self_signed(&key).unwrap();
    emu.put_enrollment(enrollment(x509_enrollment("old-single", &cert.pem())), None)
        .await
        .unwrap();
    let identity = Leaf {
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    assert_eq!(
        x509_device(&emu, "old-single", &identity).await.err(),
        Some(ConnectReturnCode::NotAuthorized),
        "individual enrollment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_enrolled_certificate_of_the_chain_decides_even_if_disabled() {
    let emu = start().await;
    let root = Ca::root("Shared Root");
    let intermediate = root.intermediate("Shared Intermediate");
    // Group ids sort so that the root's group would come first if order of groups mattered.
    emu.put_enrollment_group(group(x509_group("a-root-group", &root.pem)), None)
        .await
        .unwrap();
    emu.put_enrollment_group(group(x509_group("b-inter-group", &intermediate.pem)), None)
        .await
        .unwrap();
    let identity = intermediate
        .leaf("first-dev")
        .presenting(&[&intermediate.der, &root.der]);
    let mut dev = x509_device(&emu, "first-dev", &identity).await.unwrap();
    let x509 = dev
        .provision_ok()
        .await
        .registration_state
        .unwrap()
        .x509
        .unwrap();
    assert_eq!(x509.enrollment_group_id.as_deref(), Some("b-inter-group"));

    // Disabling the intermediate's group disables the device: the root's group is not tried.
    let mut disabled = emu.enrollment_group("b-inter-group").unwrap();
    disabled.settings.provisioning_status = dps_emulator::model::ProvisioningStatus::Disabled;
    emu.put_enrollment_group(disabled, None).await.unwrap();
    let mut dev = x509_device(&emu, "first-dev", &identity).await.unwrap();
    let op = dev.register("1", "").await.operation();
    assert_eq!(op.status, RegistrationStatus::Disabled);
}

// ---------------------------------------------------------------------------------------------
// Enrollment semantics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_individual_enrollment_beats_a_group() {
    let emu = start().await;
    let group_key = key(21, 64);
    emu.put_enrollment_group(group(sym_group("g", &group_key, &key(22, 64))), None)
        .await
        .unwrap();
    let (primary, _) = enroll(&emu, "both-dev").await;
    let mut dev = sas_device(&emu, "both-dev", &primary).await;
    let state = dev.provision_ok().await.registration_state.unwrap();
    assert_eq!(state.symmetric_key.unwrap().enrollment_group_id, None);
    // The group's derived key no longer opens the door.
    let id = "both-dev";
    let refused = connect(
        &emu,
        id,
        &username(emu.id_scope(), id, API),
        Some(sas(&derived(&group_key, id), emu.id_scope(), id)),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(ConnectReturnCode::NotAuthorized));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_individual_enrollment_blocks_an_enabled_group() {
    let emu = start().await;
    let root = Ca::root("Root");
    let intermediate = root.intermediate("Intermediate");
    emu.put_enrollment_group(group(x509_group("open-group", &intermediate.pem)), None)
        .await
        .unwrap();
    let identity = intermediate
        .leaf("blocked-dev")
        .presenting(&[&intermediate.der]);
    emu.put_enrollment(
        enrollment(with(
            x509_enrollment("blocked-dev", &identity.pem),
            json!({ "provisioningStatus": "disabled" }),
        )),
        None,
    )
    .await
    .unwrap();
    let mut dev = x509_device(&emu, "blocked-dev", &identity).await.unwrap();
    let answer = dev.register("1", "").await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let op = answer.operation();
    assert_eq!(op.status, RegistrationStatus::Disabled);
    assert_eq!(op.operation_id, "");
    let state = op.registration_state.unwrap();
    assert_eq!(state.status, Some(RegistrationStatus::Disabled));
    assert_eq!(state.assigned_hub, None);
    assert_eq!(
        emu.registration("blocked-dev").unwrap().status,
        RegistrationStatus::Disabled
    );
    assert!(emu.hub_device("localhost", "blocked-dev").is_none());

    // Enabling it lets the device in.
    let mut enabled = emu.enrollment("blocked-dev").unwrap();
    enabled.settings.provisioning_status = dps_emulator::model::ProvisioningStatus::Enabled;
    emu.put_enrollment(enabled, None).await.unwrap();
    let state = dev.provision_ok().await.registration_state.unwrap();
    assert_eq!(state.x509.unwrap().enrollment_group_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_group_answers_disabled() {
    let emu = start().await;
    let group_key = key(31, 64);
    emu.put_enrollment_group(
        group(with(
            sym_group("off-group", &group_key, &key(32, 64)),
            json!({ "provisioningStatus": "disabled" }),
        )),
        None,
    )
    .await
    .unwrap();
    let mut dev = sas_device(&emu, "off-dev", &derived(&group_key, "off-dev")).await;
    let op = dev.register("1", "").await.operation();
    assert_eq!(
        (op.status, op.operation_id.as_str()),
        (RegistrationStatus::Disabled, "")
    );
    assert!(emu.hub_devices().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_allocation_spreads_over_the_linked_hubs() {
    let emu = start_with(|c| c.linked_hubs(HUBS)).await;
    assert_eq!(emu.info().linked_hubs, HUBS);
    let group_key = key(41, 64);
    emu.put_enrollment_group(
        group(with(
            sym_group("spread", &group_key, &key(42, 64)),
            json!({ "allocationPolicy": "hashed" }),
        )),
        None,
    )
    .await
    .unwrap();
    let mut counts = [0usize; 3];
    let mut first_hub = None;
    for i in 0..12 {
        let id = format!("spread-dev-{i}");
        let mut dev = sas_device(&emu, &id, &derived(&group_key, &id)).await;
        let hub = dev
            .provision_ok()
            .await
            .registration_state
            .unwrap()
            .assigned_hub
            .unwrap();
        counts[HUBS.iter().position(|h| *h == hub).unwrap()] += 1;
        assert!(emu.hub_device(&hub, &id).is_some());
        if i == 0 {
            first_hub = Some(hub);
        }
    }
    assert!(counts.iter().all(|&c| c >= 1), "{counts:?}");
    // Stable: the same device gets the same hub again.
    let id = "spread-dev-0";
    let mut dev = sas_device(&emu, id, &derived(&group_key, id)).await;
    let state = dev.provision_ok().await.registration_state.unwrap();
    assert_eq!(state.assigned_hub, first_hub);
    assert_eq!(state.substatus, Some(Substatus::InitialAssignment));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_allocation_and_listed_hubs() {
    let emu = start_with(|c| c.linked_hubs(HUBS)).await;
    let group_key = key(43, 64);
    emu.put_enrollment_group(
        group(with(
            sym_group("pinned", &group_key, &key(44, 64)),
            json!({ "allocationPolicy": "static", "iotHubHostName": "hub-c.local" }),
        )),
        None,
    )
    .await
    .unwrap();
    let (primary, _) = enroll(&emu, "listed-dev").await;
    let mut listed = emu.enrollment("listed-dev").unwrap();
    listed.settings.iot_hubs = Some(vec!["hub-b.local".into(), "not-linked.local".into()]);
    emu.put_enrollment(listed, None).await.unwrap();

    for i in 0..4 {
        let id = format!("pinned-{i}");
        let mut dev = sas_device(&emu, &id, &derived(&group_key, &id)).await;
        let state = dev.provision_ok().await.registration_state.unwrap();
        assert_eq!(state.assigned_hub.as_deref(), Some("hub-c.local"), "{id}");
    }
    let mut dev = sas_device(&emu, "listed-dev", &primary).await;
    let state = dev.provision_ok().await.registration_state.unwrap();
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-b.local"));
}

/// Registers `id` (individual, key `primary`) once more and returns the final state.
async fn reregister(
    emu: &Emulator,
    id: &str,
    primary: &str,
) -> dps_core::dps::DeviceRegistrationResult {
    let mut dev = sas_device(emu, id, primary).await;
    dev.provision_ok().await.registration_state.unwrap()
}

/// A device on hub A whose enrollment then moves to hub B (and whose initial twin changes).
async fn moved_device(policy: Option<Value>) -> (TestEmulator, String) {
    let emu = start_with(|c| c.linked_hubs(HUBS)).await;
    let primary = key(51, 64);
    let mut body = with(
        sym_enrollment("mover", &primary, &key(52, 64)),
        json!({
            "iotHubs": ["hub-a.local"],
            "initialTwin": { "tags": { "version": 1 }, "properties": { "desired": { "interval": 5 } } },
        }),
    );
    if let Some(policy) = policy {
        body = with(body, json!({ "reprovisionPolicy": policy }));
    }
    emu.put_enrollment(enrollment(body.clone()), None)
        .await
        .unwrap();
    let state = reregister(&emu, "mover", &primary).await;
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-a.local"));
    assert_eq!(state.substatus, Some(Substatus::InitialAssignment));
    let twin = emu.hub_device("hub-a.local", "mover").unwrap().twin;
    assert_eq!(twin["tags"]["version"], 1);
    assert_eq!(twin["properties"]["desired"]["interval"], 5);

    let body = with(
        body,
        json!({
            "iotHubs": ["hub-b.local"],
            "initialTwin": { "tags": { "version": 2 } },
        }),
    );
    emu.put_enrollment(enrollment(body), None).await.unwrap();
    (emu, primary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprovisioning_migrates_device_data_by_default() {
    let (emu, primary) = moved_device(None).await;
    let first = emu.registration("mover").unwrap();
    let old = emu.hub_device("hub-a.local", "mover").unwrap();
    let state = reregister(&emu, "mover", &primary).await;
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-b.local"));
    assert_eq!(state.substatus, Some(Substatus::DeviceDataMigrated));
    assert_eq!(state.created_date_time_utc, first.created_date_time_utc);
    assert_ne!(state.etag, first.etag);
    assert!(
        emu.hub_device("hub-a.local", "mover").is_none(),
        "old identity gone"
    );
    let moved = emu.hub_device("hub-b.local", "mover").unwrap();
    assert_eq!(moved.twin, old.twin, "twin migrated");
    assert_eq!(
        emu.registration("mover").unwrap().substatus,
        Some(Substatus::DeviceDataMigrated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprovisioning_can_reset_device_data() {
    let (emu, primary) = moved_device(Some(
        json!({ "updateHubAssignment": true, "migrateDeviceData": false }),
    ))
    .await;
    let state = reregister(&emu, "mover", &primary).await;
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-b.local"));
    assert_eq!(state.substatus, Some(Substatus::DeviceDataReset));
    let twin = emu.hub_device("hub-b.local", "mover").unwrap().twin;
    assert_eq!(twin["tags"]["version"], 2, "reset to the new initial twin");
    assert_eq!(twin["properties"]["desired"], json!({}));
    assert!(
        emu.hub_device("hub-a.local", "mover").is_none(),
        "the old hub's identity is removed (service-behaviour.md §1.12)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprovisioning_can_be_turned_off() {
    let (emu, primary) = moved_device(Some(
        json!({ "updateHubAssignment": false, "migrateDeviceData": false }),
    ))
    .await;
    let state = reregister(&emu, "mover", &primary).await;
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-a.local"));
    assert_eq!(state.substatus, Some(Substatus::InitialAssignment));
    assert!(emu.hub_device("hub-a.local", "mover").is_some());
    assert!(emu.hub_device("hub-b.local", "mover").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_the_hub_knows_but_dps_forgot_is_reprovisioned_to_its_initial_assignment() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "forgotten").await;
    reregister(&emu, "forgotten", &primary).await;
    let before = emu.hub_device("localhost", "forgotten").unwrap();
    emu.delete_registration("forgotten").await.unwrap();
    assert!(emu.registration("forgotten").is_err());
    let state = reregister(&emu, "forgotten", &primary).await;
    assert_eq!(state.assigned_hub.as_deref(), Some("localhost"));
    assert_eq!(
        state.substatus,
        Some(Substatus::ReprovisionedToInitialAssignment)
    );
    let after = emu.hub_device("localhost", "forgotten").unwrap();
    assert_eq!(after.generation_id, before.generation_id, "same identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrollment_device_id_and_initial_twin_shape_the_hub_device() {
    let emu = start().await;
    let primary = key(61, 64);
    emu.put_enrollment(
        enrollment(with(
            sym_enrollment("twin-reg", &primary, &key(62, 64)),
            json!({
                "deviceId": "twin-device",
                "initialTwin": {
                    "tags": { "site": "lab", "floor": 3 },
                    "properties": { "desired": { "telemetryInterval": 30 } },
                },
            }),
        )),
        None,
    )
    .await
    .unwrap();
    let state = reregister(&emu, "twin-reg", &primary).await;
    assert_eq!(state.device_id.as_deref(), Some("twin-device"));
    assert!(emu.hub_device("localhost", "twin-reg").is_none());
    let device = emu.hub_device("localhost", "twin-device").unwrap();
    assert_eq!(device.registration_id.as_deref(), Some("twin-reg"));
    assert_eq!(device.twin["tags"], json!({ "site": "lab", "floor": 3 }));
    assert_eq!(
        device.twin["properties"]["desired"],
        json!({ "telemetryInterval": 30 })
    );
    assert_eq!(device.twin["properties"]["reported"], json!({}));
    assert_eq!(emu.hub_devices().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_allocation_asks_the_webhook_and_returns_its_payload() {
    let emu = start_with(|c| c.linked_hubs(["hub-a.local", "hub-b.local"])).await;
    let hook = webhook(|request| {
        let ok = request["deviceRuntimeContext"]["registrationId"] == "custom-dev";
        let answer = json!({
            "iotHubHostName": "hub-b.local",
            "initialTwin": { "tags": { "allocatedBy": "webhook" } },
            "payload": { "answer": 42, "echo": request["deviceRuntimeContext"]["payload"] },
        });
        if ok { (200, answer) } else { (500, json!({})) }
    })
    .await;
    let primary = key(71, 64);
    emu.put_enrollment(
        enrollment(with(
            sym_enrollment("custom-dev", &primary, &key(72, 64)),
            json!({
                "allocationPolicy": "custom",
                "customAllocationDefinition": { "webhookUrl": hook.url, "apiVersion": "2021-10-01" },
                "initialTwin": { "tags": { "allocatedBy": "enrollment" } },
            }),
        )),
        None,
    )
    .await
    .unwrap();
    let mut dev = sas_device(&emu, "custom-dev", &primary).await;
    let sent = json!({ "modelId": "dtmi:com:example:thermostat;1", "n": [1, 2] });
    let answer = dev
        .provision(
            serde_json::to_vec(&json!({ "registrationId": "custom-dev", "payload": sent }))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let state = answer.operation().registration_state.unwrap();
    assert_eq!(state.assigned_hub.as_deref(), Some("hub-b.local"));
    assert_eq!(
        payload_json(&state),
        Some(json!({ "answer": 42, "echo": sent }))
    );

    let requests = hook.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["uri"], "/allocate?code=secret");
    let body = &requests[0]["body"];
    assert_eq!(body["deviceRuntimeContext"]["registrationId"], "custom-dev");
    assert_eq!(body["deviceRuntimeContext"]["payload"], sent);
    assert!(body["deviceRuntimeContext"]["symmetricKey"].is_object());
    assert_eq!(body["linkedHubs"], json!(["hub-a.local", "hub-b.local"]));
    assert_eq!(body["individualEnrollment"]["registrationId"], "custom-dev");
    assert!(body.get("enrollmentGroup").is_none());

    // The webhook's initial twin overrides the enrollment's.
    let device = emu.hub_device("hub-b.local", "custom-dev").unwrap();
    assert_eq!(device.twin["tags"]["allocatedBy"], "webhook");
    // The record keeps the returned payload.
    assert_eq!(
        emu.registration("custom-dev").unwrap().payload,
        Some(json!({ "answer": 42, "echo": sent }))
    );

    // On re-registration the webhook hears where the device is now.
    dev.provision(Vec::new()).await;
    let requests = hook.requests.lock().unwrap().clone();
    let context = &requests[1]["body"]["deviceRuntimeContext"];
    assert_eq!(context["currentIotHubHostName"], "hub-b.local");
    assert_eq!(context["currentDeviceId"], "custom-dev");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_fails_the_registration() {
    let emu = start_with(|c| c.linked_hubs(["hub-a.local"])).await;
    let hook =
        webhook(
            |request| match request["deviceRuntimeContext"]["registrationId"].as_str() {
                Some("bad-request") => (400, json!({ "error": "nope" })),
                _ => (200, json!({ "iotHubHostName": "not-linked.local" })),
            },
        )
        .await;
    let group_key = key(81, 64);
    emu.put_enrollment_group(
        group(with(
            sym_group("custom-group", &group_key, &key(82, 64)),
            json!({
                "allocationPolicy": "custom",
                "customAllocationDefinition": { "webhookUrl": hook.url },
            }),
        )),
        None,
    )
    .await
    .unwrap();

    let mut dev = sas_device(&emu, "bad-request", &derived(&group_key, "bad-request")).await;
    let answer = dev.provision(Vec::new()).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let op = answer.operation();
    assert_eq!(op.status, RegistrationStatus::Failed);
    let state = op.registration_state.unwrap();
    assert_eq!(state.status, Some(RegistrationStatus::Failed));
    assert_eq!(state.error_code.map(|c| c.0), Some(400_207));
    assert_eq!(
        state.error_message.as_deref(),
        Some("Custom allocation failed with status code: 400")
    );
    assert_eq!(state.assigned_hub, None);
    let record = emu.registration("bad-request").unwrap();
    assert_eq!(record.status, RegistrationStatus::Failed);
    assert!(emu.hub_devices().is_empty());
    let requests = hook.requests.lock().unwrap().clone();
    assert!(requests[0]["body"]["enrollmentGroup"].is_object());

    // A hub that is not linked fails too.
    let mut dev = sas_device(&emu, "bad-hub", &derived(&group_key, "bad-hub")).await;
    let state = dev
        .provision(Vec::new())
        .await
        .operation()
        .registration_state
        .unwrap();
    assert_eq!(state.status, Some(RegistrationStatus::Failed));
    assert_eq!(state.error_code.map(|c| c.0), Some(400_208));
}

// ---------------------------------------------------------------------------------------------
// Certificate issuance

fn csr(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(csr.der())
}

async fn csr_device(emu: &Emulator, id: &str, api: &str) -> Conn {
    let primary = key(91, 64);
    emu.put_enrollment(enrollment(sym_enrollment(id, &primary, &key(92, 64))), None)
        .await
        .unwrap();
    let mut conn = connect(
        emu,
        id,
        &username(emu.id_scope(), id, api),
        Some(sas(&primary, emu.id_scope(), id)),
        None,
    )
    .await
    .unwrap();
    conn.subscribe_dps().await;
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_is_signed_by_the_emulator_ca() {
    let emu = start().await;
    let mut dev = csr_device(&emu, "csr-dev", CSR_API).await;
    let body = json!({ "registrationId": "csr-dev", "csr": csr("csr-dev") });
    let answer = dev.provision(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let state = answer.operation().registration_state.unwrap();
    assert_eq!(state.status, Some(RegistrationStatus::Assigned));
    let chain: Vec<Vec<u8>> = state
        .issued_certificate_chain
        .unwrap()
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c).unwrap())
        .collect();
    assert_eq!(chain.len(), 2, "leaf and CA");
    assert_eq!(chain[1], emu.ca_der().to_vec());

    let leaf = rustls::pki_types::CertificateDer::from(chain[0].clone());
    let anchor = webpki::anchor_from_trusted_cert(emu.ca_der()).unwrap();
    webpki::EndEntityCert::try_from(&leaf)
        .unwrap()
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            rustls::pki_types::UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let cn = parsed.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "csr-dev");
    assert!(!parsed.is_ca());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_needs_the_preview_api_and_the_right_common_name() {
    let emu = start().await;
    let mut old = csr_device(&emu, "csr-old", API).await;
    let body = json!({ "registrationId": "csr-old", "csr": csr("csr-old") });
    let answer = old.register("1", serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(answer.status(), 400, "{answer:?}");
    assert_eq!(answer.error().error_code.0, 400_004);

    let mut dev = csr_device(&emu, "csr-cn", CSR_API).await;
    for body in [
        json!({ "csr": csr("someone-else") }),
        json!({ "csr": "not base64!" }),
        json!({ "csr": base64::engine::general_purpose::STANDARD.encode(b"not a CSR") }),
    ] {
        let answer = dev.register("1", serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(answer.status(), 400, "{body}: {answer:?}");
        assert_eq!(answer.error().error_code.0, 400_004);
    }
    // Without a CSR the preview api-version registers as usual.
    assert!(
        dev.provision_ok()
            .await
            .registration_state
            .unwrap()
            .issued_certificate_chain
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// Faults

async fn faulty(faults: Faults) -> (TestEmulator, Conn) {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "fault-dev").await;
    let dev = sas_device(&emu, "fault-dev", &primary).await;
    emu.set_faults(faults);
    (emu, dev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_429_carries_retry_after_and_runs_out() {
    let (emu, mut dev) = faulty(Faults {
        inject_status: Some(InjectStatus {
            status: 429,
            count: 2,
            retry_after: Some(7),
        }),
        ..Faults::default()
    })
    .await;
    for rid in ["1", "2"] {
        let answer = dev.register(rid, "").await;
        assert!(
            answer.topic.starts_with("$dps/registrations/res/429/?"),
            "{answer:?}"
        );
        assert!(answer.topic.contains("retry-after=7"), "{answer:?}");
        let response = answer.response();
        assert_eq!(
            (response.topic.status, response.topic.retry_after),
            (429, Some(7))
        );
        let error = answer.error();
        assert_eq!(error.error_code.0, 429_001);
        assert!(error.tracking_id.is_some());
    }
    assert_eq!(emu.faults().inject_status.unwrap().count, 0);
    assert_eq!(dev.register("3", "").await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_503_hits_registers_and_polls() {
    let (_emu, mut dev) = faulty(Faults {
        inject_status: Some(InjectStatus {
            status: 503,
            count: 1,
            retry_after: None,
        }),
        ..Faults::default()
    })
    .await;
    let answer = dev.register("1", "").await;
    assert_eq!(answer.status(), 503, "{answer:?}");
    assert_eq!(answer.response().topic.retry_after, None);
    assert_eq!(answer.error().error_code.status(), 503);
    let operation_id = dev.register("2", "").await.operation().operation_id;
    assert_eq!(dev.poll("3", &operation_id).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_the_excess_with_429() {
    let (_emu, mut dev) = faulty(Faults {
        rate_limit: Some(RateLimit {
            requests: 2,
            per_seconds: 60,
            retry_after: 3,
        }),
        ..Faults::default()
    })
    .await;
    let operation_id = dev.register("1", "").await.operation().operation_id;
    assert_eq!(dev.poll("2", &operation_id).await.status(), 200);
    for rid in ["3", "4"] {
        let answer = dev.poll(rid, &operation_id).await;
        let response = answer.response();
        assert_eq!(
            (response.topic.status, response.topic.retry_after),
            (429, Some(3)),
            "{answer:?}"
        );
        assert_eq!(answer.error().error_code.0, 429_001);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_responses_are_never_sent() {
    let (_emu, mut dev) = faulty(Faults {
        drop_responses: 1,
        ..Faults::default()
    })
    .await;
    dev.send_register("1", "").await;
    assert!(
        dev.next_publish(Duration::from_secs(1)).await.is_none(),
        "the first answer is dropped"
    );
    assert_eq!(dev.register("2", "").await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_responses_arrive_twice() {
    let (_emu, mut dev) = faulty(Faults {
        duplicate_responses: 1,
        ..Faults::default()
    })
    .await;
    let first = dev.register("1", "").await;
    let second = dev.answer().await;
    assert_eq!(
        (&first.topic, &first.payload),
        (&second.topic, &second.payload)
    );
    assert!(
        dev.next_publish(Duration::from_millis(300)).await.is_none(),
        "only two copies"
    );
    let third = dev.register("2", "").await;
    assert!(dev.next_publish(Duration::from_millis(300)).await.is_none());
    assert_ne!(third.json()["operationId"], first.json()["operationId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_rid_answer_precedes_the_right_one() {
    let (_emu, mut dev) = faulty(Faults {
        wrong_rid_responses: 1,
        ..Faults::default()
    })
    .await;
    dev.send_register("42", "").await;
    let wrong = dev.answer().await;
    assert_ne!(wrong.response().topic.rid, "42", "{wrong:?}");
    let right = dev.answer().await;
    assert_eq!(right.response().topic.rid, "42", "{right:?}");
    assert_eq!(wrong.payload, right.payload);
    assert_eq!(dev.register("43", "").await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_responses_carry_broken_json() {
    let (_emu, mut dev) = faulty(Faults {
        malformed_responses: 1,
        ..Faults::default()
    })
    .await;
    dev.send_register("1", "").await;
    let (topic, payload) = dev.next_publish(STEP).await.unwrap();
    assert!(
        topic.starts_with("$dps/registrations/res/202/?$rid=1"),
        "{topic}"
    );
    assert!(!payload.is_empty());
    assert!(serde_json::from_slice::<Value>(&payload).is_err());
    assert!(dps_core::dps::Response::parse(&topic, &payload).is_err());
    dev.register("2", "").await.operation();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_responses_arrive_late() {
    let (_emu, mut dev) = faulty(Faults {
        delay_ms: 400,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    dev.send_register("1", "").await;
    assert!(dev.next_publish(Duration::from_millis(250)).await.is_none());
    let answer = dev.answer().await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(answer.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_publishes_ends_each_connection() {
    let (emu, mut dev) = faulty(Faults {
        close_after_publishes: Some(1),
        ..Faults::default()
    })
    .await;
    let operation_id = dev.register("1", "").await.operation().operation_id;
    dev.send_poll("2", &operation_id).await;
    assert!(dev.is_closed_within(STEP).await);
    // The count is per connection.
    let mut again = sas_device(&emu, "fault-dev", &key(1, 64)).await;
    assert_eq!(again.poll("3", &operation_id).await.status(), 200);
    again.send_poll("4", &operation_id).await;
    assert!(again.is_closed_within(STEP).await);
}

// ---------------------------------------------------------------------------------------------
// Protocol rules

async fn plain_device(emu: &Emulator) -> Conn {
    let (primary, _) = enroll(emu, "proto-dev").await;
    connect(
        emu,
        "proto-dev",
        &username(emu.id_scope(), "proto-dev", API),
        Some(sas(&primary, emu.id_scope(), "proto-dev")),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_anything_else_closes_the_connection() {
    let emu = start().await;
    for filter in [
        "$dps/registrations/res/202/#",
        "$dps/registrations/#",
        "#",
        "$iothub/twin/res/#",
    ] {
        let mut dev = plain_device(&emu).await;
        assert_eq!(
            dev.subscribe(filter, QoS::AtLeastOnce).await,
            None,
            "{filter}: no SUBACK"
        );
        assert!(dev.is_closed_within(STEP).await, "{filter}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_qos_is_capped_at_1() {
    let emu = start().await;
    let mut dev = plain_device(&emu).await;
    assert_eq!(
        dev.subscribe(RES_FILTER, QoS::ExactlyOnce).await,
        Some(vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)])
    );
    assert_eq!(dev.register("1", "").await.status(), 202);

    let mut dev = plain_device(&emu).await;
    assert_eq!(
        dev.subscribe(RES_FILTER, QoS::AtMostOnce).await,
        Some(vec![SubscribeReasonCode::Success(QoS::AtMostOnce)])
    );
    assert_eq!(dev.register("1", "").await.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_on_an_undocumented_topic_closes_the_connection() {
    let emu = start().await;
    for topic in [
        "$dps/registrations/PUT/iotdps-register/",
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1",
        "$dps/registrations/POST/iotdps-register/?$rid=1",
        "devices/proto-dev/messages/events/",
    ] {
        let mut dev = plain_device(&emu).await;
        dev.subscribe_dps().await;
        dev.publish(topic, "{}").await;
        assert!(dev.is_closed_within(STEP).await, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_publish_closes_the_connection() {
    let emu = start().await;
    let mut dev = plain_device(&emu).await;
    dev.subscribe_dps().await;
    dev.publish_qos(
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        "",
        QoS::ExactlyOnce,
    )
    .await;
    assert!(dev.is_closed_within(STEP).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_subscription_no_answer_is_delivered() {
    let emu = start().await;
    let mut dev = plain_device(&emu).await;
    dev.send_register("1", "").await;
    assert!(dev.next_publish(Duration::from_secs(1)).await.is_none());
    assert!(!dev.is_closed_within(Duration::from_millis(100)).await);
    dev.subscribe_dps().await;
    assert_eq!(dev.register("2", "").await.status(), 202);
    // Unsubscribing stops the answers again.
    let mut unsubscribe = rumqttc::mqttbytes::v4::Unsubscribe::new(RES_FILTER);
    unsubscribe.pkid = 77;
    let mut buf = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Unsubscribe(unsubscribe)
        .write(&mut buf, usize::MAX)
        .unwrap();
    assert!(dev.send_raw(&buf).await);
    dev.send_register("3", "").await;
    assert!(dev.next_publish(Duration::from_secs(1)).await.is_none());
}

// ---------------------------------------------------------------------------------------------
// MQTT over WebSocket

/// Registers over `wss://…/$iothub/websocket` with the rumqttc client; the final answer.
async fn register_over_websocket(
    emu: &Emulator,
    registration_id: &str,
    password: Option<String>,
    identity: Option<&Leaf>,
) -> dps_core::dps::RegistrationOperationStatus {
    let port = emu.https_addr().port();
    let url = format!("wss://localhost:{port}/$iothub/websocket");
    let mut options = rumqttc::MqttOptions::new(registration_id, url, port);
    options.set_transport(rumqttc::Transport::wss_with_config(
        rumqttc::TlsConfiguration::Rustls(client_config(emu, identity)),
    ));
    options.set_credentials(
        username(emu.id_scope(), registration_id, API),
        password.unwrap_or_default(),
    );
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    client
        .subscribe(RES_FILTER, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish(
            "$dps/registrations/PUT/iotdps-register/?$rid=1",
            rumqttc::QoS::AtLeastOnce,
            false,
            "",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(remaining, eventloop.poll())
            .await
            .expect("MQTT event in time")
            .expect("WebSocket connection healthy");
        let rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) = event else {
            continue;
        };
        let message = Message {
            topic: publish.topic.clone(),
            payload: publish.payload.to_vec(),
        };
        let op = message.operation();
        match message.status() {
            202 => client
                .publish(
                    format!(
                        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={}",
                        op.operation_id
                    ),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    " ",
                )
                .await
                .unwrap(),
            200 => return op,
            _ => panic!("unexpected answer {message:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_register_over_websocket_with_sas_and_x509() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "ws-sas").await;
    let op = register_over_websocket(
        &emu,
        "ws-sas",
        Some(sas(&primary, emu.id_scope(), "ws-sas")),
        None,
    )
    .await;
    assert_eq!(op.status, RegistrationStatus::Assigned);

    let root = Ca::root("WS Root");
    let intermediate = root.intermediate("WS Intermediate");
    emu.put_enrollment_group(group(x509_group("ws-group", &root.pem)), None)
        .await
        .unwrap();
    let identity = intermediate
        .leaf("ws-x509")
        .presenting(&[&intermediate.der]);
    let op = register_over_websocket(&emu, "ws-x509", None, Some(&identity)).await;
    let state = op.registration_state.unwrap();
    assert_eq!(
        state.x509.unwrap().enrollment_group_id.as_deref(),
        Some("ws-group")
    );
    assert!(emu.hub_device("localhost", "ws-x509").is_some());
}

// ---------------------------------------------------------------------------------------------
// Persistence and configuration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_keys_and_ca_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        EmulatorConfig::new(dir.path())
            .behaviour(fast())
            .linked_hubs(HUBS)
    };
    let emu = Emulator::start(config()).await.unwrap();
    let (primary, _) = enroll(&emu, "keeper").await;
    let group_key = key(101, 64);
    emu.put_enrollment_group(
        group(sym_group("kept-group", &group_key, &key(102, 64))),
        None,
    )
    .await
    .unwrap();
    let first = reregister(&emu, "keeper", &primary).await;
    let hub = first.assigned_hub.clone().unwrap();
    let ca = emu.ca_pem().to_owned();
    let service_key =
        connection_string_field(&emu.info().dps_connection_string, "SharedAccessKey").to_owned();
    let enrollment_before = emu.enrollment("keeper").unwrap();
    let group_before = emu.enrollment_group("kept-group").unwrap();
    let record = emu.registration("keeper").unwrap();
    let device = emu.hub_device(&hub, "keeper").unwrap();
    emu.shutdown().await;
    for file in ["ca.pem", "state.redb", "service-key"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }

    let emu = Emulator::start(config()).await.unwrap();
    assert_eq!(emu.ca_pem(), ca);
    assert_eq!(
        connection_string_field(&emu.info().dps_connection_string, "SharedAccessKey"),
        service_key
    );
    assert_eq!(
        connection_string_field(&emu.info().hub_connection_string, "SharedAccessKey"),
        service_key
    );
    assert_eq!(emu.enrollment("keeper").unwrap(), enrollment_before);
    assert_eq!(emu.enrollment_group("kept-group").unwrap(), group_before);
    assert_eq!(emu.registration("keeper").unwrap(), record);
    assert_eq!(emu.hub_device(&hub, "keeper").unwrap(), device);

    // The device registers again with the same key and lands on the same hub, unchanged.
    let again = reregister(&emu, "keeper", &primary).await;
    assert_eq!(again.assigned_hub.as_deref(), Some(hub.as_str()));
    assert_eq!(again.substatus, Some(Substatus::InitialAssignment));
    assert_eq!(again.created_date_time_utc, first.created_date_time_utc);
    // The group still admits its devices.
    let mut member = sas_device(&emu, "member", &derived(&group_key, "member")).await;
    member.provision_ok().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_enrollments_are_created_at_start() {
    let primary = key(111, 64);
    let group_key = key(112, 64);
    let emu = start_with(|mut config| {
        config.file = ConfigFile {
            linked_hubs: vec!["preloaded-hub.local".into()],
            behaviour: fast(),
            enrollments: vec![enrollment(sym_enrollment(
                "preloaded",
                &primary,
                &key(113, 64),
            ))],
            enrollment_groups: vec![group(sym_group(
                "preloaded-group",
                &group_key,
                &key(114, 64),
            ))],
            ..ConfigFile::default()
        };
        config
    })
    .await;
    let stored = emu.enrollment("preloaded").unwrap();
    assert!(stored.settings.etag.is_some(), "stamped like a PUT");
    assert!(emu.enrollment_group("preloaded-group").is_ok());
    let state = reregister(&emu, "preloaded", &primary).await;
    assert_eq!(state.assigned_hub.as_deref(), Some("preloaded-hub.local"));
    let mut member = sas_device(&emu, "m1", &derived(&group_key, "m1")).await;
    member.provision_ok().await;

    // An invalid preloaded enrollment stops the start.
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path());
    config.file.enrollments = vec![enrollment(sym_enrollment("-bad-id-", &primary, &primary))];
    assert!(matches!(
        Emulator::start(config).await,
        Err(dps_emulator::EmulatorError::Preload(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_files_load_from_json_and_toml() {
    let dir = tempfile::tempdir().unwrap();
    let primary = key(121, 64);
    let json_path = dir.path().join("emulator.json");
    std::fs::write(
        &json_path,
        serde_json::to_vec_pretty(&json!({
            "linkedHubs": ["json-hub.local"],
            "behaviour": {
                "retryAfterSeconds": 0,
                "pollsBeforeAssignment": 0,
                "faults": { "delayMs": 5, "injectStatus": { "status": 503, "count": 1 } },
            },
            "enrollments": [sym_enrollment("json-dev", &primary, &key(122, 64))],
            "enrollmentGroups": [{ "enrollmentGroupId": "json-group", "attestation": { "type": "symmetricKey" } }],
        }))
        .unwrap(),
    )
    .unwrap();
    let from_json = ConfigFile::load(&json_path).unwrap();
    assert_eq!(from_json.linked_hubs, ["json-hub.local"]);
    assert_eq!(from_json.behaviour.polls_before_assignment, 0);
    assert_eq!(from_json.behaviour.faults.delay_ms, 5);
    assert_eq!(
        from_json.behaviour.faults.inject_status.unwrap().status,
        503
    );
    assert_eq!(from_json.enrollments[0].registration_id, "json-dev");
    assert_eq!(
        from_json.enrollment_groups[0].enrollment_group_id,
        "json-group"
    );

    let toml_path = dir.path().join("emulator.toml");
    std::fs::write(
        &toml_path,
        format!(
            r#"
linkedHubs = ["toml-hub.local"]

[behaviour]
retryAfterSeconds = 0
pollsBeforeAssignment = 0

[[enrollments]]
registrationId = "toml-dev"
provisioningStatus = "enabled"
initialTwin = {{ tags = {{ source = "toml" }} }}

[enrollments.attestation]
type = "symmetricKey"

[enrollments.attestation.symmetricKey]
primaryKey = "{primary}"
secondaryKey = "{primary}"

[[enrollmentGroups]]
enrollmentGroupId = "toml-group"
allocationPolicy = "hashed"

[enrollmentGroups.attestation]
type = "symmetricKey"
"#
        ),
    )
    .unwrap();
    let from_toml = ConfigFile::load(&toml_path).unwrap();
    assert_eq!(from_toml.linked_hubs, ["toml-hub.local"]);
    assert_eq!(from_toml.enrollments[0].registration_id, "toml-dev");

    // The TOML file drives an emulator: direct assignment, preloaded enrollments, generated keys.
    let data = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(data.path());
    config.file = from_toml;
    let emu = Emulator::start(config).await.unwrap();
    let group_keys = emu
        .enrollment_group("toml-group")
        .unwrap()
        .settings
        .attestation
        .symmetric_key
        .unwrap();
    assert!(group_keys.primary_key.is_some() && group_keys.secondary_key.is_some());
    let mut dev = sas_device(&emu, "toml-dev", &primary).await;
    let answer = dev.register("1", "").await;
    assert_eq!(
        answer.status(),
        200,
        "pollsBeforeAssignment = 0: {answer:?}"
    );
    assert_eq!(
        answer
            .operation()
            .registration_state
            .unwrap()
            .assigned_hub
            .as_deref(),
        Some("toml-hub.local")
    );
    let device = emu.hub_device("toml-hub.local", "toml-dev").unwrap();
    assert_eq!(device.twin["tags"]["source"], "toml");
    emu.shutdown().await;

    // Mistakes are reported, not ignored.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"linkedHub": ["typo"]}"#).unwrap();
    assert!(matches!(
        ConfigFile::load(&bad),
        Err(ConfigError::Parse { .. })
    ));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "behaviour = 3").unwrap();
    assert!(matches!(
        ConfigFile::load(&bad),
        Err(ConfigError::Parse { .. })
    ));
    assert!(matches!(
        ConfigFile::load(&dir.path().join("missing.toml")),
        Err(ConfigError::Io { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Robustness

/// Deterministic noise (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_answered_or_closed_and_never_crashes() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "tough-dev").await;
    let scope = emu.id_scope().to_owned();

    // A registration id of 129 characters.
    let long = "a".repeat(129);
    let refused = connect(
        &emu,
        &long,
        &username(&scope, &long, API),
        Some(sas(&primary, &scope, &long)),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(ConnectReturnCode::BadClientId));

    // A password that is not UTF-8.
    let mut packet = connect_packet(
        "tough-dev",
        &username(&scope, "tough-dev", API),
        Some("PWPWPWPW"),
    );
    let at = packet.windows(8).position(|w| w == b"PWPWPWPW").unwrap();
    packet[at..at + 8].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xff]);
    match connect_raw(&emu, None, &packet).await {
        ConnectOutcome::Accepted(_) => panic!("a non-UTF-8 password was accepted"),
        ConnectOutcome::Refused(_) | ConnectOutcome::Closed => {}
    }

    let mut dev = sas_device(&emu, "tough-dev", &primary).await;
    // A 100 KB registration payload.
    let big =
        json!({ "registrationId": "tough-dev", "payload": { "blob": "x".repeat(100 * 1024) } });
    let answer = dev.register("1", serde_json::to_vec(&big).unwrap()).await;
    assert_eq!(answer.status(), 202, "{answer:?}");
    // Random bytes as the payload, for the register and for a poll.
    let answer = dev.register("2", noise(4096)).await;
    assert_eq!(answer.status(), 400, "{answer:?}");
    let topic = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=3&operationId=%ZZ";
    dev.publish(topic, noise(64)).await;
    // Either an answer or a close; the emulator must stay up.
    let _ = dev.next_publish(Duration::from_millis(500)).await;

    // Garbage after CONNECT on a fresh connection.
    let mut raw = sas_device(&emu, "tough-dev", &primary).await;
    raw.send_raw(&noise(2048)).await;
    assert!(raw.is_closed_within(STEP).await);

    // Another client still registers.
    let mut next = sas_device(&emu, "tough-dev", &primary).await;
    assert_eq!(
        next.provision_ok().await.status,
        RegistrationStatus::Assigned
    );
}

/// #11, MQTT 3.1.1 §3.1.4-2: a second connection with the same client id closes the first,
/// as the hub does; the newer one keeps working, and the older one closing later does not
/// disturb it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_with_the_same_client_id_closes_the_first() {
    let emu = start().await;
    let (primary, _) = enroll(&emu, "twice-dev").await;
    let mut first = sas_device(&emu, "twice-dev", &primary).await;
    let mut second = sas_device(&emu, "twice-dev", &primary).await;
    assert!(
        first.is_closed_within(STEP).await,
        "the older connection is closed"
    );
    let answer = second.register("1", "").await;
    assert_eq!(answer.status(), 202, "{answer:?}");

    // A third replaces the second; the closed first one left no trace that could close it.
    drop(first);
    let mut third = sas_device(&emu, "twice-dev", &primary).await;
    assert!(second.is_closed_within(STEP).await);
    assert_eq!(third.register("2", "").await.status(), 202);
}
