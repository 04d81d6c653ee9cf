//! Shared by the examples: read the standard Azure settings from the environment, or start the
//! embedded emulator when they are absent.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use dps_client::TlsConfig;
use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentGroup, EnrollmentSettings,
    IndividualEnrollment,
};
use dps_emulator::{Behaviour, Emulator, EmulatorConfig};

/// Where to provision: Azure, or the embedded emulator (kept alive as long as this value).
pub struct Target {
    /// `host` or `host:port` of the DPS endpoint (MQTT port).
    pub endpoint: String,
    /// `host:port` for MQTT over WebSocket.
    pub websocket_endpoint: String,
    /// The id scope.
    pub id_scope: String,
    /// The TLS policy (the emulator's CA added when it runs locally).
    pub tls: TlsConfig,
    /// The embedded emulator, if used.
    pub emulator: Option<Emulator>,
    _data_dir: Option<tempfile::TempDir>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Target {
    /// Azure when `PROVISIONING_HOST` and `PROVISIONING_IDSCOPE` are set, else a fresh emulator.
    pub async fn from_env_or_emulator() -> Result<Self, Box<dyn std::error::Error>> {
        if let (Some(host), Some(id_scope)) =
            (env("PROVISIONING_HOST"), env("PROVISIONING_IDSCOPE"))
        {
            return Ok(Self {
                websocket_endpoint: host.clone(),
                endpoint: host,
                id_scope,
                tls: TlsConfig::default(),
                emulator: None,
                _data_dir: None,
            });
        }
        println!("(no Azure settings found: starting the local emulator)");
        let dir = tempfile::tempdir()?;
        let config = EmulatorConfig::new(dir.path()).behaviour(Behaviour {
            retry_after_seconds: 1,
            polls_before_assignment: 0,
            ..Behaviour::default()
        });
        let emulator = Emulator::start(config).await?;
        let tls = TlsConfig::default()
            .webpki_roots(false)
            .add_root(emulator.ca_der().clone());
        Ok(Self {
            endpoint: format!("localhost:{}", emulator.mqtt_addr().port()),
            websocket_endpoint: format!("localhost:{}", emulator.https_addr().port()),
            id_scope: emulator.id_scope().to_owned(),
            tls,
            emulator: Some(emulator),
            _data_dir: Some(dir),
        })
    }

    /// On the emulator, enrolls `registration_id` with a symmetric key and returns the key;
    /// on Azure, returns `PROVISIONING_SYMMETRIC_KEY`.
    pub async fn symmetric_key(
        &self,
        registration_id: &str,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let Some(emulator) = &self.emulator else {
            return env("PROVISIONING_SYMMETRIC_KEY")
                .ok_or_else(|| "PROVISIONING_SYMMETRIC_KEY is not set".into());
        };
        let enrollment = emulator
            .put_enrollment(
                IndividualEnrollment {
                    registration_id: registration_id.to_owned(),
                    device_id: None,
                    registration_state: None,
                    optional_device_information: None,
                    settings: EnrollmentSettings {
                        attestation: AttestationMechanism {
                            kind: AttestationType::SymmetricKey,
                            ..AttestationMechanism::default()
                        },
                        ..EnrollmentSettings::default()
                    },
                },
                None,
            )
            .await?;
        let keys = enrollment
            .settings
            .attestation
            .symmetric_key
            .unwrap_or_default();
        keys.primary_key.ok_or_else(|| "no key generated".into())
    }

    /// On the emulator, creates a symmetric-key enrollment group and returns its key; on Azure,
    /// returns `PROVISIONING_GROUP_KEY`.
    pub async fn group_key(&self, group_id: &str) -> Result<String, Box<dyn std::error::Error>> {
        let Some(emulator) = &self.emulator else {
            return env("PROVISIONING_GROUP_KEY")
                .ok_or_else(|| "PROVISIONING_GROUP_KEY is not set".into());
        };
        let group = emulator
            .put_enrollment_group(
                EnrollmentGroup {
                    enrollment_group_id: group_id.to_owned(),
                    settings: EnrollmentSettings {
                        attestation: AttestationMechanism {
                            kind: AttestationType::SymmetricKey,
                            ..AttestationMechanism::default()
                        },
                        ..EnrollmentSettings::default()
                    },
                },
                None,
            )
            .await?;
        let keys = group.settings.attestation.symmetric_key.unwrap_or_default();
        keys.primary_key.ok_or_else(|| "no key generated".into())
    }

    /// How long a registration may take: generous on Azure, short locally.
    pub fn deadline(&self) -> Duration {
        if self.emulator.is_some() {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(120)
        }
    }
}

/// The registration id: `PROVISIONING_REGISTRATION_ID`, or `default`.
pub fn registration_id(default: &str) -> String {
    env("PROVISIONING_REGISTRATION_ID").unwrap_or_else(|| default.to_owned())
}
