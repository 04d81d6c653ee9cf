//! The transport conformance suite, shared by `dps-transport-mqtt` and `dps-transport-ws`
//! (included there with `#[path]`). Every case takes a [`Setup`]: the transport under test and
//! which of the emulator's ports it speaks to. `conformance_suite!(setup)` expands to one
//! `#[tokio::test]` per case.

#![allow(dead_code, unreachable_pub, unused_macros)]

pub mod echo;
pub mod pki;
pub mod silent;
pub mod tls_servers;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dps_auth::{
    Credentials, SasResource, SasStyle, SasToken, SymmetricKey, X509Identity, generate_sas,
};
use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentGroup, EnrollmentSettings,
    IndividualEnrollment, SymmetricKeyAttestation, X509Attestation, X509CertificateWithInfo,
    X509Certificates,
};
use dps_emulator::{Emulator, EmulatorConfig};
use dps_transport_mqtt::rustls::pki_types::CertificateDer;
use dps_transport_mqtt::{
    CloseReason, ConnectOptions, Incoming, MqttConnection, QoS, TimeoutStage, TlsConfig,
    TlsErrorKind, Transport, TransportError,
};
use tempfile::TempDir;

use echo::{EchoServer, Event};
use pki::Ca;

/// The longest any single step may take.
pub const STEP: Duration = Duration::from_secs(5);
const REGISTER_FILTER: &str = "$dps/registrations/res/#";

/// Which listener a transport talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// MQTT over TLS.
    Mqtt,
    /// HTTPS (MQTT over WebSocket).
    Https,
}

/// The transport under test.
#[derive(Debug, Clone)]
pub struct Setup {
    pub transport: Arc<dyn Transport>,
    pub port: Port,
}

impl Setup {
    fn pick(&self, mqtt: std::net::SocketAddr, https: std::net::SocketAddr) -> u16 {
        match self.port {
            Port::Mqtt => mqtt.port(),
            Port::Https => https.port(),
        }
    }

    fn dps_host(&self, emulator: &Emulator) -> String {
        format!(
            "localhost:{}",
            self.pick(emulator.mqtt_addr(), emulator.https_addr())
        )
    }

    fn echo_host(&self, server: &EchoServer) -> String {
        format!(
            "localhost:{}",
            self.pick(server.servers.mqtt_addr(), server.servers.https_addr())
        )
    }
}

/// Expands to one test per conformance case.
macro_rules! conformance_suite {
    ($setup:expr) => {
        conformance_suite!(@cases $setup;
            sas_register_round_trip,
            x509_chain_via_intermediate_group,
            x509_full_chain_is_presented,
            wrong_key_is_refused_with_code_5,
            qos2_is_unsupported_and_never_sent,
            keep_alive_pings_keep_an_idle_connection_open,
            dropping_the_connection_closes_it,
            dropping_a_registration_future_midway_closes_it,
            disconnect_is_clean,
            echo_round_trip_and_concurrent_senders,
            outstanding_operations_fail_when_the_connection_dies,
            incoming_publishes_are_acknowledged_only_on_request,
            subscribe_times_out,
            a_silent_server_is_detected_by_keep_alive,
            connect_times_out_in_the_tls_stage,
            client_hello_offers_only_the_policy_and_tls11_is_refused,
            ecc_only_offers_only_ecdsa,
            cbc_suite_server_is_refused,
            wrong_host_name_is_refused,
            untrusted_ca_is_refused,
            expired_certificate_is_refused,
            debug_output_hides_the_token,
        );
    };
    (@cases $setup:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                common::$case($setup).await;
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------
// Harness

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The TLS policy trusting only `ca`.
pub fn trusting(ca: &CertificateDer<'static>) -> TlsConfig {
    TlsConfig::new().webpki_roots(false).add_root(ca.clone())
}

async fn start_dps() -> (TempDir, Emulator) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorConfig::new(dir.path()))
        .await
        .unwrap();
    (dir, emulator)
}

fn settings(attestation: AttestationMechanism) -> EnrollmentSettings {
    EnrollmentSettings {
        attestation,
        ..EnrollmentSettings::default()
    }
}

