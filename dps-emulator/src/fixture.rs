//! The test fixture: an emulator that owns its temporary data directory and hands out what a
//! client needs, so a test starts one, enrolls a device and connects in three lines.
//!
//! It hands out plain pieces (endpoint, id scope, key, CA) rather than client builders: this
//! crate must not depend on `dps-client` or `hub-client` (their tests run against the emulator,
//! and a dependency back would give them two copies of their own types). Each client builder
//! takes these pieces in its `endpoint` and `tls` calls; the `dps-emulator-fixture` crate,
//! which sits on top of the emulator and both clients, hands out the builders ready-made.

use std::fmt;
use std::ops::Deref;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use tempfile::TempDir;

use crate::model::{EnrollmentGroup, IndividualEnrollment};
use crate::{Emulator, EmulatorConfig, EmulatorError, ServiceFailure};

/// An emulator on ephemeral loopback ports whose data lives in a temporary directory that the
/// fixture owns: the directory is removed when the fixture is dropped (after
/// [`EmulatorFixture::shutdown`], or when the runtime stops the emulator).
///
/// It dereferences to [`Emulator`], so every management method is at hand.
pub struct EmulatorFixture {
    // Declared before `dir`: fields drop in order, so the emulator goes before its data.
    emulator: Emulator,
    dir: TempDir,
}

impl fmt::Debug for EmulatorFixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorFixture")
            .field("data_dir", &self.dir.path())
            .field("emulator", &self.emulator)
            .finish()
    }
}

impl Deref for EmulatorFixture {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emulator
    }
}

/// Where and how a client reaches the fixture's emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientEndpoints {
    /// `localhost:{port}` of MQTT over TLS: DPS and the hub alike (a client's `endpoint`).
    pub mqtt_endpoint: String,
    /// `localhost:{port}` of MQTT over WebSocket and the REST APIs.
    pub https_endpoint: String,
    /// The DPS id scope.
    pub id_scope: String,
    /// The hub devices are assigned to by default.
    pub hub: String,
    /// The CA certificate (DER) a client trusts instead of the public roots.
    pub ca_der: CertificateDer<'static>,
    /// The same CA in PEM (for SDKs that take PEM, e.g. `server_verification_cert`).
    pub ca_pem: String,
}

/// A device enrolled with a symmetric key: everything its provisioning client needs.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceCredentials {
    /// The registration id (and device id).
    pub registration_id: String,
    /// The device's symmetric key (base64): the enrollment's primary key, or the key derived
    /// from the group key for a device of a group.
    pub symmetric_key: String,
    /// Where to connect and what to trust.
    pub endpoints: ClientEndpoints,
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never in `Debug` output.
        f.debug_struct("DeviceCredentials")
            .field("registration_id", &self.registration_id)
            .field("symmetric_key", &"<redacted>")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// Why a fixture could not enroll a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The emulator refused the enrollment.
    #[error("the enrollment was refused: {0}")]
    Refused(#[from] ServiceFailure),
    /// The stored enrollment or group has no symmetric key to hand out (it attests otherwise).
    #[error("{0} has no symmetric key")]
    NoSymmetricKey(String),
    /// The device key could not be derived from the group key.
    #[error("cannot derive the key of {0} from its group key")]
    Derivation(String),
}

impl EmulatorFixture {
    /// Starts an emulator with the default configuration (loopback, ephemeral ports, one hub).
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_with(|config| config).await
    }

    /// Starts an emulator whose configuration `adjust` edits (its data directory is set to the
    /// fixture's temporary directory).
    pub async fn start_with(
        adjust: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
    ) -> Result<Self, EmulatorError> {
        let dir = tempfile::Builder::new()
            .prefix("dps-emulator-")
            .tempdir()
            .map_err(|source| EmulatorError::DataDir {
                path: std::env::temp_dir(),
                source,
            })?;
        let emulator = Emulator::start(adjust(EmulatorConfig::new(dir.path()))).await?;
        Ok(Self { emulator, dir })
    }

    /// The emulator.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// The data directory (CA, keys, state), removed with the fixture.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where and how a client reaches the emulator.
    pub fn endpoints(&self) -> ClientEndpoints {
        ClientEndpoints {
            mqtt_endpoint: format!("localhost:{}", self.emulator.mqtt_addr().port()),
            https_endpoint: format!("localhost:{}", self.emulator.https_addr().port()),
            id_scope: self.emulator.id_scope().to_owned(),
            hub: self.emulator.default_hub().to_owned(),
            ca_der: self.emulator.ca_der().clone(),
            ca_pem: self.emulator.ca_pem().to_owned(),
        }
    }

    /// Enrolls `registration_id` individually with a generated symmetric key; its credentials.
    pub async fn enroll_symmetric_key(
        &self,
        registration_id: &str,
    ) -> Result<DeviceCredentials, FixtureError> {
        let stored = self
            .emulator
            .put_enrollment(IndividualEnrollment::symmetric_key(registration_id), None)
            .await?;
        let key = stored
            .primary_key()
            .ok_or_else(|| FixtureError::NoSymmetricKey(registration_id.to_owned()))?;
        Ok(self.credentials(registration_id, key.to_owned()))
    }

    /// The credentials of device `registration_id` of the symmetric-key group `group_id`,
    /// creating the group (with generated keys) if it does not exist yet.
    pub async fn enroll_group_device(
        &self,
        group_id: &str,
        registration_id: &str,
    ) -> Result<DeviceCredentials, FixtureError> {
        let group = match self.emulator.enrollment_group(group_id) {
            Ok(group) => group,
            Err(failure) if failure.status == 404 => {
                self.emulator
                    .put_enrollment_group(EnrollmentGroup::symmetric_key(group_id), None)
                    .await?
            }
            Err(failure) => return Err(failure.into()),
        };
        if group.primary_key().is_none() {
            return Err(FixtureError::NoSymmetricKey(group_id.to_owned()));
        }
        let key = group
            .device_key(registration_id)
            .ok_or_else(|| FixtureError::Derivation(registration_id.to_owned()))?;
        Ok(self.credentials(registration_id, key))
    }

    /// Enrolls `registration_id` with its X.509 device certificate (PEM); the stored
    /// enrollment. The device connects with that certificate and its key.
    pub async fn enroll_x509(
        &self,
        registration_id: &str,
        certificate_pem: &str,
    ) -> Result<IndividualEnrollment, FixtureError> {
        Ok(self
            .emulator
            .put_enrollment(
                IndividualEnrollment::x509(registration_id, certificate_pem),
                None,
            )
            .await?)
    }

    /// Stops the emulator (listeners and sessions, state flushed), then removes its data.
    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }

    fn credentials(&self, registration_id: &str, symmetric_key: String) -> DeviceCredentials {
        DeviceCredentials {
            registration_id: registration_id.to_owned(),
            symmetric_key,
            endpoints: self.endpoints(),
        }
    }
}
