//! The hub identity a registration creates, refreshes or moves (service-behaviour.md §1.12):
//! its credentials and its twin.

use serde_json::json;

use super::allocation;
use super::auth::{DpsIdentity, EnrollmentRef, Proof};
use crate::model::{
    DeviceStatus, EnrollmentSettings, HubAuthType, HubAuthentication, HubDevice,
    SymmetricKeyAttestation, X509Thumbprint,
};
use crate::store::StoreData;
use crate::util::{ids, x509};

/// The hub identity's credentials: the enrollment keys (derived per device for groups), or the
/// certificate's thumbprint / its CA.
pub(crate) fn hub_authentication(
    identity: &DpsIdentity,
    settings: &EnrollmentSettings,
    registration_id: &str,
) -> HubAuthentication {
    match &identity.proof {
        Some(Proof::X509 { chain, .. }) => match identity.enrollment {
            Some(EnrollmentRef::Individual(_)) => HubAuthentication {
                kind: HubAuthType::SelfSigned,
                symmetric_key: None,
                x509_thumbprint: chain.first().map(|leaf| X509Thumbprint {
                    primary_thumbprint: Some(x509::sha1_thumbprint(leaf)),
                    secondary_thumbprint: None,
                }),
            },
            _ => HubAuthentication {
                kind: HubAuthType::CertificateAuthority,
                symmetric_key: None,
                x509_thumbprint: None,
            },
        },
        _ => {
            let keys = settings
                .attestation
                .symmetric_key
                .clone()
                .unwrap_or_default();
            let keys = match identity.enrollment {
                Some(EnrollmentRef::Group(_)) => {
                    let derive = |k: &Option<String>| {
                        k.as_deref()
                            .and_then(|k| dps_auth::GroupKey::from_base64(k).ok())
                            .and_then(|g| g.derive(registration_id).ok())
                            .map(|d| d.to_base64().to_string())
                    };
                    SymmetricKeyAttestation {
                        primary_key: derive(&keys.primary_key),
                        secondary_key: derive(&keys.secondary_key),
                    }
                }
                _ => keys,
            };
            HubAuthentication {
                kind: HubAuthType::Sas,
                symmetric_key: Some(keys),
                x509_thumbprint: None,
            }
        }
    }
}

/// Creates, moves or refreshes the hub identity for a placement.
pub(crate) fn upsert_device(
    data: &mut StoreData,
    placement: &allocation::Placement,
    device_id: &str,
    registration_id: &str,
    authentication: HubAuthentication,
    initial_twin: Option<&serde_json::Value>,
    now: &str,
) {
    let key = StoreData::hub_device_key(&placement.hub, device_id);
    let migrated_twin = placement
        .migrate_from
        .as_ref()
        .and_then(|old| {
            data.hub_devices
                .remove(&StoreData::hub_device_key(old, device_id))
        })
        .map(|d| d.twin)
        // A device moved by the emulator's handle (#12) left its twin behind when its old
        // identity was deleted.
        .or_else(|| data.moved_twins.remove(device_id));
    let fresh_twin = || {
        let initial = initial_twin.cloned().unwrap_or_else(|| json!({}));
        json!({
            "tags": initial.get("tags").cloned().unwrap_or_else(|| json!({})),
            "properties": {
                "desired": initial.pointer("/properties/desired").cloned().unwrap_or_else(|| json!({})),
                "reported": {},
            },
        })
    };
    match data.hub_devices.get_mut(&key) {
        Some(device) => {
            device.authentication = authentication;
            if placement.reset_twin {
                device.twin = fresh_twin();
            }
            device.etag = ids::etag();
        }
        None => {
            let twin = match migrated_twin {
                Some(twin) if !placement.reset_twin => twin,
                _ => fresh_twin(),
            };
            data.hub_devices.insert(
                key,
                HubDevice {
                    hub: placement.hub.clone(),
                    device_id: device_id.to_owned(),
                    generation_id: ids::generation_id(),
                    etag: ids::etag(),
                    status: DeviceStatus::Enabled,
                    authentication,
                    twin,
                    registration_id: Some(registration_id.to_owned()),
                    created_date_time_utc: now.to_owned(),
                    ..HubDevice::default()
                },
            );
        }
    }
}