/// Enrolls `registration_id` with a fresh symmetric key and returns the key.
async fn enroll_sas(emulator: &Emulator, registration_id: &str) -> SymmetricKey {
    let key_b64 = "c2VjcmV0LWtleS1mb3ItdGhlLXRyYW5zcG9ydC10ZXN0cw==";
    emulator
        .put_enrollment(
            IndividualEnrollment {
                registration_id: registration_id.into(),
                device_id: None,
                registration_state: None,
                optional_device_information: None,
                settings: settings(AttestationMechanism {
                    kind: AttestationType::SymmetricKey,
                    symmetric_key: Some(SymmetricKeyAttestation {
                        primary_key: Some(key_b64.into()),
                        secondary_key: None,
                    }),
                    ..AttestationMechanism::default()
                }),
            },
            None,
        )
        .await
        .unwrap();
    SymmetricKey::from_base64(key_b64).unwrap()
}

/// Enrolls an X.509 group whose signing certificate is `signing_pem`.
async fn enroll_x509_group(emulator: &Emulator, group_id: &str, signing_pem: String) {
    emulator
        .put_enrollment_group(
            EnrollmentGroup {
                enrollment_group_id: group_id.into(),
                settings: settings(AttestationMechanism {
                    kind: AttestationType::X509,
                    x509: Some(X509Attestation {
                        signing_certificates: Some(X509Certificates {
                            primary: Some(X509CertificateWithInfo {
                                certificate: Some(signing_pem),
                                info: None,
                            }),
                            secondary: None,
                        }),
                        ..X509Attestation::default()
                    }),
                    ..AttestationMechanism::default()
                }),
            },
            None,
        )
        .await
        .unwrap();
}

fn sas_credentials(key: &SymmetricKey, scope: &str, registration_id: &str) -> Credentials {
    let token = generate_sas(
        key,
        &SasResource::dps(scope, registration_id),
        &SasStyle::documented_dps(),
        unix_now() + 3600,
    )
    .unwrap();
    Credentials::Sas(token)
}

fn dps_options(
    setup: &Setup,
    emulator: &Emulator,
    registration_id: &str,
    credentials: Credentials,
) -> ConnectOptions {
    ConnectOptions::new(
        setup.dps_host(emulator),
        registration_id,
        format!(
            "{}/registrations/{registration_id}/api-version=2019-03-31",
            emulator.id_scope()
        ),
        credentials,
    )
    .with_tls(trusting(emulator.ca_der()))
}

/// Options for the echo server (which accepts anyone).
fn echo_options(setup: &Setup, server: &EchoServer, client_id: &str) -> ConnectOptions {
    ConnectOptions::new(
        setup.echo_host(server),
        client_id,
        "user",
        Credentials::Sas(SasToken::from("not-checked".to_owned())),
    )
    .with_tls(trusting(server.tls.ca_certificate()))
}

/// Options for a TLS test server at `port` (nothing past TLS is expected to work).
fn tls_only_options(port: u16, tls: TlsConfig) -> ConnectOptions {
    ConnectOptions::new(
        format!("localhost:{port}"),
        "dev",
        "user",
        Credentials::Sas(SasToken::from(
            "SharedAccessSignature sr=x&sig=SECRET&se=1".to_owned(),
        )),
    )
    .with_tls(tls)
    .with_connect_timeout(STEP)
}

async fn connect(setup: &Setup, options: &ConnectOptions) -> MqttConnection {
    tokio::time::timeout(STEP * 2, setup.transport.connect(options))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("{} connect failed: {e}", setup.transport.name()))
}

async fn connect_err(setup: &Setup, options: &ConnectOptions) -> TransportError {
    tokio::time::timeout(STEP * 2, setup.transport.connect(options))
        .await
        .expect("connect attempt in time")
        .expect_err("the connection must be refused")
}

/// The next publish, within [`STEP`], acknowledged when it came at QoS 1.
async fn next_publish(connection: &mut MqttConnection) -> (String, bytes::Bytes, QoS) {
    let (topic, payload, packet_id, qos) = next_unacked(connection).await;
    if let Some(packet_id) = packet_id {
        connection.ack(packet_id).unwrap();
    }
    (topic, payload, qos)
}

