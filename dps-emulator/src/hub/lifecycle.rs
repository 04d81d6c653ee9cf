//! Device lifecycle notifications (`createDeviceIdentity`, `deleteDeviceIdentity`, and the
//! module equivalents) on the events feed.
//!
//! The registry API emits them as it writes. Devices DPS creates (or moves away) are noticed by
//! comparing the registry with what the hub last saw, whenever the store has changed since:
//! before a device connects, before the feed is read, and before registry writes. That keeps the
//! DPS code free of hub concerns, and a device's creation always precedes its telemetry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use crate::hub::events::{HubEvent, HubEventKind};
use crate::hub::twin_document;
use crate::model::{HubDevice, HubModule, TwinMeta};
use crate::store::Store;
use crate::util::time;

/// What the hub has announced: device store key → (hub, device id, generation id).
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// The store generation last compared; `None` forces a comparison.
    pub(crate) generation: Option<u64>,
    pub(crate) devices: HashMap<String, (String, String, String)>,
}

impl Known {
    /// Records a device as announced.
    pub(crate) fn insert(&mut self, device: &HubDevice) {
        self.devices.insert(
            crate::store::StoreData::hub_device_key(&device.hub, &device.device_id),
            (
                device.hub.clone(),
                device.device_id.clone(),
                device.generation_id.clone(),
            ),
        );
    }

    /// Records a device as gone.
    pub(crate) fn remove(&mut self, hub: &str, device_id: &str) {
        self.devices
            .remove(&crate::store::StoreData::hub_device_key(hub, device_id));
    }
}

/// The lifecycle bookkeeping. Registry writes hold its lock around their store mutation so
/// that a concurrent comparison never reports their change a second time.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    known: Mutex<Known>,
}

impl Lifecycle {
    /// Devices already in the store at start were announced before the restart.
    pub(crate) fn new(store: &Store) -> Self {
        let mut known = Known::default();
        store.read(|data| data.hub_devices.values().for_each(|d| known.insert(d)));
        Self {
            known: Mutex::new(known),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Delete,
}

/// The notification body: the twin, as the service sends it.
pub(crate) fn device_twin_body(device: &HubDevice) -> Value {
    twin_body(&device.device_id, None, &device.twin, &device.twin_meta)
}

/// The notification body of a module.
pub(crate) fn module_twin_body(device_id: &str, module: &HubModule) -> Value {
    twin_body(
        device_id,
        Some(&module.module_id),
        &module.twin,
        &module.twin_meta,
    )
}

fn twin_body(device_id: &str, module_id: Option<&str>, doc: &Value, meta: &TwinMeta) -> Value {
    let mut body = json!({
        "deviceId": device_id,
        "etag": twin_document::etag(meta.version),
        "version": meta.version,
        "tags": twin_document::tags(doc),
        "properties": crate::hub::service::view::service_properties(doc, meta),
    });
    if let (Some(module_id), Some(map)) = (module_id, body.as_object_mut()) {
        map.insert("moduleId".into(), module_id.into());
    }
    body
}

/// A lifecycle notification with the service's properties.
pub(crate) fn lifecycle_event(
    hub: &str,
    device_id: &str,
    module_id: Option<&str>,
    operation: Operation,
    body: &Value,
) -> HubEvent {
    let now = time::now_utc();
    let op_type = match (operation, module_id.is_some()) {
        (Operation::Create, false) => "createDeviceIdentity",
        (Operation::Delete, false) => "deleteDeviceIdentity",
        (Operation::Create, true) => "createModuleIdentity",
        (Operation::Delete, true) => "deleteModuleIdentity",
    };
    notification(
        Notice {
            hub,
            device_id,
            module_id,
            op_type,
            schema: "deviceLifecycleNotification",
            source: "deviceLifecycleEvents",
            kind: HubEventKind::DeviceLifecycle,
        },
        now,
        body.to_string().into_bytes(),
    )
}

/// A connection-state notification as the service routes `deviceConnectionStateEvents`:
/// `opType` `deviceConnected` / `deviceDisconnected`, `hubName`, `deviceId` (and `moduleId`),
/// `operationTimestamp`, `iothub-message-schema=deviceConnectionStateNotification`, and a body
/// holding an increasing `sequenceNumber` (64 hex digits) that orders the notifications of a
/// device even when they arrive out of order.
pub(crate) fn connection_state_event(
    hub: &str,
    device_id: &str,
    module_id: Option<&str>,
    connected: bool,
) -> HubEvent {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = time::now_utc();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let sequence = format!(
        "{nanos:032X}{:032X}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let op_type = if connected {
        "deviceConnected"
    } else {
        "deviceDisconnected"
    };
    let body = json!({ "sequenceNumber": sequence })
        .to_string()
        .into_bytes();
    notification(
        Notice {
            hub,
            device_id,
            module_id,
            op_type,
            schema: "deviceConnectionStateNotification",
            source: "deviceConnectionStateEvents",
            kind: HubEventKind::DeviceConnectionState,
        },
        now,
        body,
    )
}

/// What tells one routed notification from another.
struct Notice<'a> {
    hub: &'a str,
    device_id: &'a str,
    module_id: Option<&'a str>,
    op_type: &'a str,
    /// `iothub-message-schema`.
    schema: &'a str,
    /// `iothub-message-source`.
    source: &'a str,
    kind: HubEventKind,
}

/// A notification on the events feed with the properties and system properties the service
/// routes with every lifecycle and connection-state notification.
fn notification(notice: Notice<'_>, now: String, body: Vec<u8>) -> HubEvent {
    let Notice {
        hub,
        device_id,
        module_id,
        op_type,
        schema,
        source,
        kind,
    } = notice;
    let mut properties = BTreeMap::from([
        ("opType".to_owned(), op_type.to_owned()),
        ("hubName".to_owned(), hub.to_owned()),
        ("deviceId".to_owned(), device_id.to_owned()),
        ("operationTimestamp".to_owned(), now.clone()),
        ("iothub-message-schema".to_owned(), schema.to_owned()),
    ]);
    if let Some(module_id) = module_id {
        properties.insert("moduleId".into(), module_id.to_owned());
    }
    let system_properties = BTreeMap::from([
        ("contentType".to_owned(), "application/json".to_owned()),
        ("contentEncoding".to_owned(), "utf-8".to_owned()),
        ("iothub-enqueuedtime".to_owned(), now.clone()),
        ("iothub-message-source".to_owned(), source.to_owned()),
        (
            "iothub-connection-device-id".to_owned(),
            device_id.to_owned(),
        ),
    ]);
    HubEvent {
        sequence_number: 0,
        hub: hub.to_owned(),
        kind,
        device_id: device_id.to_owned(),
        module_id: module_id.map(str::to_owned),
        enqueued_time: now,
        system_properties,
        properties,
        body,
    }
}
