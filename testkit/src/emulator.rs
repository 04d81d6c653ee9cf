//! The emulator in-process for a test: DPS and IoT Hub on ephemeral loopback ports, its data
//! in a temporary directory that lives as long as the fixture, and helpers that enroll devices
//! and hand back what a client needs (endpoint, CA, key or identity).
//!
//! Nothing here builds a client: tests build their own from these raw pieces.

use std::ops::Deref;

use base64::Engine as _;
use dps_auth::{GroupKey, SymmetricKey};
use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentGroup, EnrollmentSettings, HubAuthType,
    HubAuthentication, IndividualEnrollment, SymmetricKeyAttestation, X509Attestation,
    X509CertificateWithInfo, X509Certificates,
};
use dps_emulator::{DeviceIdentity, Emulator, EmulatorConfig, ModuleIdentity};
use dps_transport_mqtt::TlsConfig;
use tempfile::TempDir;

use crate::pki::{self, Leaf};

/// A running emulator and the temporary directory holding its data (removed on drop, after
/// the emulator stops).
pub struct TestEmulator {
    emulator: Emulator,
    /// What it was started with, for [`restart`](Self::restart).
    config: EmulatorConfig,
    _dir: TempDir,
}

impl std::fmt::Debug for TestEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEmulator")
            .field("mqtt", &self.emulator.mqtt_addr())
            .field("https", &self.emulator.https_addr())
            .finish_non_exhaustive()
    }
}

impl Deref for TestEmulator {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

impl TestEmulator {
    /// An emulator with its default configuration (ephemeral ports, the default hub).
    pub async fn start() -> Self {
        Self::start_with(|config| config).await
    }

    /// An emulator whose configuration `adjust` edits (the data directory is already set).
    pub async fn start_with(adjust: impl FnOnce(EmulatorConfig) -> EmulatorConfig) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = adjust(EmulatorConfig::new(dir.path()));
        let emulator = Emulator::start(config.clone())
            .await
            .expect("the emulator starts");
        Self {
            emulator,
            config,
            _dir: dir,
        }
    }

    /// Stops the emulator (closing every connection and writing its state) and starts it
    /// again on the same ports with the same data directory, as after a process restart.
    /// What lives only in memory starts afresh: the events feed, injected faults.
    pub async fn restart(self) -> Self {
        let Self {
            emulator,
            mut config,
            _dir,
        } = self;
        config.mqtt_port = emulator.mqtt_addr().port();
        config.https_port = emulator.https_addr().port();
        emulator.shutdown().await;
        let emulator = Emulator::start(config.clone())
            .await
            .expect("the emulator restarts on its ports");
        Self {
            emulator,
            config,
            _dir,
        }
    }

