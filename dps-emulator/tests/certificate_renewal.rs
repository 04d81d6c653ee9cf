//! Certificates the emulator issues with a chosen lifetime (DPS with a CSR, service-behaviour.md
//! §1.16) and renews over the hub's credentials topic (hub-device-protocol.md, "Hub
//! certificate renewal"): 202 then 200 with a real chain, 409004 while a request is active, the
//! 8 KB CSR limit, and a hub that does not offer the topic; the hub then accepts the new
//! certificate. Real MQTT over TLS on loopback.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::hub::*;
use common::*;
use dps_emulator::{Emulator, HubFaults};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

const HUB_API_CREDENTIALS: &str = "2025-08-01-preview";
const CREDENTIALS_FILTER: &str = "$iothub/credentials/res/#";

/// A fresh key and a CSR for `cn` (base64 DER).
fn csr(cn: &str) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(csr.der());
    (key, b64)
}

/// The TLS identity of an issued leaf (presented alone: the hub knows the CA).
fn identity(leaf: &[u8], key: &rcgen::KeyPair) -> Leaf {
    Leaf {
        chain: vec![CertificateDer::from(leaf.to_vec())],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        pem: String::new(),
        key_pem: String::new(),
    }
}

/// Decodes a base64 chain and checks it: leaf for `cn` signed by the emulator's CA (the last
/// certificate), valid for exactly `lifetime`. The leaf, DER.
fn check_chain(emu: &Emulator, chain: &[Value], cn: &str, lifetime: Duration) -> Vec<u8> {
    let chain: Vec<Vec<u8>> = chain
        .iter()
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c.as_str().unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(chain.len(), 2, "leaf then CA");
    assert_eq!(chain[1], emu.ca_der().to_vec());
    let leaf = CertificateDer::from(chain[0].clone());
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
    let subject_cn = parsed.subject().iter_common_name().next().unwrap();
    assert_eq!(subject_cn.as_str().unwrap(), cn);
    let validity = parsed.validity();
    let seconds = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert_eq!(
        u64::try_from(seconds).unwrap(),
        lifetime.as_secs(),
        "the requested lifetime"
    );
    chain[0].clone()
}

/// A hub CONNECT with the credentials api-version and a client certificate.
async fn connect_x509(
    emu: &Emulator,
    device_id: &str,
    leaf: &Leaf,
) -> Result<Conn, rumqttc::mqttbytes::v4::ConnectReturnCode> {
    let hub = emu.default_hub();
    let username = format!("{hub}/{device_id}/?api-version={HUB_API_CREDENTIALS}");
    let packet = hub_connect_packet(device_id, &username, None, 60, true);
    hub_connect_raw(emu, Some(leaf), &packet).await
}

/// A SAS device on the default hub connected with `api` and subscribed to the credentials
/// responses.
async fn sas_renewer(emu: &Emulator, device_id: &str, api: &str) -> Conn {
    let key = create_sas_device(emu, device_id).await;
    let hub = emu.default_hub();
    let username = format!("{hub}/{device_id}/?api-version={api}");
    let token = hub_sas(&key, hub, device_id);
    let packet = hub_connect_packet(device_id, &username, Some(&token), 60, true);
    let mut conn = hub_connect_raw(emu, None, &packet).await.unwrap();
    conn.subscribe_ok(CREDENTIALS_FILTER).await;
    conn
}

/// Publishes a certificate request; `body` as given.
async fn request(conn: &mut Conn, rid: &str, body: &Value) {
    let topic = format!("$iothub/credentials/POST/issueCertificate/?$rid={rid}");
    assert!(conn.publish(&topic, body.to_string()).await);
}

