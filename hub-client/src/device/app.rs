//! The application's side of the device lifecycle: the hub client's side (waiters, streams)
//! for the hub session's events, the assignment store for the machine's store actions, and
//! the lifecycle stream.

use std::sync::Arc;

use dps_auth::RenewableIdentity;
use dps_core::Timestamp;
use dps_core::device::{Device, Event, LifecycleEvent};
use dps_core::hub::{ConnectionState, StopReason};
use dps_runtime::{Application, Shared};
use tokio::sync::broadcast;

use super::store::AnyStore;
use crate::app::HubApp;
use crate::host::HasHub;

/// The device shared by its handles and the driver task.
pub(crate) type DeviceShared = Shared<Device, DeviceApp>;

pub(crate) struct DeviceApp {
    pub(crate) hub: HubApp,
    store: Box<dyn AnyStore>,
    pub(crate) lifecycle: broadcast::Sender<LifecycleEvent>,
    /// The certificate the device renews itself, if any.
    issued: Option<Arc<RenewableIdentity>>,
}

impl DeviceApp {
    pub(crate) fn new(
        hub: HubApp,
        store: Box<dyn AnyStore>,
        issued: Option<Arc<RenewableIdentity>>,
    ) -> Self {
        Self {
            hub,
            store,
            lifecycle: broadcast::channel(64).0,
            issued,
        }
    }

    /// The renewal is due: a new key and its CSR, handed to the machine.
    fn new_csr(&self, device: &mut Device, now: Timestamp) {
        let Some(issued) = &self.issued else {
            tracing::warn!("a certificate renewal is due but the device has no renewable identity");
            return;
        };
        let outcome = issued
            .new_csr()
            .map_err(|e| e.to_string())
            .and_then(|csr| device.renew_with_csr(now, csr).map_err(|e| e.to_string()));
        if let Err(error) = outcome {
            tracing::warn!(%error, "the certificate renewal could not start");
        }
    }

    /// A certificate was issued: install it with its key (before the next connect, which the
    /// driver performs after this drain), then schedule the next renewal.
    fn install(&self, device: &mut Device, now: Timestamp) {
        let (Some(issued), Some(record)) = (&self.issued, device.record()) else {
            return;
        };
        if let Err(error) = issued.install(&record.issued_certificate_chain) {
            tracing::warn!(%error, "the issued certificate could not be installed");
            return;
        }
        if let Some((not_before, not_after)) = issued.validity() {
            device.certificate_validity(now, not_before, not_after);
        }
    }

    /// Performs what the machine asked of the store. A failed save is reported, not fatal:
    /// the device keeps running on the assignment it has, and provisions at its next start.
    fn persist(&mut self, device: &mut Device) {
        while let Some(action) = device.poll_store() {
            if let Err(error) = self.store.apply(&action) {
                tracing::warn!(%error, "the assignment store failed");
            }
        }
    }
}

impl HasHub for DeviceApp {
    fn hub_app(&mut self) -> &mut HubApp {
        &mut self.hub
    }
}

impl Application<Device> for DeviceApp {
    fn on_event(
        &mut self,
        device: &mut Device,
        now: Timestamp,
        event: Event,
        shared: &Arc<DeviceShared>,
    ) {
        // Saved before the driver performs the next connect: the hub is never used before its
        // assignment is on disk.
        self.persist(device);
        match event {
            Event::Hub(event) => self.hub.handle(device, now, event, shared),
            Event::Lifecycle(event) => {
                log(&event);
                match &event {
                    LifecycleEvent::CsrNeeded => self.new_csr(device, now),
                    LifecycleEvent::CertificateRenewed { .. } => self.install(device, now),
                    LifecycleEvent::Reprovisioning { delay, attempt, .. } => {
                        self.hub.set_state(ConnectionState::Disconnected {
                            reason: dps_core::hub::DisconnectReason::Reprovisioning,
                            retry_in: *delay,
                            attempt: *attempt,
                        });
                    }
                    LifecycleEvent::Stopped(reason) => {
                        let stop = match reason {
                            dps_core::device::DeviceStopReason::Closed => StopReason::Closed,
                            _ => StopReason::Unrecoverable,
                        };
                        self.hub.set_state(ConnectionState::Stopped(stop));
                    }
                    _ => {}
                }
                // Nobody listening is fine; a slow listener loses the oldest events.
                let _ = self.lifecycle.send(event);
            }
            Event::Dps(event) => tracing::debug!(?event, "provisioning"),
            _ => {}
        }
    }

    fn on_finish(&mut self) {
        self.hub.finish();
    }

    fn resume(&mut self, device: &mut Device, now: Timestamp) {
        self.hub.offer_again(device, now);
    }

    fn room(&mut self) -> Option<dps_runtime::Room> {
        self.hub.need_room()
    }
}

fn log(event: &LifecycleEvent) {
    match event {
        LifecycleEvent::Provisioned {
            source,
            hub,
            device_id,
        } => tracing::info!(%source, %hub, %device_id, "provisioned"),
        LifecycleEvent::Connected { credential } => {
            tracing::info!(%credential, "connected to the hub");
        }
        LifecycleEvent::Reprovisioning {
            reason,
            delay,
            attempt,
        } => tracing::info!(%reason, ?delay, attempt, "provisioning again"),
        LifecycleEvent::CredentialSwitched { from, to } => {
            tracing::info!(%from, %to, "credential switched");
        }
        LifecycleEvent::Stopped(reason) => tracing::warn!(%reason, "device stopped"),
        other => tracing::info!(?other, "lifecycle"),
    }
}
