//! Twin operations: the device's GET and reported PATCH, and the service's read, update
//! (PATCH) and replace (PUT), with desired-property notifications to connected devices.

use dps_core::hub::TwinDesiredTopic;
use serde_json::{Map, Value};

use crate::hub::live::IdentityKey;
use crate::hub::runtime::HubRuntime;
use crate::hub::service::registry::{device_not_found, etag_matches, module_not_found};
use crate::hub::service::view::DeviceTwin;
use crate::hub::twin_document::{self, PatchError, Section};
use crate::model::{HubDevice, TwinMeta};
use crate::rest::ServiceFailure;
use crate::store::StoreData;
use crate::util::time;

fn bad_patch(e: PatchError) -> ServiceFailure {
    ServiceFailure::bad_request(e.0)
}

/// The twin document and versions of a device or module record.
fn twin_of<'a>(
    device: &'a mut HubDevice,
    module_id: Option<&str>,
) -> Result<(&'a mut Value, &'a mut TwinMeta), ServiceFailure> {
    match module_id {
        None => Ok((&mut device.twin, &mut device.twin_meta)),
        Some(module_id) => {
            let device_id = device.device_id.clone();
            let module = device
                .modules
                .get_mut(module_id)
                .ok_or_else(|| module_not_found(&device_id, module_id))?;
            Ok((&mut module.twin, &mut module.twin_meta))
        }
    }
}

