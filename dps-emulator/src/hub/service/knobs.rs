//! The emulator-only knobs of the device lifecycle paths on the hub side (#12): per-hub faults
//! and a device identity's keys regenerated.

use crate::dps::service::keys::{KeySlot, regenerate};
use crate::hub::faults::HubFaults;
use crate::hub::runtime::HubRuntime;
use crate::hub::service::view::DeviceIdentity;
use crate::model::HubAuthType;
use crate::rest::ServiceFailure;

impl HubRuntime {
    /// Replaces `hub`'s faults; a hub made unreachable drops its live connections at once.
    pub(crate) fn set_faults(&self, hub: &str, faults: HubFaults) -> Result<(), ServiceFailure> {
        let hub = self.require_hub(hub)?;
        tracing::info!(%hub, ?faults, "hub faults set");
        if self.faults.set(&hub, faults)? {
            self.live.close_hub(&hub);
        }
        Ok(())
    }

    /// `hub`'s faults as they stand.
    pub(crate) fn get_faults(&self, hub: &str) -> Result<HubFaults, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        Ok(self.faults.get(&hub))
    }

    /// Regenerates a SAS device identity's keys; its live connection is closed (its
    /// credentials changed) and a token signed with a replaced key is refused with CONNACK 5.
    pub(crate) async fn regenerate_device_keys(
        &self,
        hub: &str,
        device_id: &str,
        slot: KeySlot,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        let mut device = self.device(hub, device_id)?;
        let keys = if device.authentication.kind == HubAuthType::Sas {
            device.authentication.symmetric_key.as_mut()
        } else {
            None
        };
        regenerate(keys, slot)?;
        let etag = device.etag.clone();
        self.put_device(hub, device_id, device, Some(&etag)).await
    }
}
