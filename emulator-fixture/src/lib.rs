//! The local DPS + IoT Hub emulator for an application's tests, with client builders that are
//! already pointed at it (endpoint, TLS trust) for each device it enrolls:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_emulator_fixture::ClientFixture;
//!
//! let fixture = ClientFixture::start().await?;
//! let device = fixture.enroll_symmetric_key("my-device").await?;
//! let assignment = device.provisioning_client()?.register().await?;
//! let hub = device.hub_client(&assignment)?.connect().await?;
//! hub.send(hub_client::Message::new("hello")).await?;
//! hub.close().await;
//! fixture.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Everything else of the emulator is reached through [`ClientFixture::emulator`] (faults,
//! the hub's events feed, the registry).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use dps_auth::SymmetricKey;
use dps_client::{Assignment, ProvisioningClient, TlsConfig};
use dps_emulator::{ClientEndpoints, DeviceCredentials, EmulatorConfig, EmulatorFixture};
use hub_client::{HubClient, HubClientBuilder};

/// Why a fixture could not hand out a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientFixtureError {
    /// The emulator could not start.
    #[error("the emulator could not start: {0}")]
    Start(#[from] dps_emulator::EmulatorError),
    /// The emulator refused the enrollment.
    #[error(transparent)]
    Enroll(#[from] dps_emulator::FixtureError),
    /// The key the emulator handed out is not usable (never expected).
    #[error("the device key is not usable: {0}")]
    Key(#[from] dps_auth::KeyError),
}

/// An [`EmulatorFixture`] that hands out client builders.
#[derive(Debug)]
pub struct ClientFixture {
    emulator: EmulatorFixture,
}

/// A device the fixture enrolled: its credentials and ready-configured builders.
#[derive(Debug, Clone)]
pub struct FixtureDevice {
    credentials: DeviceCredentials,
}

impl ClientFixture {
    /// Starts an emulator with the default configuration (loopback, ephemeral ports).
    pub async fn start() -> Result<Self, ClientFixtureError> {
        Ok(Self {
            emulator: EmulatorFixture::start().await?,
        })
    }

    /// Starts an emulator whose configuration `adjust` edits.
    pub async fn start_with(
        adjust: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
    ) -> Result<Self, ClientFixtureError> {
        Ok(Self {
            emulator: EmulatorFixture::start_with(adjust).await?,
        })
    }

    /// The emulator (and through it, every management call).
    pub fn emulator(&self) -> &EmulatorFixture {
        &self.emulator
    }

    /// Enrolls `registration_id` individually with a generated symmetric key.
    pub async fn enroll_symmetric_key(
        &self,
        registration_id: &str,
    ) -> Result<FixtureDevice, ClientFixtureError> {
        Ok(FixtureDevice {
            credentials: self.emulator.enroll_symmetric_key(registration_id).await?,
        })
    }

    /// Device `registration_id` of the symmetric-key group `group_id` (created if needed).
    pub async fn enroll_group_device(
        &self,
        group_id: &str,
        registration_id: &str,
    ) -> Result<FixtureDevice, ClientFixtureError> {
        Ok(FixtureDevice {
            credentials: self
                .emulator
                .enroll_group_device(group_id, registration_id)
                .await?,
        })
    }

    /// Stops the emulator and removes its data.
    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }
}

/// Trust in the emulator's CA only.
fn tls(endpoints: &ClientEndpoints) -> TlsConfig {
    TlsConfig::default()
        .webpki_roots(false)
        .add_root(endpoints.ca_der.clone())
}

impl FixtureDevice {
    /// The device's credentials (registration id, key, endpoints).
    pub fn credentials(&self) -> &DeviceCredentials {
        &self.credentials
    }

    fn key(&self) -> Result<SymmetricKey, ClientFixtureError> {
        Ok(SymmetricKey::from_base64(&self.credentials.symmetric_key)?)
    }

    /// A provisioning client for this device, pointed at the emulator's DPS.
    pub fn provisioning_client(&self) -> Result<ProvisioningClient, ClientFixtureError> {
        let endpoints = &self.credentials.endpoints;
        Ok(ProvisioningClient::new(
            endpoints.id_scope.clone(),
            self.credentials.registration_id.clone(),
            self.key()?,
        )
        .endpoint(endpoints.mqtt_endpoint.clone())
        .tls(tls(endpoints)))
    }

    /// A hub client builder for the device DPS assigned, pointed at the emulator's hub (the
    /// hub name and device id come from `assignment`; the connection goes to the emulator).
    pub fn hub_client(
        &self,
        assignment: &Assignment,
    ) -> Result<HubClientBuilder, ClientFixtureError> {
        let endpoints = &self.credentials.endpoints;
        Ok(HubClient::from_registration(assignment, self.key()?)
            .endpoint(endpoints.mqtt_endpoint.clone())
            .tls(tls(endpoints)))
    }
}
