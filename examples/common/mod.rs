//! Shared by the examples: read the standard Azure settings from the environment, or start the
//! embedded emulator when they are absent.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use dps_client::Assignment;
use dps_client::TlsConfig;
use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentGroup, EnrollmentSettings, HubAuthType,
    HubAuthentication, IndividualEnrollment, SymmetricKeyAttestation,
};
use dps_emulator::{Behaviour, DeviceIdentity, Emulator, EmulatorConfig, ModuleIdentity};
use hub_client::{HubClient, HubClientBuilder};

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

    /// A client for the hub DPS assigned, authenticating with `authenticator`: on the emulator
    /// the hub is reached at the emulator's MQTT port and trusted through its CA.
    pub fn hub_client(
        &self,
        assignment: &Assignment,
        authenticator: impl dps_auth::Authenticator + 'static,
    ) -> HubClientBuilder {
        let builder = HubClient::from_registration(assignment, authenticator).tls(self.tls.clone());
        match &self.emulator {
            Some(emulator) => {
                builder.endpoint(format!("localhost:{}", emulator.mqtt_addr().port()))
            }
            None => builder,
        }
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

/// Where the IoT Hub examples connect: Azure, through a connection string from the environment,
/// or the embedded emulator's hub with a demo identity (kept alive as long as this value).
pub struct HubTarget {
    /// The embedded emulator, when used: the examples play the service side through it.
    pub emulator: Option<Emulator>,
    /// The hub name (the emulator's default hub, or `HostName`).
    pub hub: String,
    /// The device id.
    pub device_id: String,
    /// The module id, for a module identity.
    pub module_id: Option<String>,
    _data_dir: Option<tempfile::TempDir>,
}

impl HubTarget {
    /// Azure when the environment variable `var` holds a device (or module) connection string;
    /// otherwise a fresh emulator with `device_id` (and `module_id`) created. Returns the target
    /// and a client builder for the identity.
    pub async fn from_env_or_emulator(
        var: &str,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<(Self, HubClientBuilder), Box<dyn std::error::Error>> {
        Self::from_env_or_emulator_with(var, device_id, module_id, |config| config).await
    }

    /// [`from_env_or_emulator`](Self::from_env_or_emulator) with the emulator's configuration
    /// adjusted by `adjust` (e.g. file upload to Azurite).
    pub async fn from_env_or_emulator_with(
        var: &str,
        device_id: &str,
        module_id: Option<&str>,
        adjust: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
    ) -> Result<(Self, HubClientBuilder), Box<dyn std::error::Error>> {
        if let Some(connection_string) = env(var) {
            let cs: hub_client::ConnectionString = connection_string.parse()?;
            let target = Self {
                emulator: None,
                hub: cs.host_name().to_owned(),
                device_id: cs.device_id().to_owned(),
                module_id: cs.module_id().map(str::to_owned),
                _data_dir: None,
            };
            return Ok((
                target,
                HubClient::from_connection_string(&connection_string)?,
            ));
        }
        println!("(no {var} found: starting the local emulator)");
        let dir = tempfile::tempdir()?;
        let emulator = Emulator::start(adjust(EmulatorConfig::new(dir.path()))).await?;
        let hub = emulator.default_hub().to_owned();
        let key = demo_key(device_id);
        emulator
            .create_device(
                &hub,
                DeviceIdentity {
                    device_id: device_id.to_owned(),
                    authentication: sas(&key),
                    ..DeviceIdentity::default()
                },
            )
            .await?;
        let auth = dps_auth::SymmetricKey::from_base64(&key)?;
        let mut builder = HubClient::builder(&hub, device_id, auth.clone());
        if let Some(module_id) = module_id {
            let module_key = demo_key(module_id);
            emulator
                .create_module(
                    &hub,
                    device_id,
                    ModuleIdentity {
                        module_id: module_id.to_owned(),
                        device_id: device_id.to_owned(),
                        authentication: sas(&module_key),
                        ..ModuleIdentity::default()
                    },
                )
                .await?;
            builder = HubClient::builder(
                &hub,
                device_id,
                dps_auth::SymmetricKey::from_base64(&module_key)?,
            )
            .module(module_id);
        }
        let builder = builder
            .endpoint(format!("localhost:{}", emulator.mqtt_addr().port()))
            .tls(
                TlsConfig::default()
                    .webpki_roots(false)
                    .add_root(emulator.ca_der().clone()),
            );
        Ok((
            Self {
                emulator: Some(emulator),
                hub,
                device_id: device_id.to_owned(),
                module_id: module_id.map(str::to_owned),
                _data_dir: Some(dir),
            },
            builder,
        ))
    }

    /// The telemetry the emulator received from the device, printed (nothing on Azure).
    pub fn print_received_telemetry(&self) {
        let Some(emulator) = &self.emulator else {
            return;
        };
        for event in emulator.hub_events(&self.hub, 0).into_iter().filter(|e| {
            e.device_id == self.device_id && e.kind == dps_emulator::HubEventKind::Telemetry
        }) {
            let properties: Vec<String> = event
                .system_properties
                .iter()
                .filter(|(k, _)| !k.starts_with("iothub-"))
                .chain(event.properties.iter())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "  hub received: {} [{}]",
                event.body_text().unwrap_or("<binary>"),
                properties.join(", ")
            );
        }
    }
}

/// A demo key derived from an id (the emulator only: never use predictable keys on Azure).
fn demo_key(id: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut bytes = Vec::with_capacity(32);
    for round in 0u64..4 {
        let mut hasher =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        hasher.write(id.as_bytes());
        hasher.write_u64(round);
        bytes.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    dps_auth::SymmetricKey::from_bytes(&bytes)
        .map(|key| key.to_base64().as_str().to_owned())
        .unwrap_or_default()
}

fn sas(primary: &str) -> HubAuthentication {
    HubAuthentication {
        kind: HubAuthType::Sas,
        symmetric_key: Some(SymmetricKeyAttestation {
            primary_key: Some(primary.to_owned()),
            secondary_key: None,
        }),
        x509_thumbprint: None,
    }
}
