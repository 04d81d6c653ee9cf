//! The harness of the suite: the setup under test and the steps the cases share.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dps_auth::{Credentials, SasResource, SasStyle, SasToken, SymmetricKey, generate_sas};
use dps_emulator::Emulator;
use dps_transport_mqtt::rustls::pki_types::CertificateDer;
use dps_transport_mqtt::{
    ConnectOptions, Incoming, MqttConnection, QoS, TlsConfig, TlsErrorKind, Transport,
    TransportError,
};

use super::STEP;
use super::echo::EchoServer;
use crate::emulator::TestEmulator;

pub(super) const REGISTER_FILTER: &str = "$dps/registrations/res/#";

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
    /// The transport under test.
    pub transport: Arc<dyn Transport>,
    /// The emulator listener it speaks to.
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

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The TLS policy trusting only `ca`.
pub fn trusting(ca: &CertificateDer<'static>) -> TlsConfig {
    TlsConfig::new().webpki_roots(false).add_root(ca.clone())
}

/// Enrolls `registration_id` with a fixed symmetric key and returns the key.
pub(super) async fn enroll_sas(emulator: &TestEmulator, registration_id: &str) -> SymmetricKey {
    let key_b64 = "c2VjcmV0LWtleS1mb3ItdGhlLXRyYW5zcG9ydC10ZXN0cw==";
    emulator
        .enroll_symmetric_with_key(registration_id, key_b64)
        .await;
    SymmetricKey::from_base64(key_b64).unwrap()
}

pub(super) fn sas_credentials(
    key: &SymmetricKey,
    scope: &str,
    registration_id: &str,
) -> Credentials {
    let token = generate_sas(
        key,
        &SasResource::dps(scope, registration_id),
        &SasStyle::documented_dps(),
        unix_now() + 3600,
    )
    .unwrap();
    Credentials::Sas(token)
}

pub(super) fn dps_options(
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
pub(super) fn echo_options(setup: &Setup, server: &EchoServer, client_id: &str) -> ConnectOptions {
    ConnectOptions::new(
        setup.echo_host(server),
        client_id,
        "user",
        Credentials::Sas(SasToken::from("not-checked".to_owned())),
    )
    .with_tls(trusting(server.tls.ca_certificate()))
}

/// Options for a TLS test server at `port` (nothing past TLS is expected to work).
pub(super) fn tls_only_options(port: u16, tls: TlsConfig) -> ConnectOptions {
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

pub(super) async fn connect(setup: &Setup, options: &ConnectOptions) -> MqttConnection {
    tokio::time::timeout(STEP * 2, setup.transport.connect(options))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("{} connect failed: {e}", setup.transport.name()))
}

pub(super) async fn connect_err(setup: &Setup, options: &ConnectOptions) -> TransportError {
    tokio::time::timeout(STEP * 2, setup.transport.connect(options))
        .await
        .expect("connect attempt in time")
        .expect_err("the connection must be refused")
}

/// The next publish, within [`STEP`], acknowledged when it came at QoS 1: the transport never
/// acknowledges on its own.
pub(super) async fn next_publish(connection: &mut MqttConnection) -> (String, bytes::Bytes, QoS) {
    let (topic, payload, packet_id, qos) = next_unacked(connection).await;
    if let Some(packet_id) = packet_id {
        connection.ack(packet_id).expect("the connection is open");
    }
    (topic, payload, qos)
}

/// The next publish, within [`STEP`], left unacknowledged.
pub(super) async fn next_unacked(
    connection: &mut MqttConnection,
) -> (String, bytes::Bytes, Option<u16>, QoS) {
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
pub(super) async fn register(connection: &mut MqttConnection, registration_id: &str, rid: u32) {
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

pub(super) fn assert_tls(error: &TransportError, expected: TlsErrorKind) {
    match error {
        TransportError::Tls { kind, .. } => assert_eq!(*kind, expected, "{error}"),
        other => panic!("expected a tls {expected:?} error, got {other:?}"),
    }
    assert!(!error.is_retriable(), "{error}");
}