/// The next publish, within [`STEP`], left unacknowledged.
async fn next_unacked(connection: &mut MqttConnection) -> (String, bytes::Bytes, Option<u16>, QoS) {
    match tokio::time::timeout(STEP, connection.recv())
        .await
        .expect("a message in time")
    {
        Some(Incoming::Publish {
            topic,
            payload,
            packet_id,
            qos,
            ..
        }) => {
            assert_eq!(packet_id.is_some(), qos == QoS::AtLeastOnce);
            (topic, payload, packet_id, qos)
        }
        other => panic!(
            "expected a publish, got {other:?} ({:?})",
            connection.close_reason()
        ),
    }
}

/// Subscribes to the DPS responses, sends a register request and checks the 202 answer.
async fn register(connection: &mut MqttConnection, registration_id: &str, rid: u32) {
    let granted = connection
        .subscribe(&[(REGISTER_FILTER, QoS::AtLeastOnce)])
        .await
        .unwrap();
    assert_eq!(granted, vec![Some(QoS::AtLeastOnce)]);
    connection
        .publish(
            &format!("$dps/registrations/PUT/iotdps-register/?$rid={rid}"),
            format!(r#"{{"registrationId":"{registration_id}"}}"#),
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let (topic, payload, qos) = next_publish(connection).await;
    assert!(
        topic.starts_with(&format!("$dps/registrations/res/202/?$rid={rid}")),
        "{topic}"
    );
    assert_eq!(qos, QoS::AtLeastOnce);
    let body = String::from_utf8_lossy(&payload);
    assert!(body.contains("\"operationId\""), "{body}");
    assert!(body.contains("assigning"), "{body}");
}

fn assert_tls(error: &TransportError, expected: TlsErrorKind) {
    match error {
        TransportError::Tls { kind, .. } => assert_eq!(*kind, expected, "{error}"),
        other => panic!("expected a tls {expected:?} error, got {other:?}"),
    }
    assert!(!error.is_retriable(), "{error}");
}

// ---------------------------------------------------------------------------------------------
// DPS emulator cases

pub async fn sas_register_round_trip(setup: Setup) {
    let (_dir, emulator) = start_dps().await;
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
    let (_dir, emulator) = start_dps().await;
    let root = Ca::new("Test Root CA");
    let intermediate = root.intermediate("Test Intermediate CA");
    let leaf = intermediate.client("dev-x509");
    let signing = if enroll_root {
        root.pem()
    } else {
        intermediate.pem()
    };
    enroll_x509_group(&emulator, "group-x509", signing).await;
    let chain_pem = format!("{}{}", leaf.pem, intermediate.pem());
    let identity = X509Identity::from_pem(chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    assert_eq!(identity.chain_len(), 2);
    let options = dps_options(&setup, &emulator, "dev-x509", Credentials::X509(identity));
    let mut connection = connect(&setup, &options).await;
    register(&mut connection, "dev-x509", 7).await;
    connection.disconnect().await;
    emulator.shutdown().await;
}

pub async fn x509_chain_via_intermediate_group(setup: Setup) {
    x509_case(setup, false).await;
}

/// The group trusts only the root, so the intermediate must come from the client's chain.
pub async fn x509_full_chain_is_presented(setup: Setup) {
    x509_case(setup, true).await;
}

pub async fn wrong_key_is_refused_with_code_5(setup: Setup) {
    let (_dir, emulator) = start_dps().await;
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

pub async fn qos2_is_unsupported_and_never_sent(setup: Setup) {
    let (_dir, emulator) = start_dps().await;
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

pub async fn keep_alive_pings_keep_an_idle_connection_open(setup: Setup) {
    let (_dir, emulator) = start_dps().await;
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

// ---------------------------------------------------------------------------------------------
// Echo server cases

pub async fn dropping_the_connection_closes_it(setup: Setup) {
    let mut server = EchoServer::start().await;
    let connection = connect(&setup, &echo_options(&setup, &server, "dev-drop")).await;
    let sender = connection.sender();
    drop(connection);
    assert_eq!(
        server.closed("dev-drop").await,
        dps_emulator::CloseReason::ClientDisconnect
    );
    // A sender outliving the connection fails instead of hanging.
    let error = sender
        .publish("t", "x", QoS::AtLeastOnce)
        .await
        .unwrap_err();
    assert_eq!(error, TransportError::ConnectionClosed);
    assert!(sender.is_closed());
    server.servers.shutdown().await;
}

pub async fn dropping_a_registration_future_midway_closes_it(setup: Setup) {
    let mut server = EchoServer::start().await;
    let options = echo_options(&setup, &server, "dev-cancel");
    let transport = Arc::clone(&setup.transport);
    let registration = async move {
        let mut connection = transport.connect(&options).await.unwrap();
        connection
            .subscribe(&[("replies/#", QoS::AtLeastOnce)])
            .await
            .unwrap();
        // No reply ever comes: the future is dropped while waiting here.
        connection.recv().await
    };
    let outcome = tokio::time::timeout(Duration::from_millis(1500), registration).await;
    assert!(outcome.is_err(), "the registration must still be waiting");
    assert_eq!(
        server.closed("dev-cancel").await,
        dps_emulator::CloseReason::ClientDisconnect
    );
    server.servers.shutdown().await;
}

pub async fn disconnect_is_clean(setup: Setup) {
    let mut server = EchoServer::start().await;
    let connection = connect(&setup, &echo_options(&setup, &server, "dev-bye")).await;
    let sender = connection.sender();
    connection.disconnect().await;
    assert_eq!(
        server.closed("dev-bye").await,
        dps_emulator::CloseReason::ClientDisconnect
    );
    assert!(sender.is_closed());
    server.servers.shutdown().await;
}

pub async fn echo_round_trip_and_concurrent_senders(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-echo")).await;
    let granted = connection
        .subscribe(&[
            ("echo/#", QoS::AtLeastOnce),
            ("forbidden/x", QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    assert_eq!(granted, vec![Some(QoS::AtLeastOnce), None]);

    // QoS 0 resolves once written; its echo comes back at QoS 0.
    connection
        .publish("zero", "0", QoS::AtMostOnce)
        .await
        .unwrap();
    let (topic, payload, qos) = next_publish(&mut connection).await;
    assert_eq!(
        (topic.as_str(), &payload[..], qos),
        ("echo/zero", &b"0"[..], QoS::AtMostOnce)
    );

    // Concurrent QoS 1 publishes from sender clones while this task receives.
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let sender = connection.sender();
            tokio::spawn(async move {
                sender
                    .publish(&format!("n/{i}"), vec![b'x'; 1000 * i], QoS::AtLeastOnce)
                    .await
            })
        })
        .collect();
    let mut topics = Vec::new();
    for _ in 0..5 {
        let (topic, payload, qos) = next_publish(&mut connection).await;
        assert_eq!(qos, QoS::AtLeastOnce);
        let i: usize = topic.rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(payload.len(), 1000 * i);
        topics.push(topic);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    topics.sort();
    assert_eq!(
        topics,
        (0..5).map(|i| format!("echo/n/{i}")).collect::<Vec<_>>()
    );
    // Every QoS 1 echo was acknowledged, by `next_publish`.
    for _ in 0..5 {
        server
            .wait_for("dev-echo", |e| matches!(e, Event::PubAck(..)).then_some(()))
            .await;
    }
    connection.unsubscribe(&["echo/#"]).await.unwrap();
    connection.disconnect().await;
    server.servers.shutdown().await;
}

/// The session never acknowledges an incoming publish by itself: only `ack` sends PUBACK.
pub async fn incoming_publishes_are_acknowledged_only_on_request(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-ack")).await;
    connection
        .subscribe(&[("echo/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    connection
        .publish("first", "1", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (topic, _, first, _) = next_unacked(&mut connection).await;
    assert_eq!(topic, "echo/first");
    connection
        .publish("second", "2", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (topic, _, second, _) = next_unacked(&mut connection).await;
    assert_eq!(topic, "echo/second");
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first, second);
    connection.ack(second).unwrap();
    // The first PUBACK the server sees is the one asked for: the first echo was never acked.
    let acked = server
        .wait_for("dev-ack", |e| match e {
            Event::PubAck(_, pkid) => Some(*pkid),
            _ => None,
        })
        .await;
    assert_eq!(acked, second);
    connection.disconnect().await;
    server.servers.shutdown().await;
}

pub async fn outstanding_operations_fail_when_the_connection_dies(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-die")).await;
    // The server closes on this publish without acknowledging it.
    let error = tokio::time::timeout(STEP, connection.publish("close-me", "x", QoS::AtLeastOnce))
        .await
        .expect("the publish must not hang")
        .unwrap_err();
    assert_eq!(error, TransportError::ConnectionClosed);
    assert!(error.is_retriable());
    assert_eq!(
        tokio::time::timeout(STEP, connection.recv()).await.unwrap(),
        None
    );
    assert!(matches!(
        connection.close_reason(),
        Some(CloseReason::ClosedByPeer | CloseReason::Network { .. })
    ));
    let error = connection
        .subscribe(&[("a", QoS::AtMostOnce)])
        .await
        .unwrap_err();
    assert_eq!(error, TransportError::ConnectionClosed);
    server.closed("dev-die").await;
    server.servers.shutdown().await;
}

pub async fn subscribe_times_out(setup: Setup) {
    let server = EchoServer::start().await;
    let options = echo_options(&setup, &server, "dev-slow")
        .with_subscribe_timeout(Duration::from_millis(300));
    let connection = connect(&setup, &options).await;
    let error = connection
        .subscribe(&[("slow/x", QoS::AtLeastOnce)])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        TransportError::Timeout {
            stage: TimeoutStage::Subscribe
        }
    );
    drop(connection);
    server.servers.shutdown().await;
}

/// The server accepts the connection, then never answers (not even PINGRESP).
pub async fn a_silent_server_is_detected_by_keep_alive(setup: Setup) {
    let ca = Ca::new("Silent CA");
    let addr = silent::server(&ca, setup.port == Port::Https).await;
    let options =
        tls_only_options(addr.port(), trusting(&ca.der())).with_keep_alive(Duration::from_secs(1));
    let mut connection = connect(&setup, &options).await;
    let started = std::time::Instant::now();
    let sender = connection.sender();
    let pending = tokio::spawn(async move { sender.publish("t", "x", QoS::AtLeastOnce).await });
    assert_eq!(
        tokio::time::timeout(STEP, connection.recv()).await.unwrap(),
        None
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1300) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}"
    );
    assert_eq!(
        connection.close_reason(),
        Some(CloseReason::KeepAliveTimeout)
    );
    assert_eq!(
        pending.await.unwrap(),
        Err(TransportError::ConnectionClosed)
    );
}

// ---------------------------------------------------------------------------------------------
// TLS policy cases

/// A TCP listener that accepts and never answers: the handshake cannot finish.
pub async fn connect_times_out_in_the_tls_stage(setup: Setup) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let options =
        tls_only_options(port, TlsConfig::new()).with_connect_timeout(Duration::from_millis(400));
    let error = connect_err(&setup, &options).await;
    assert_eq!(
        error,
        TransportError::Timeout {
            stage: TimeoutStage::Tls
        }
    );
    assert!(error.is_retriable());
    hold.abort();
}

const TLS13_SUITES: [u16; 3] = [0x1301, 0x1302, 0x1303];
const ECDSA_GCM: [u16; 2] = [0xc02b, 0xc02c];
const RSA_GCM: [u16; 2] = [0xc02f, 0xc030];
/// Not a suite: the renegotiation signalling value.
const SCSV: u16 = 0x00ff;

pub async fn client_hello_offers_only_the_policy_and_tls11_is_refused(setup: Setup) {
    // Answers with a TLS 1.1 ServerHello choosing ECDHE-ECDSA-AES128-CBC-SHA.
    let (addr, hello) = tls_servers::raw_server(tls_servers::server_hello([3, 2], 0xc009)).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), TlsConfig::new())).await;
    assert_tls(&error, TlsErrorKind::UnsupportedVersion);

    let hello = hello.await.unwrap();
    assert_eq!(hello.legacy_version, 0x0303);
    let mut versions = hello.supported_versions.clone();
    versions.sort_unstable();
    assert_eq!(versions, vec![0x0303, 0x0304], "only TLS 1.2 and 1.3");
    let allowed: Vec<u16> = TLS13_SUITES
        .iter()
        .chain(&ECDSA_GCM)
        .chain(&RSA_GCM)
        .copied()
        .collect();
    let offered: Vec<u16> = hello
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| *s != SCSV)
        .collect();
    let mut sorted = offered.clone();
    sorted.sort_unstable();
    let mut expected = allowed.clone();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "offered {offered:04x?}");
    assert_eq!(hello.server_name.as_deref(), Some("localhost"));
}

pub async fn ecc_only_offers_only_ecdsa(setup: Setup) {
    let (addr, hello) = tls_servers::raw_server(tls_servers::server_hello([3, 2], 0xc009)).await;
    let tls = TlsConfig::new().ecc_only(true);
    let _ = connect_err(&setup, &tls_only_options(addr.port(), tls)).await;
    let hello = hello.await.unwrap();
    for suite in &hello.cipher_suites {
        assert!(
            TLS13_SUITES.contains(suite) || ECDSA_GCM.contains(suite) || *suite == SCSV,
            "{suite:04x} offered in ecc-only mode"
        );
    }
    assert!(ECDSA_GCM.iter().all(|s| hello.cipher_suites.contains(s)));
    assert!(!hello.signature_algorithms.is_empty());
    for scheme in &hello.signature_algorithms {
        assert!(
            [0x0403, 0x0503, 0x0603].contains(scheme),
            "{scheme:04x} offered in ecc-only mode"
        );
    }

    // The emulator's certificate is ECDSA: ECC-only mode connects to it.
    let mut server = EchoServer::start().await;
    let mut options = echo_options(&setup, &server, "dev-ecc");
    options.tls = options.tls.clone().ecc_only(true);
    let connection = connect(&setup, &options).await;
    connection.disconnect().await;
    server.closed("dev-ecc").await;
    server.servers.shutdown().await;
}

pub async fn cbc_suite_server_is_refused(setup: Setup) {
    // A TLS 1.2 ServerHello choosing ECDHE-RSA-AES256-CBC-SHA384 (accepted by the service once,
    // never offered by this client).
    let (addr, _hello) = tls_servers::raw_server(tls_servers::server_hello([3, 3], 0xc028)).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), TlsConfig::new())).await;
    assert_tls(&error, TlsErrorKind::Negotiation);
}

