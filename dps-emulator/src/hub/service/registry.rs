//! The identity registry: device and module create, read, update (with If-Match), delete and
//! list, shared by the REST API and the Rust admin API.

use base64::Engine as _;
use serde_json::json;

use crate::hub::lifecycle::{self, Operation, lifecycle_event};
use crate::hub::live::IdentityKey;
use crate::hub::runtime::HubRuntime;
use crate::hub::service::view::{DeviceIdentity, ModuleIdentity};
use crate::model::{
    DeviceStatus, HubAuthType, HubAuthentication, HubDevice, HubModule, SymmetricKeyAttestation,
    TwinMeta,
};
use crate::rest::ServiceFailure;
use crate::store::StoreData;
use crate::util::{ids, time};

/// The most identities one list call returns.
pub(crate) const MAX_LIST: usize = 1000;
/// Symmetric keys must decode to this many bytes (the service's rule).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 16..=64;

pub(crate) fn device_not_found(device_id: &str) -> ServiceFailure {
    ServiceFailure::not_found(404_001, format!("Device {device_id} not found."))
}

pub(crate) fn module_not_found(device_id: &str, module_id: &str) -> ServiceFailure {
    ServiceFailure::not_found(
        404_010,
        format!("Module {module_id} not found on device {device_id}."),
    )
}

/// An `If-Match` value without quotes and weak prefix (`"*"`, as the Python service SDK quotes
/// it, is the wildcard too).
fn unquote(if_match: &str) -> &str {
    let tag = if_match.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

/// Whether an `If-Match` value is the wildcard `*` (any existing entity, or create).
pub(crate) fn is_wildcard(if_match: &str) -> bool {
    unquote(if_match) == "*"
}

/// Whether an `If-Match` value allows writing an entity whose etag is `etag`.
pub(crate) fn etag_matches(if_match: &str, etag: &str) -> bool {
    let tag = unquote(if_match);
    tag == "*" || tag == etag
}

/// Checks and completes the authentication of a new or updated identity: keys are generated
/// when omitted, and must be base64 of 16 to 64 bytes.
pub(crate) fn normalize_authentication(
    mut auth: HubAuthentication,
) -> Result<HubAuthentication, ServiceFailure> {
    match auth.kind {
        HubAuthType::Sas => {
            let keys = auth.symmetric_key.take().unwrap_or_default();
            let check = |key: Option<String>| match key.filter(|k| !k.is_empty()) {
                None => Ok(ids::symmetric_key()),
                Some(key) => {
                    let valid = base64::engine::general_purpose::STANDARD
                        .decode(&key)
                        .is_ok_and(|bytes| KEY_BYTES.contains(&bytes.len()));
                    if valid {
                        Ok(key)
                    } else {
                        Err(ServiceFailure::bad_request(
                            "symmetric keys must be base64 of 16 to 64 bytes",
                        ))
                    }
                }
            };
            auth.symmetric_key = Some(SymmetricKeyAttestation {
                primary_key: Some(check(keys.primary_key)?),
                secondary_key: Some(check(keys.secondary_key)?),
            });
            auth.x509_thumbprint = None;
        }
        HubAuthType::SelfSigned => {
            let thumbprints = auth.x509_thumbprint.take().unwrap_or_default();
            let valid = |t: &Option<String>| {
                t.as_deref().is_none_or(|t| {
                    let hex = t.replace(':', "");
                    matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit())
                })
            };
            if thumbprints.primary_thumbprint.is_none()
                || !valid(&thumbprints.primary_thumbprint)
                || !valid(&thumbprints.secondary_thumbprint)
            {
                return Err(ServiceFailure::bad_request(
                    "selfSigned authentication needs a primary thumbprint (SHA-1 or SHA-256 hex)",
                ));
            }
            auth.x509_thumbprint = Some(thumbprints);
            auth.symmetric_key = None;
        }
        HubAuthType::CertificateAuthority | HubAuthType::None => {
            auth.symmetric_key = None;
            auth.x509_thumbprint = None;
        }
    }
    Ok(auth)
}

/// The registry follows the current documentation: `+` and `#` (allowed by older docs, and
/// MQTT wildcards) are refused for new identities.
pub(crate) fn check_id(kind: &str, id: &str, valid: bool) -> Result<(), ServiceFailure> {
    if valid && !id.contains(['+', '#']) {
        Ok(())
    } else {
        Err(ServiceFailure::bad_request(format!(
            "invalid {kind} id {id:?}: up to 128 characters of ASCII letters, digits and \
             - . % _ * ? ! ( ) , : = @ $ '"
        )))
    }
}

