//! The application's side of the device lifecycle: the hub client's side (waiters, streams)
//! for the hub session's events, the assignment store for the machine's store actions, and
//! the lifecycle stream.

use std::sync::Arc;

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
}

impl DeviceApp {
    pub(crate) fn new(hub: HubApp, store: Box<dyn AnyStore>) -> Self {
        Self {
            hub,
            store,
            lifecycle: broadcast::channel(64).0,
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