    /// Stops the emulator (its listeners and sessions), then removes its data.
    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }

    /// The emulator itself.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// `localhost:{port}` of the MQTT over TLS listener (DPS and IoT Hub alike).
    pub fn mqtt_endpoint(&self) -> String {
        format!("localhost:{}", self.emulator.mqtt_addr().port())
    }

    /// `localhost:{port}` of the HTTPS listener (MQTT over WebSocket, the service APIs).
    pub fn https_endpoint(&self) -> String {
        format!("localhost:{}", self.emulator.https_addr().port())
    }

    /// The DPS endpoint for MQTT over TLS (the emulator's certificate names `localhost`).
    pub fn dps_endpoint(&self) -> String {
        self.mqtt_endpoint()
    }

    /// The IoT Hub endpoint for MQTT over TLS (the same listener as DPS).
    pub fn hub_endpoint(&self) -> String {
        self.mqtt_endpoint()
    }

    /// The host name of the emulator's default hub.
    pub fn hub(&self) -> &str {
        self.emulator.default_hub()
    }

    /// A TLS policy trusting the emulator's CA only (the CA itself, DER or PEM, is
    /// [`Emulator::ca_der`] / [`Emulator::ca_pem`], reached through `Deref`).
    pub fn tls(&self) -> TlsConfig {
        TlsConfig::default()
            .webpki_roots(false)
            .add_root(self.emulator.ca_der().clone())
    }

    /// Creates the individual enrollment `enrollment`; the enrollment as stored.
    pub async fn put_enrollment_value(&self, value: serde_json::Value) -> IndividualEnrollment {
        let enrollment = serde_json::from_value(value).expect("a valid individual enrollment");
        self.emulator
            .put_enrollment(enrollment, None)
            .await
            .expect("the enrollment is created")
    }

    /// Creates the enrollment group `value` (service-API JSON); the group as stored.
    pub async fn put_group_value(&self, value: serde_json::Value) -> EnrollmentGroup {
        let group = serde_json::from_value(value).expect("a valid enrollment group");
        self.emulator
            .put_enrollment_group(group, None)
            .await
            .expect("the enrollment group is created")
    }

    /// Creates the individual enrollment `value` (service-API JSON, symmetric key); its
    /// primary key.
    pub async fn enroll_symmetric_value(&self, value: serde_json::Value) -> SymmetricKey {
        let created = self.put_enrollment_value(value).await;
        let primary = primary_key(created.settings.attestation.symmetric_key);
        SymmetricKey::from_base64(&primary).expect("a valid primary key")
    }

    /// A symmetric-key individual enrollment for `registration_id` (keys generated by the
    /// emulator); its primary key.
    pub async fn enroll_symmetric(&self, registration_id: &str) -> SymmetricKey {
        self.enroll_symmetric_value(serde_json::json!({
            "registrationId": registration_id,
            "attestation": { "type": "symmetricKey" },
        }))
        .await
    }

    /// A symmetric-key individual enrollment for `registration_id` with the given primary key.
    pub async fn enroll_symmetric_with_key(&self, registration_id: &str, primary_b64: &str) {
        self.emulator
            .put_enrollment(
                IndividualEnrollment {
                    registration_id: registration_id.into(),
                    device_id: None,
                    registration_state: None,
                    optional_device_information: None,
                    settings: settings(AttestationMechanism {
                        kind: AttestationType::SymmetricKey,
                        symmetric_key: Some(SymmetricKeyAttestation {
                            primary_key: Some(primary_b64.into()),
                            secondary_key: None,
                        }),
                        ..AttestationMechanism::default()
                    }),
                },
                None,
            )
            .await
            .expect("the enrollment is created");
    }

    /// Creates the symmetric-key enrollment group `value` (service-API JSON); its primary key.
    pub async fn enroll_group_value(&self, value: serde_json::Value) -> GroupKey {
        let created = self.put_group_value(value).await;
        let primary = primary_key(created.settings.attestation.symmetric_key);
        GroupKey::from_base64(&primary).expect("a valid group key")
    }

    /// A symmetric-key enrollment group `group_id` (keys generated by the emulator); its
    /// primary key, from which each device's key derives.
    pub async fn enroll_group(&self, group_id: &str) -> GroupKey {
        self.enroll_group_value(serde_json::json!({
            "enrollmentGroupId": group_id,
            "attestation": { "type": "symmetricKey" },
        }))
        .await
    }

    /// An individual X.509 enrollment for `registration_id` with a fresh self-signed device
    /// certificate; the device's certificate and key.
    pub async fn enroll_x509(&self, registration_id: &str) -> Leaf {
        let device = pki::self_signed(registration_id);
        self.put_enrollment_value(serde_json::json!({
            "registrationId": registration_id,
            "attestation": {
                "type": "x509",
                "x509": { "clientCertificates": { "primary": { "certificate": device.pem } } },
            },
        }))
        .await;
        device
    }

    /// An X.509 enrollment group `group_id` whose signing certificate is `signing_pem`.
    pub async fn enroll_x509_group(&self, group_id: &str, signing_pem: &str) {
        self.emulator
            .put_enrollment_group(
                EnrollmentGroup {
                    enrollment_group_id: group_id.into(),
                    settings: settings(AttestationMechanism {
                        kind: AttestationType::X509,
                        x509: Some(X509Attestation {
                            signing_certificates: Some(X509Certificates {
                                primary: Some(X509CertificateWithInfo {
                                    certificate: Some(signing_pem.into()),
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
            .expect("the enrollment group is created");
    }

    /// Creates a SAS device `device_id` on the default hub; its primary key (base64,
    /// deterministic: [`test_key`] seeded with the id's length).
    pub async fn create_sas_device(&self, device_id: &str) -> String {
        let key = test_key(device_id.len() as u8);
        self.emulator
            .create_device(
                self.hub(),
                DeviceIdentity {
                    device_id: device_id.into(),
                    authentication: sas(&key),
                    ..DeviceIdentity::default()
                },
            )
            .await
            .expect("the device is created");
        key
    }

    /// Creates a SAS module `module_id` on the existing device `device_id`; its primary key
    /// (base64, deterministic: [`test_key`] seeded with the id's length plus 100).
    pub async fn create_sas_module(&self, device_id: &str, module_id: &str) -> String {
        let key = test_key(module_id.len() as u8 + 100);
        self.emulator
            .create_module(
                self.hub(),
                device_id,
                ModuleIdentity {
                    module_id: module_id.into(),
                    device_id: device_id.into(),
                    authentication: sas(&key),
                    ..ModuleIdentity::default()
                },
            )
            .await
            .expect("the module is created");
        key
    }
}

/// A 32-byte key, base64, deterministic per `seed` (tests need distinct keys, not secret ones).
pub fn test_key(seed: u8) -> String {
    let bytes: Vec<u8> = (0..32u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn primary_key(attestation: Option<SymmetricKeyAttestation>) -> String {
    attestation
        .and_then(|keys| keys.primary_key)
        .expect("a symmetric-key attestation with a primary key")
}

fn settings(attestation: AttestationMechanism) -> EnrollmentSettings {
    EnrollmentSettings {
        attestation,
        ..EnrollmentSettings::default()
    }
}

fn sas(primary: &str) -> HubAuthentication {
    HubAuthentication {
        kind: HubAuthType::Sas,
        symmetric_key: Some(SymmetricKeyAttestation {
            primary_key: Some(primary.into()),
            secondary_key: None,
        }),
        x509_thumbprint: None,
    }
}