/// Drops the read-only members a client may send back from a twin it read.
fn writable(section: &Map<String, Value>) -> Map<String, Value> {
    section
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "$metadata" | "$version"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl HubRuntime {
    /// The device-side twin (`{"desired":{..,"$version"},"reported":{..,"$version"}}`).
    pub(crate) fn device_side_twin(&self, key: &IdentityKey) -> Option<Value> {
        self.store.read(|data| {
            let device = data.hub_devices.get(&key.store_key())?;
            match &key.module_id {
                None => Some(twin_document::device_view(&device.twin, &device.twin_meta)),
                Some(module_id) => {
                    let module = device.modules.get(module_id)?;
                    Some(twin_document::device_view(&module.twin, &module.twin_meta))
                }
            }
        })
    }

    /// A reported-properties PATCH from the device; the new reported `$version`, once the
    /// change is on disk (the device is told 204 then, so a crash cannot take it back).
    pub(crate) async fn patch_reported(
        &self,
        key: &IdentityKey,
        payload: &[u8],
    ) -> Result<u64, ServiceFailure> {
        let patch: Value = serde_json::from_slice(payload)
            .map_err(|e| ServiceFailure::bad_request(format!("the patch is not JSON: {e}")))?;
        let patch = twin_document::validate_patch(&patch).map_err(bad_patch)?;
        let now = time::now_utc();
        self.store
            .mutate_durable(|data| {
                let device = data
                    .hub_devices
                    .get_mut(&key.store_key())
                    .ok_or_else(|| device_not_found(&key.device_id))?;
                let (doc, meta) = twin_of(device, key.module_id.as_deref())?;
                twin_document::apply(doc, meta, Section::Reported, patch, &now).map_err(bad_patch)
            })
            .await
    }

    /// `GET /twins/{id}[/modules/{moduleId}]`.
    pub(crate) fn twin(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<DeviceTwin, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let device = self
            .stored_device(&hub, device_id)
            .ok_or_else(|| device_not_found(device_id))?;
        self.twin_view(&hub, &device, module_id)
    }

    fn twin_view(
        &self,
        hub: &str,
        device: &HubDevice,
        module_id: Option<&str>,
    ) -> Result<DeviceTwin, ServiceFailure> {
        match module_id {
            None => Ok(DeviceTwin::of_device(
                device,
                &self.live_state(&IdentityKey::device(hub, &device.device_id)),
                self.c2d_count(hub, &device.device_id),
            )),
            Some(module_id) => {
                let module = device
                    .modules
                    .get(module_id)
                    .ok_or_else(|| module_not_found(&device.device_id, module_id))?;
                Ok(DeviceTwin::of_module(
                    device,
                    module,
                    &self.live_state(&IdentityKey::module(hub, &device.device_id, module_id)),
                ))
            }
        }
    }

    /// `PATCH /twins/{id}` (merge `tags` and `properties.desired`) or, with `replace`, `PUT`
    /// (replace them). Reported properties in the body are ignored, as the service does. A
    /// desired change is pushed to the device if it is connected and subscribed.
    pub(crate) async fn update_twin(
        &self,
        hub: &str,
        device_id: &str,
        module_id: Option<&str>,
        body: &Value,
        if_match: Option<&str>,
        replace: bool,
    ) -> Result<DeviceTwin, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let body = body
            .as_object()
            .ok_or_else(|| ServiceFailure::bad_request("the twin must be a JSON object"))?;
        let section = |value: Option<&Value>,
                       what: &str|
         -> Result<Option<Map<String, Value>>, ServiceFailure> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(map)) => {
                    let map = writable(map);
                    twin_document::validate_patch(&Value::Object(map.clone()))
                        .map_err(bad_patch)?;
                    Ok(Some(map))
                }
                Some(_) => Err(ServiceFailure::bad_request(format!(
                    "{what} must be an object"
                ))),
            }
        };
        let tags = section(body.get("tags"), "tags")?;
        let desired = section(
            body.get("properties").and_then(|p| p.get("desired")),
            "properties.desired",
        )?;
        let key = StoreData::hub_device_key(&hub, device_id);
        let now = time::now_utc();
        let (device, pushed) = self.store.mutate(|data| {
            let device = data
                .hub_devices
                .get_mut(&key)
                .ok_or_else(|| device_not_found(device_id))?;
            let (doc, meta) = twin_of(device, module_id)?;
            if let Some(tag) = if_match {
                if !etag_matches(tag, &twin_document::etag(meta.version)) {
                    return Err(ServiceFailure::precondition_failed());
                }
            }
            // Work on copies so that a refused part leaves the twin untouched.
            let (mut new_doc, mut new_meta) = (doc.clone(), meta.clone());
            let tags_patch = match (tags.as_ref(), replace) {
                (Some(tags), false) => Some(tags.clone()),
                (tags, true) => Some(twin_document::replace_patch(
                    &twin_document::tags(&new_doc),
                    &tags.cloned().unwrap_or_default(),
                )),
                (None, false) => None,
            };
            if let Some(patch) = tags_patch.filter(|p| !p.is_empty()) {
                twin_document::apply_tags(&mut new_doc, &mut new_meta, &patch)
                    .map_err(bad_patch)?;
            }
            let desired_patch = match (desired.as_ref(), replace) {
                (Some(desired), false) => Some(desired.clone()),
                (desired, true) => Some(twin_document::replace_patch(
                    &twin_document::section(&new_doc, "desired"),
                    &desired.cloned().unwrap_or_default(),
                )),
                (None, false) => None,
            };
            let mut pushed = None;
            if let Some(patch) = desired_patch.filter(|p| !p.is_empty()) {
                let version = twin_document::apply(
                    &mut new_doc,
                    &mut new_meta,
                    Section::Desired,
                    &patch,
                    &now,
                )
                .map_err(bad_patch)?;
                pushed = Some((patch, version));
            }
            *doc = new_doc;
            *meta = new_meta;
            Ok((device.clone(), pushed))
        })?;
        if let Some((mut patch, version)) = pushed {
            patch.insert("$version".into(), version.into());
            let identity = match module_id {
                None => IdentityKey::device(&hub, device_id),
                Some(module_id) => IdentityKey::module(&hub, device_id, module_id),
            };
            self.push_desired(&identity, version, &Value::Object(patch));
        }
        self.store.flush().await;
        self.twin_view(&hub, &device, module_id)
    }

    /// Sends a desired-properties notification if the identity is connected and subscribed
    /// (the service sends them only while connected: devices re-read the twin on reconnect).
    fn push_desired(&self, key: &IdentityKey, version: u64, patch: &Value) {
        let topic = TwinDesiredTopic::new(version).to_string();
        let body = patch.to_string().into_bytes();
        self.live.with(key, None, |conn| {
            if let Some(qos) = conn.subscriptions.desired {
                let _ = conn.outbox.publish(topic, body, qos);
                conn.last_activity = std::time::SystemTime::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::DeviceIdentity;
    use crate::model::HubAuthentication;

    /// #11: a reported-properties update is acknowledged (204) to the device only once it is
    /// on disk. On a single-threaded runtime the write-behind flusher cannot run between the
    /// change and the answer unless the hub waits for it.
    #[tokio::test(flavor = "current_thread")]
    async fn reported_patch_is_on_disk_before_it_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path().join("state.redb")).unwrap();
        let runtime = HubRuntime::new(store.clone(), vec!["hub-a".into()], Vec::new());
        let device = DeviceIdentity {
            device_id: "dev-1".into(),
            authentication: HubAuthentication::default(),
            ..DeviceIdentity::default()
        };
        runtime
            .put_device("hub-a", "dev-1", device, None)
            .await
            .unwrap();

        let key = IdentityKey::device("hub-a", "dev-1");
        let version = runtime
            .patch_reported(&key, br#"{"temperature": 21}"#)
            .await
            .unwrap();
        assert!(version >= 1);

        let state: Value = store.committed();
        let twin = &state["hub_devices"]["hub-a/dev-1"]["twin"];
        assert_eq!(twin["properties"]["reported"]["temperature"], 21, "{state}");
    }
}
