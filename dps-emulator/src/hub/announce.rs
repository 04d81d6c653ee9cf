//! Lifecycle notifications for registry changes made outside the registry API (DPS
//! assignments, reprovisioning moves), found by comparing the store with what was announced.

use serde_json::json;

use crate::hub::lifecycle::{Known, Operation, device_twin_body, lifecycle_event};
use crate::hub::runtime::HubRuntime;
use crate::model::HubDevice;

impl HubRuntime {
    /// Announces registry changes made outside the registry API (DPS assignments).
    pub(crate) fn sync_lifecycle(&self) {
        let mut known = self.lifecycle.lock();
        self.sync_locked(&mut known);
    }

    /// Makes sure a device about to connect has been announced: a lookup when it has, a
    /// comparison of the registry otherwise (so connecting fleets do not rescan each time).
    pub(crate) fn ensure_announced(&self, hub: &str, device_id: &str) {
        let key = crate::store::StoreData::hub_device_key(hub, device_id);
        let mut known = self.lifecycle.lock();
        let stored = self
            .store
            .read(|data| data.hub_devices.get(&key).map(|d| d.generation_id.clone()));
        let announced = known.devices.get(&key).map(|(_, _, g)| g);
        if stored.as_ref() != announced {
            self.sync_locked(&mut known);
        }
    }

    /// [`HubRuntime::sync_lifecycle`] with the lock already held.
    pub(crate) fn sync_locked(&self, known: &mut Known) {
        let generation = self.store.generation();
        if known.generation == Some(generation) {
            return;
        }
        known.generation = Some(generation);
        let (created, current) = self.store.read(|data| {
            let created: Vec<HubDevice> = data
                .hub_devices
                .iter()
                .filter(|(key, d)| {
                    known
                        .devices
                        .get(*key)
                        .is_none_or(|(_, _, generation)| *generation != d.generation_id)
                })
                .map(|(_, d)| d.clone())
                .collect();
            let current: Vec<String> = known
                .devices
                .keys()
                .filter(|k| !data.hub_devices.contains_key(*k))
                .cloned()
                .collect();
            (created, current)
        });
        for gone in current {
            if let Some((hub, device_id, _)) = known.devices.remove(&gone) {
                let hub = self.hub_name(&hub).unwrap_or(&hub).to_owned();
                // Moved to another hub by reprovisioning, or deleted: its connection ends too.
                self.live.close_device(&hub, &device_id);
                self.store.mutate(|data| data.hub_c2d.remove(&gone));
                let body = json!({ "deviceId": device_id, "properties": {} });
                self.events.push(lifecycle_event(
                    &hub,
                    &device_id,
                    None,
                    Operation::Delete,
                    &body,
                ));
            }
        }
        for device in created {
            known.insert(&device);
            self.events.push(lifecycle_event(
                self.hub_name(&device.hub).unwrap_or(&device.hub),
                &device.device_id,
                None,
                Operation::Create,
                &device_twin_body(&device),
            ));
        }
    }
}