fn empty_twin() -> serde_json::Value {
    json!({ "tags": {}, "properties": { "desired": {}, "reported": {} } })
}

impl HubRuntime {
    /// The registry view of a device.
    pub(crate) fn device_view(&self, hub: &str, device: &HubDevice) -> DeviceIdentity {
        DeviceIdentity::from_record(
            device,
            &self.live_state(&IdentityKey::device(hub, &device.device_id)),
            self.c2d_count(hub, &device.device_id),
        )
    }

    /// `GET /devices/{id}`.
    pub(crate) fn device(
        &self,
        hub: &str,
        device_id: &str,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        self.sync_lifecycle();
        let device = self
            .stored_device(&hub, device_id)
            .ok_or_else(|| device_not_found(device_id))?;
        Ok(self.device_view(&hub, &device))
    }

    /// `GET /devices?top=N` (at most [`MAX_LIST`]).
    pub(crate) fn devices(
        &self,
        hub: &str,
        top: usize,
    ) -> Result<Vec<DeviceIdentity>, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        self.sync_lifecycle();
        let prefix = StoreData::hub_device_key(&hub, "");
        let devices: Vec<HubDevice> = self.store.read(|data| {
            data.hub_devices
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .take(top.clamp(1, MAX_LIST))
                .map(|(_, d)| d.clone())
                .collect()
        });
        Ok(devices.iter().map(|d| self.device_view(&hub, d)).collect())
    }

    /// `PUT /devices/{id}`: creates the device, or updates it when `If-Match` is given (`*`
    /// also creates). Without `If-Match` an existing device is a conflict (409001).
    pub(crate) async fn put_device(
        &self,
        hub: &str,
        device_id: &str,
        input: DeviceIdentity,
        if_match: Option<&str>,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        check_id(
            "device",
            device_id,
            dps_core::ids::validate_device_id(device_id).is_ok(),
        )?;
        if !input.device_id.is_empty() && input.device_id != device_id {
            return Err(ServiceFailure::bad_request(
                "deviceId in the body differs from the path",
            ));
        }
        if input.status_reason.as_ref().is_some_and(|r| r.len() > 128) {
            return Err(ServiceFailure::bad_request(
                "statusReason is longer than 128 characters",
            ));
        }
        let authentication = normalize_authentication(input.authentication.clone())?;
        let (device, created, drop_connection) =
            self.write_device(&hub, device_id, &input, authentication, if_match)?;
        if drop_connection {
            self.live.close_device(&hub, device_id);
        }
        self.store.flush().await;
        tracing::info!(%hub, %device_id, created, "device identity written");
        Ok(self.device_view(&hub, &device))
    }

    /// The store part of [`HubRuntime::put_device`], under the lifecycle lock (a plain
    /// function: the lock must not be held across an await). The device, whether it was
    /// created, and whether its connections must be dropped.
    pub(crate) fn write_device(
        &self,
        hub: &str,
        device_id: &str,
        input: &DeviceIdentity,
        authentication: HubAuthentication,
        if_match: Option<&str>,
    ) -> Result<(HubDevice, bool, bool), ServiceFailure> {
        let key = StoreData::hub_device_key(hub, device_id);
        let now = time::now_utc();
        let mut known = self.lifecycle.lock();
        self.sync_locked(&mut known);
        let (device, created, drop_connection) = self.store.mutate(|data| {
            match (data.hub_devices.get_mut(&key), if_match) {
                (Some(_), None) => Err(ServiceFailure::new(
                    409,
                    409_001,
                    format!("A device with ID '{device_id}' is already registered."),
                )),
                (Some(device), Some(tag)) => {
                    if !etag_matches(tag, &device.etag) {
                        return Err(ServiceFailure::precondition_failed());
                    }
                    // Disabling or changing credentials drops a live connection.
                    let drop_connection = (input.status == DeviceStatus::Disabled
                        && device.status != DeviceStatus::Disabled)
                        || device.authentication != authentication;
                    if device.status != input.status {
                        device.status_updated_time = Some(now.clone());
                    }
                    device.status = input.status;
                    device.status_reason = input.status_reason.clone();
                    device.authentication = authentication.clone();
                    device.capabilities = input.capabilities;
                    device.etag = ids::etag();
                    Ok((device.clone(), false, drop_connection))
                }
                (None, Some(tag)) if !is_wildcard(tag) => Err(device_not_found(device_id)),
                (None, _) => {
                    let device = HubDevice {
                        hub: hub.to_owned(),
                        device_id: device_id.to_owned(),
                        generation_id: ids::generation_id(),
                        etag: ids::etag(),
                        status: input.status,
                        authentication: authentication.clone(),
                        twin: empty_twin(),
                        registration_id: None,
                        created_date_time_utc: now.clone(),
                        status_reason: input.status_reason.clone(),
                        status_updated_time: Some(now.clone()),
                        capabilities: input.capabilities,
                        twin_meta: TwinMeta::default(),
                        ..HubDevice::default()
                    };
                    data.hub_devices.insert(key.clone(), device.clone());
                    Ok((device, true, false))
                }
            }
        })?;
        if created {
            known.insert(&device);
            self.events.push(lifecycle_event(
                hub,
                device_id,
                None,
                Operation::Create,
                &lifecycle::device_twin_body(&device),
            ));
        }
        Ok((device, created, drop_connection))
    }

    /// `DELETE /devices/{id}` (with optional `If-Match`).
    pub(crate) async fn delete_device(
        &self,
        hub: &str,
        device_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        let hub = self.require_hub(hub)?;
        self.remove_device(&hub, device_id, if_match)?;
        self.live.close_device(&hub, device_id);
        self.store.flush().await;
        tracing::info!(%hub, %device_id, "device identity deleted");
        Ok(())
    }

    /// The store part of [`HubRuntime::delete_device`], under the lifecycle lock.
    pub(crate) fn remove_device(
        &self,
        hub: &str,
        device_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        let key = StoreData::hub_device_key(hub, device_id);
        let mut known = self.lifecycle.lock();
        self.sync_locked(&mut known);
        let removed = self.store.mutate(|data| {
            let device = data
                .hub_devices
                .get(&key)
                .ok_or_else(|| device_not_found(device_id))?;
            if let Some(tag) = if_match {
                if !etag_matches(tag, &device.etag) {
                    return Err(ServiceFailure::precondition_failed());
                }
            }
            data.hub_c2d.remove(&key);
            data.hub_devices
                .remove(&key)
                .ok_or_else(|| device_not_found(device_id))
        })?;
        known.remove(hub, device_id);
        self.events.push(lifecycle_event(
            hub,
            device_id,
            None,
            Operation::Delete,
            &lifecycle::device_twin_body(&removed),
        ));
        Ok(())
    }

    /// `GET /devices/{id}/modules/{moduleId}`.
    pub(crate) fn module(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
    ) -> Result<ModuleIdentity, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let device = self
            .stored_device(&hub, device_id)
            .ok_or_else(|| device_not_found(device_id))?;
        let module = device
            .modules
            .get(module_id)
            .ok_or_else(|| module_not_found(device_id, module_id))?;
        Ok(ModuleIdentity::from_record(
            device_id,
            module,
            &self.live_state(&IdentityKey::module(&hub, device_id, module_id)),
        ))
    }

    /// `GET /devices/{id}/modules`.
    pub(crate) fn modules(
        &self,
        hub: &str,
        device_id: &str,
    ) -> Result<Vec<ModuleIdentity>, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let device = self
            .stored_device(&hub, device_id)
            .ok_or_else(|| device_not_found(device_id))?;
        Ok(device
            .modules
            .values()
            .map(|m| {
                ModuleIdentity::from_record(
                    device_id,
                    m,
                    &self.live_state(&IdentityKey::module(&hub, device_id, &m.module_id)),
                )
            })
            .collect())
    }

    /// `PUT /devices/{id}/modules/{moduleId}`, with the device's create/update rules.
    pub(crate) async fn put_module(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        input: ModuleIdentity,
        if_match: Option<&str>,
    ) -> Result<ModuleIdentity, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        check_id(
            "module",
            module_id,
            dps_core::ids::validate_module_id(module_id).is_ok(),
        )?;
        if (!input.module_id.is_empty() && input.module_id != module_id)
            || (!input.device_id.is_empty() && input.device_id != device_id)
        {
            return Err(ServiceFailure::bad_request(
                "deviceId or moduleId in the body differs from the path",
            ));
        }
        let authentication = normalize_authentication(input.authentication)?;
        let key = StoreData::hub_device_key(&hub, device_id);
        let now = time::now_utc();
        let outcome = self.store.mutate(|data| {
            let device = data
                .hub_devices
                .get_mut(&key)
                .ok_or_else(|| device_not_found(device_id))?;
            match (device.modules.get_mut(module_id), if_match) {
                (Some(_), None) => Err(ServiceFailure::new(
                    409,
                    409_301,
                    format!(
                        "A module with ID '{module_id}' already exists on device '{device_id}'."
                    ),
                )),
                (Some(module), Some(tag)) => {
                    if !etag_matches(tag, &module.etag) {
                        return Err(ServiceFailure::precondition_failed());
                    }
                    let drop_connection = module.authentication != authentication;
                    module.authentication = authentication.clone();
                    module.managed_by = input.managed_by.clone();
                    module.etag = ids::etag();
                    Ok((module.clone(), false, drop_connection))
                }
                (None, Some(tag)) if !is_wildcard(tag) => {
                    Err(module_not_found(device_id, module_id))
                }
                (None, _) => {
                    let module = HubModule {
                        module_id: module_id.to_owned(),
                        generation_id: ids::generation_id(),
                        etag: ids::etag(),
                        authentication: authentication.clone(),
                        managed_by: input.managed_by.clone(),
                        twin: empty_twin(),
                        twin_meta: TwinMeta::default(),
                        connection_state_updated_time: None,
                        last_activity_time: None,
                        created_date_time_utc: now.clone(),
                    };
                    device.modules.insert(module_id.to_owned(), module.clone());
                    Ok((module, true, false))
                }
            }
        });
        let (module, created, drop_connection) = outcome?;
        let identity = IdentityKey::module(&hub, device_id, module_id);
        if created {
            self.events.push(lifecycle_event(
                &hub,
                device_id,
                Some(module_id),
                Operation::Create,
                &lifecycle::module_twin_body(device_id, &module),
            ));
        }
        if drop_connection {
            self.live.close(&identity);
        }
        self.store.flush().await;
        Ok(ModuleIdentity::from_record(
            device_id,
            &module,
            &self.live_state(&identity),
        ))
    }

    /// `DELETE /devices/{id}/modules/{moduleId}`.
    pub(crate) async fn delete_module(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let key = StoreData::hub_device_key(&hub, device_id);
        let removed = self.store.mutate(|data| {
            let device = data
                .hub_devices
                .get_mut(&key)
                .ok_or_else(|| device_not_found(device_id))?;
            let module = device
                .modules
                .get(module_id)
                .ok_or_else(|| module_not_found(device_id, module_id))?;
            if let Some(tag) = if_match {
                if !etag_matches(tag, &module.etag) {
                    return Err(ServiceFailure::precondition_failed());
                }
            }
            device
                .modules
                .remove(module_id)
                .ok_or_else(|| module_not_found(device_id, module_id))
        })?;
        self.events.push(lifecycle_event(
            &hub,
            device_id,
            Some(module_id),
            Operation::Delete,
            &lifecycle::module_twin_body(device_id, &removed),
        ));
        self.live
            .close(&IdentityKey::module(&hub, device_id, module_id));
        self.store.flush().await;
        Ok(())
    }

    /// `GET /statistics/devices`.
    pub(crate) fn statistics(&self, hub: &str) -> Result<serde_json::Value, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        self.sync_lifecycle();
        let prefix = StoreData::hub_device_key(&hub, "");
        let (total, enabled) = self.store.read(|data| {
            data.hub_devices
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .fold((0usize, 0usize), |(total, enabled), (_, d)| {
                    (
                        total + 1,
                        enabled + usize::from(d.status == DeviceStatus::Enabled),
                    )
                })
        });
        Ok(json!({
            "totalDeviceCount": total,
            "enabledDeviceCount": enabled,
            "disabledDeviceCount": total - enabled,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_forms() {
        assert!(etag_matches("*", "abc"));
        assert!(etag_matches("\"*\"", "abc"));
        assert!(is_wildcard("\"*\"") && !is_wildcard("abc"));
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("W/\"abc\"", "abc"));
        assert!(etag_matches("abc", "abc"));
        assert!(!etag_matches("\"abd\"", "abc"));
    }

    #[test]
    fn keys_are_generated_and_checked() {
        let auth = normalize_authentication(HubAuthentication::default()).unwrap();
        let keys = auth.symmetric_key.unwrap();
        assert!(keys.primary_key.is_some() && keys.secondary_key.is_some());
        let bad = HubAuthentication {
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: Some("c2hvcnQ=".into()),
                secondary_key: None,
            }),
            ..HubAuthentication::default()
        };
        assert_eq!(normalize_authentication(bad).unwrap_err().status, 400);
        let no_thumbprint = HubAuthentication {
            kind: HubAuthType::SelfSigned,
            ..HubAuthentication::default()
        };
        assert!(normalize_authentication(no_thumbprint).is_err());
    }
}