/// The next credentials response: (status, rid, body).
async fn response(conn: &mut Conn) -> (u16, String, Value) {
    let (topic, body) = conn.expect_publish().await;
    let parsed = dps_core::hub::parse_credentials_topic(&topic).unwrap();
    (
        parsed.status,
        parsed.rid.to_owned(),
        serde_json::from_slice(&body).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_with_a_chosen_lifetime_then_renewed_over_the_hub() {
    let emu = start().await;
    // The lifetime through REST for DPS issuance.
    let reply = service(
        &emu,
        "PUT",
        "/emulator/certificates",
        Some(&json!({ "lifetimeSeconds": 3600 })),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(emu.certificate_lifetime(), Duration::from_secs(3600));

    // Onboarding with a key and a CSR: DPS issues a one-hour certificate.
    let primary = key(21, 64);
    emu.put_enrollment(
        enrollment(sym_enrollment("renewer", &primary, &key(22, 64))),
        None,
    )
    .await
    .unwrap();
    let mut dps = connect(
        &emu,
        "renewer",
        &username(emu.id_scope(), "renewer", CSR_API),
        Some(sas(&primary, emu.id_scope(), "renewer")),
        None,
    )
    .await
    .unwrap();
    dps.subscribe_dps().await;
    let (first_key, first_csr) = csr("renewer");
    let answer = dps
        .provision(serde_json::to_vec(&json!({ "csr": first_csr })).unwrap())
        .await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let state = &answer.json()["registrationState"];
    let chain = state["issuedCertificateChain"].as_array().unwrap();
    let first = check_chain(&emu, chain, "renewer", Duration::from_secs(3600));

    // The hub accepts the issued certificate.
    let mut conn = connect_x509(&emu, "renewer", &identity(&first, &first_key))
        .await
        .unwrap();
    conn.subscribe_ok(CREDENTIALS_FILTER).await;

    // Renewal over the hub, with a ten-minute lifetime set through the handle.
    emu.set_certificate_lifetime(Duration::from_secs(600))
        .unwrap();
    let (second_key, second_csr) = csr("renewer");
    request(
        &mut conn,
        "7",
        &json!({ "id": "renewer", "csr": second_csr }),
    )
    .await;
    let (status, rid, accepted) = response(&mut conn).await;
    assert_eq!((status, rid.as_str()), (202, "7"), "{accepted}");
    assert!(
        accepted["correlationId"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_service_time(accepted["operationExpires"].as_str().unwrap());
    let (status, rid, issued) = response(&mut conn).await;
    assert_eq!((status, rid.as_str()), (200, "7"), "{issued}");
    let second = check_chain(
        &emu,
        issued.as_array().unwrap(),
        "renewer",
        Duration::from_secs(600),
    );

    // The hub accepts the renewed certificate (and the new connection replaces the old one).
    let _renewed = connect_x509(&emu, "renewer", &identity(&second, &second_key))
        .await
        .unwrap();
    assert!(conn.is_closed_within(STEP).await);
    assert!(emu.set_certificate_lifetime(Duration::ZERO).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_meanwhile_gets_409004_unless_it_replaces() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let mut conn = sas_renewer(&emu, "busy", HUB_API_CREDENTIALS).await;
    // The delay between 202 and 200 through REST.
    let reply = hub_service(
        &emu,
        "PUT",
        &format!("/emulator/hubs/{hub}/faults"),
        Some(&json!({ "credentialsDelayMs": 1500 })),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    request(
        &mut conn,
        "1",
        &json!({ "id": "busy", "csr": csr("busy").1 }),
    )
    .await;
    assert_eq!(response(&mut conn).await.0, 202);
    request(
        &mut conn,
        "2",
        &json!({ "id": "busy", "csr": csr("busy").1 }),
    )
    .await;
    let (status, rid, error) = response(&mut conn).await;
    assert_eq!((status, rid.as_str()), (409, "2"), "{error}");
    assert_eq!(error["errorCode"], 409_004);
    let retry_after = error["retryAfter"].as_u64().unwrap();
    assert!((1..=2).contains(&retry_after), "{error}");
    assert_eq!(error["info"]["requestId"], "1");

    // `replace` supersedes request 1: only request 3 completes.
    request(
        &mut conn,
        "3",
        &json!({ "id": "busy", "csr": csr("busy").1, "replace": "*" }),
    )
    .await;
    assert_eq!(response(&mut conn).await.0, 202);
    let (status, rid, issued) = response(&mut conn).await;
    assert_eq!((status, rid.as_str()), (200, "3"), "{issued}");
    check_chain(
        &emu,
        issued.as_array().unwrap(),
        "busy",
        emu.certificate_lifetime(),
    );
    assert!(
        conn.next_publish(Duration::from_millis(300))
            .await
            .is_none(),
        "no answer for the replaced request"
    );
    // Once answered, a new request is accepted again.
    emu.set_hub_faults(&hub, HubFaults::default()).unwrap();
    request(
        &mut conn,
        "4",
        &json!({ "id": "busy", "csr": csr("busy").1 }),
    )
    .await;
    assert_eq!(response(&mut conn).await.0, 202);
    assert_eq!(response(&mut conn).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests_are_refused() {
    let emu = start().await;
    let mut conn = sas_renewer(&emu, "strict", HUB_API_CREDENTIALS).await;

    let huge = "A".repeat(8 * 1024 + 4);
    request(&mut conn, "1", &json!({ "id": "strict", "csr": huge })).await;
    let (status, _, error) = response(&mut conn).await;
    assert_eq!((status, error["errorCode"].as_u64()), (413, Some(413_001)));
    assert_eq!(error["info"]["credentialError"], "CsrTooLarge");

    let cases = [
        (
            json!({ "id": "someone-else", "csr": csr("strict").1 }),
            400,
            400_004,
        ),
        (json!({ "csr": csr("strict").1 }), 400, 400_004),
        (
            json!({ "id": "strict", "csr": csr("other-cn").1 }),
            400,
            400_040,
        ),
        (
            json!({ "id": "strict", "csr": "not base64!" }),
            400,
            400_040,
        ),
        (
            json!({ "id": "strict", "csr": "bm90IGEgQ1NS" }),
            400,
            400_040,
        ),
    ];
    for (i, (body, want_status, want_code)) in cases.into_iter().enumerate() {
        let rid = format!("b{i}");
        request(&mut conn, &rid, &body).await;
        let (status, got_rid, error) = response(&mut conn).await;
        assert_eq!(
            (status, got_rid.as_str(), error["errorCode"].as_u64()),
            (want_status, rid.as_str(), Some(want_code)),
            "{body}: {error}"
        );
    }
    // None of them left a request active.
    request(
        &mut conn,
        "ok",
        &json!({ "id": "strict", "csr": csr("strict").1 }),
    )
    .await;
    assert_eq!(response(&mut conn).await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_does_not_offer_the_topic_answers_404() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let mut conn = sas_renewer(&emu, "no-topic", HUB_API_CREDENTIALS).await;
    emu.set_hub_faults(
        &hub,
        HubFaults {
            credentials_topic_disabled: true,
            ..HubFaults::default()
        },
    )
    .unwrap();
    request(
        &mut conn,
        "1",
        &json!({ "id": "no-topic", "csr": csr("no-topic").1 }),
    )
    .await;
    let (status, _, error) = response(&mut conn).await;
    assert_eq!((status, error["errorCode"].as_u64()), (404, Some(404_000)));
    assert_eq!(
        error["info"]["credentialError"],
        "CertificateIssuanceNotEnabled"
    );

    // A connection with an older api-version is not offered the topic either.
    emu.set_hub_faults(&hub, HubFaults::default()).unwrap();
    let mut old = sas_renewer(&emu, "old-api", "2021-04-12").await;
    request(
        &mut old,
        "1",
        &json!({ "id": "old-api", "csr": csr("old-api").1 }),
    )
    .await;
    assert_eq!(response(&mut old).await.0, 404);
}
