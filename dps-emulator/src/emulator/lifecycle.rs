//! The knobs that make the emulator play every path of a device's life (#12): a device moved
//! to another hub, keys rotated, a hub that refuses or is down, certificates issued with a
//! chosen lifetime and renewed over the hub. Each is also an emulator-only REST endpoint
//! (see the crate README).

use std::time::Duration;

use super::Emulator;
use crate::dps::service::enrollments::Kind;
use crate::dps::service::keys::{self, KeySlot};
use crate::dps::service::moves;
use crate::hub::{DeviceIdentity, HubFaults, RefuseConnect};
use crate::model::{AttestationMechanism, DeviceStatus};
use crate::rest::ServiceFailure;

impl Emulator {
    /// Moves a device to the linked hub `to_hub`: its identity is deleted from the hub DPS
    /// assigned it to (its connection closes; CONNECT is then refused with CONNACK 5), and its
    /// next registrations are allocated to `to_hub` whatever the enrollment's allocation
    /// policy, with the enrollment's reprovision policy applied (service-behaviour.md §1.12:
    /// by default it lands on `to_hub` with its twin, substatus `deviceDataMigrated`).
    /// Returns the hub it was on, when DPS had assigned it to another one.
    ///
    /// # Errors
    /// 400 when `to_hub` is not a linked hub or the registration id is invalid.
    pub async fn move_device(
        &self,
        registration_id: &str,
        to_hub: &str,
    ) -> Result<Option<String>, ServiceFailure> {
        moves::move_device(&self.store, &self.hub, registration_id, to_hub).await
    }

    /// Regenerates an individual enrollment's symmetric keys (`slot`: primary, secondary or
    /// both): a device signing with a replaced key is refused by DPS (401); the hub identity
    /// keeps its keys until the device registers again. Returns the new keys.
    ///
    /// # Errors
    /// 404 for an unknown enrollment, 400 for one without symmetric keys.
    pub async fn regenerate_enrollment_keys(
        &self,
        registration_id: &str,
        slot: KeySlot,
    ) -> Result<AttestationMechanism, ServiceFailure> {
        keys::regenerate_enrollment_keys(&self.store, Kind::Individual, registration_id, slot).await
    }

    /// Regenerates an enrollment group's symmetric keys (so every member's derived key
    /// changes); see [`Emulator::regenerate_enrollment_keys`].
    ///
    /// # Errors
    /// 404 for an unknown group, 400 for one without symmetric keys.
    pub async fn regenerate_group_keys(
        &self,
        group_id: &str,
        slot: KeySlot,
    ) -> Result<AttestationMechanism, ServiceFailure> {
        keys::regenerate_enrollment_keys(&self.store, Kind::Group, group_id, slot).await
    }

    /// Regenerates a SAS device identity's keys on a hub: its live connection is closed and a
    /// token signed with a replaced key is refused with CONNACK 5. Returns the identity.
    ///
    /// # Errors
    /// 404 for an unknown hub or device, 400 for an identity without symmetric keys.
    pub async fn regenerate_device_keys(
        &self,
        hub: &str,
        device_id: &str,
        slot: KeySlot,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        self.hub.regenerate_device_keys(hub, device_id, slot).await
    }

    /// Enables or disables a device identity (with a reason). Disabling closes its
    /// connection, and a disabled device is refused with CONNACK 5 (service-behaviour.md
    /// §3.4).
    ///
    /// # Errors
    /// 404 for an unknown hub or device.
    pub async fn set_device_status(
        &self,
        hub: &str,
        device_id: &str,
        status: DeviceStatus,
        reason: Option<&str>,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        let mut device = self.hub.device(hub, device_id)?;
        device.status = status;
        device.status_reason = reason.map(str::to_owned);
        self.update_device(hub, device, None).await
    }

    /// Replaces a hub's fault knobs (see [`HubFaults`]); making it unreachable closes its
    /// live connections at once.
    ///
    /// # Errors
    /// 404 for an unknown hub, 400 for a CONNACK code other than 1 to 5.
    pub fn set_hub_faults(&self, hub: &str, faults: HubFaults) -> Result<(), ServiceFailure> {
        self.hub.set_faults(hub, faults)
    }

    /// A hub's fault knobs as they stand (counters and the time left while unreachable).
    ///
    /// # Errors
    /// 404 for an unknown hub.
    pub fn hub_faults(&self, hub: &str) -> Result<HubFaults, ServiceFailure> {
        self.hub.get_faults(hub)
    }

    /// Makes `hub` refuse device CONNECTs with `return_code` (1 to 5), `count` times (every
    /// time when `None`), keeping its other knobs.
    ///
    /// # Errors
    /// As [`Emulator::set_hub_faults`].
    pub fn refuse_hub_connections(
        &self,
        hub: &str,
        return_code: u8,
        count: Option<u32>,
    ) -> Result<(), ServiceFailure> {
        let mut faults = self.hub_faults(hub)?;
        faults.refuse_connect = Some(RefuseConnect { return_code, count });
        self.set_hub_faults(hub, faults)
    }

    /// Makes `hub` unreachable for `duration` (its connections drop; new ones are closed
    /// without a CONNACK), keeping its other knobs; `Duration::ZERO` makes it reachable again.
    ///
    /// # Errors
    /// As [`Emulator::set_hub_faults`].
    pub fn make_hub_unreachable(
        &self,
        hub: &str,
        duration: Duration,
    ) -> Result<(), ServiceFailure> {
        let mut faults = self.hub_faults(hub)?;
        faults.unreachable_for_ms = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self.set_hub_faults(hub, faults)
    }

    /// The lifetime of the certificates issued from now on, by DPS for a CSR and by the hubs
    /// over `$iothub/credentials`.
    pub fn certificate_lifetime(&self) -> Duration {
        self.issuer.lifetime()
    }

    /// Sets the lifetime of the certificates issued from now on (whole seconds, at least
    /// one).
    ///
    /// # Errors
    /// 400 for a lifetime under a second.
    pub fn set_certificate_lifetime(&self, lifetime: Duration) -> Result<(), ServiceFailure> {
        self.issuer.set_lifetime(lifetime)
    }
}
