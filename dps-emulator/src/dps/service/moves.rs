//! Moving a device to another linked hub (#12), as an operator does by re-allocating it: the
//! identity is deleted from the hub the device is on (its connection is closed and CONNECT is
//! then refused with CONNACK 5, service-behaviour.md §3.4 "CONNACK codes"), and its next
//! registrations are allocated to the new hub. What happens then is the enrollment's
//! reprovision policy (service-behaviour.md §1.12): `updateHubAssignment` + `migrateDeviceData`
//! moves it with its twin (`deviceDataMigrated`), without `migrateDeviceData` it starts from
//! the initial twin (`deviceDataReset`), and with `updateHubAssignment: false` ("never
//! re-provision") DPS puts it back on its old hub.

use crate::hub::runtime::HubRuntime;
use crate::rest::ServiceFailure;
use crate::store::{Store, StoreData};

/// Moves `registration_id` to the linked hub `to_hub`; the hub it was on, if DPS had assigned
/// it to another one.
pub(crate) async fn move_device(
    store: &Store,
    hubs: &HubRuntime,
    registration_id: &str,
    to_hub: &str,
) -> Result<Option<String>, ServiceFailure> {
    let to_hub = hubs.hub_name(to_hub).map(str::to_owned).ok_or_else(|| {
        ServiceFailure::bad_request(format!("{to_hub:?} is not a linked hub of this emulator"))
    })?;
    dps_core::ids::validate_registration_id(registration_id)
        .map_err(|e| ServiceFailure::bad_request(format!("invalid registrationId: {e}")))?;
    let lower = registration_id.to_ascii_lowercase();
    let current = store.read(|data| {
        let record = data.registrations.get(&lower)?;
        Some((record.assigned_hub.clone()?, record.device_id.clone()?))
    });
    let from = match current {
        Some((from, device_id)) if !from.eq_ignore_ascii_case(&to_hub) => {
            // The twin stays behind for the migration at the next registration; the identity
            // goes now, so the hub refuses the device and closes its connection.
            let twin = hubs.stored_device(&from, &device_id).map(|d| d.twin);
            if let Some(twin) = twin {
                store.mutate(|data| data.moved_twins.insert(device_id.clone(), twin));
                match hubs.delete_device(&from, &device_id, None).await {
                    Ok(()) => {}
                    // Deleted meanwhile: the goal is reached.
                    Err(failure) if failure.status == 404 => {}
                    Err(failure) => return Err(failure),
                }
            }
            Some(from)
        }
        _ => None,
    };
    store
        .mutate_durable(|data: &mut StoreData| data.moved_to.insert(lower, to_hub.clone()))
        .await;
    tracing::info!(%registration_id, from = ?from, to = %to_hub, "device moved");
    Ok(from)
}