pub async fn wrong_host_name_is_refused(setup: Setup) {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["other.example"], None);
    let addr = tls_servers::rustls_server(&leaf, vec![]).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), trusting(&ca.der()))).await;
    assert_tls(&error, TlsErrorKind::WrongName);
}

pub async fn untrusted_ca_is_refused(setup: Setup) {
    let trusted = Ca::new("Trusted CA");
    let other = Ca::new("Other CA");
    let leaf = other.server(&["localhost"], None);
    let addr = tls_servers::rustls_server(&leaf, vec![]).await;
    let error = connect_err(
        &setup,
        &tls_only_options(addr.port(), trusting(&trusted.der())),
    )
    .await;
    assert_tls(&error, TlsErrorKind::UnknownIssuer);
    // The webpki roots do not trust it either.
    let error = connect_err(&setup, &tls_only_options(addr.port(), TlsConfig::new())).await;
    assert_tls(&error, TlsErrorKind::UnknownIssuer);
}

pub async fn expired_certificate_is_refused(setup: Setup) {
    let ca = Ca::new("Test CA");
    let now = time::OffsetDateTime::now_utc();
    let leaf = ca.server(
        &["localhost"],
        Some((
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )),
    );
    let addr = tls_servers::rustls_server(&leaf, vec![]).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), trusting(&ca.der()))).await;
    assert_tls(&error, TlsErrorKind::Expired);
}

pub async fn debug_output_hides_the_token(setup: Setup) {
    let options = tls_only_options(1, TlsConfig::new());
    let text = format!("{options:?} {:?}", setup.transport);
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("redacted"), "{text}");
}
