//! The device lifecycle client: provision once, stay connected for years (issue #12).
//!
//! [`DeviceClient`] owns provisioning and the hub connection. It drives the sans-IO lifecycle
//! machine of [`dps_core::device`] (whose module docs list every rule) on the one tokio driver,
//! keeps the assignment in an [`AssignmentStore`](dps_core::device::AssignmentStore) ([`FileStore`]
//! by default), and exposes the hub through the same [`HubClient`] handle a plain hub client
//! has: telemetry, cloud-to-device messages, twin, methods, connection states.
//!
//! - A start with a valid stored assignment connects to its hub with **no DPS call**.
//! - The hub refusing the credentials (CONNACK 4/5: the device was deleted or moved), staying
//!   unreachable, an assignment too old, or [`DeviceClient::reprovision`]: provision again,
//!   each with a typed [`ReprovisionReason`](dps_core::device::ReprovisionReason), never
//!   storming (the identity-recovery backoff, 5 minutes to 1 hour by default).
//! - Several credentials in order of preference ([`DeviceClientBuilder::credential`]): a
//!   refusal moves to the next one ([`LifecycleEvent::CredentialSwitched`]).
//! - Telemetry queued while provisioning, or not yet acknowledged by a hub the device leaves,
//!   goes on with the next hub session (the same ids): nothing is lost across a
//!   re-provisioning.
//!
//! # Example
//! ```no_run
//! use hub_client::device::{DeviceClient, FileStore};
//! use hub_client::{Message, SymmetricKey};
//!
//! # async fn run(key: SymmetricKey) -> Result<(), Box<dyn std::error::Error>> {
//! let device = DeviceClient::builder("0ne00000000", "sensor-1")
//!     .credential(key)
//!     .store(FileStore::new("/var/lib/sensor/assignment.json"))
//!     .start()?;
//! let mut lifecycle = device.lifecycle_events();
//! device.hub().send(Message::new("21.5")).await?;
//! while let Ok(event) = lifecycle.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(())
//! # }
//! ```

mod app;
mod builder;
mod connector;
mod store;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

pub use builder::DeviceClientBuilder;
pub use dps_core::device::{
    AssignmentRecord, AssignmentStore, CertificateRenewal, CredentialSlot, DeviceStopReason,
    Issuer, LifecycleEvent, RecoveryBackoff, RenewError, ReprovisionReason, Source, StoreAction,
};
pub use store::{FileStore, FileStoreError, NoStore};

use crate::HubClient;
use app::DeviceShared;

/// A device that provisions with DPS when it must, and otherwise stays connected to its hub.
///
/// Cheap to clone; every clone drives the same device. One tokio task does all the I/O.
/// Dropping the last clone (and the last [`HubClient`] from [`hub`](Self::hub)) closes it.
#[derive(Clone)]
pub struct DeviceClient {
    shared: Arc<DeviceShared>,
    hub: HubClient,
    /// Subscribed before the driver started, for the first caller: it sees every event.
    first_events: Arc<Mutex<Option<broadcast::Receiver<LifecycleEvent>>>>,
}

impl fmt::Debug for DeviceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceClient")
            .field("assignment", &self.assignment())
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl DeviceClient {
    /// A builder for the device `registration_id` of the DPS instance `id_scope`.
    pub fn builder(
        id_scope: impl Into<String>,
        registration_id: impl Into<String>,
    ) -> DeviceClientBuilder {
        DeviceClientBuilder::new(id_scope.into(), registration_id.into())
    }

    /// The hub side: telemetry (queued while the device provisions), cloud-to-device messages,
    /// twin, direct methods, connection states. Twin requests and method responses need a hub
    /// session and fail with `Closed` while the device provisions.
    #[must_use]
    pub const fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// The lifecycle steps: provisioned (from the cache or DPS), connected, provisioning again
    /// and why, credential switched, certificate renewed, stopped. The first call sees every
    /// event since [`start`](DeviceClientBuilder::start); later calls see those from then on.
    /// A listener that falls more than 64 events behind loses the oldest.
    #[must_use]
    pub fn lifecycle_events(&self) -> broadcast::Receiver<LifecycleEvent> {
        let first = self
            .first_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        first.unwrap_or_else(|| self.shared.lock().app.lifecycle.subscribe())
    }

    /// The current assignment (hub, device id, when), once there is one.
    #[must_use]
    pub fn assignment(&self) -> Option<AssignmentRecord> {
        self.shared.lock().machine.record().cloned()
    }

    /// Provisions again now ([`ReprovisionReason::Requested`]); telemetry still queued goes
    /// to the hub DPS assigns.
    pub fn reprovision(&self) {
        self.shared
            .with(|inner, now| inner.machine.reprovision(now));
    }

    /// Renews the device certificate with `csr` (base64 DER of a CSR for a new key the
    /// application generated): over the hub when it offers it, by provisioning again
    /// otherwise. [`LifecycleEvent::CsrNeeded`] says when; [`LifecycleEvent::CertificateRenewed`]
    /// reports the result, and [`assignment`](Self::assignment) then holds the new chain.
    ///
    /// # Errors
    /// A CSR over 8 KB or empty, or a stopped device.
    pub fn renew_certificate(&self, csr: String) -> Result<(), dps_core::device::RenewError> {
        self.shared
            .with(|inner, now| inner.machine.renew_with_csr(now, csr))
    }

    /// Tells the lifecycle the validity of the current certificate (Unix seconds), so the
    /// renewal is scheduled at the configured share of its lifetime.
    pub fn certificate_validity(&self, not_before: u64, not_after: u64) {
        self.shared.with(|inner, now| {
            inner
                .machine
                .certificate_validity(now, not_before, not_after);
        });
    }

    /// Closes the device: queued telemetry is still sent while connected (for up to the drain
    /// timeout), then every stream ends.
    pub async fn close(&self) {
        self.hub.close().await;
    }
}
