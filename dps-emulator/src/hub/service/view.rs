//! The service API's JSON shapes of identities and twins (`2021-04-12`), built from the stored
//! records plus the live connection state.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::hub::twin_document;
use crate::model::TwinMeta;
use crate::model::{
    DeviceCapabilities, DeviceStatus, HubAuthType, HubAuthentication, HubDevice, HubModule,
    X509Thumbprint,
};

/// What the service reports for a time that never happened (a device that never connected).
pub(crate) const NEVER: &str = "0001-01-01T00:00:00Z";

/// Whether a device (or module) has a live MQTT connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceConnectionState {
    /// No connection.
    #[default]
    Disconnected,
    /// Connected now.
    Connected,
}

/// A device identity as the registry API shows it (`GET /devices/{id}`), and as it takes one
/// (`PUT /devices/{id}`: read-only fields are ignored there).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceIdentity {
    /// The device id (case-sensitive).
    pub device_id: String,
    /// Hub-generated; distinguishes identities re-created with the same id.
    pub generation_id: String,
    /// Entity tag of the identity (not of its twin).
    pub etag: String,
    /// Live connection state.
    pub connection_state: DeviceConnectionState,
    /// Enabled or disabled.
    pub status: DeviceStatus,
    /// Why the status was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the connection state last changed.
    pub connection_state_updated_time: String,
    /// When the status last changed.
    pub status_updated_time: String,
    /// The last time the device connected, sent or received a message.
    pub last_activity_time: String,
    /// Cloud-to-device messages queued and not yet completed.
    pub cloud_to_device_message_count: u32,
    /// How the device authenticates.
    pub authentication: HubAuthentication,
    /// Capabilities (`iotEdge`).
    pub capabilities: DeviceCapabilities,
}

/// A module identity (`GET /devices/{id}/modules/{moduleId}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModuleIdentity {
    /// The module id.
    pub module_id: String,
    /// The device it belongs to.
    pub device_id: String,
    /// Hub-generated; distinguishes identities re-created with the same id.
    pub generation_id: String,
    /// Entity tag.
    pub etag: String,
    /// Live connection state.
    pub connection_state: DeviceConnectionState,
    /// When the connection state last changed.
    pub connection_state_updated_time: String,
    /// The last time the module connected, sent or received a message.
    pub last_activity_time: String,
    /// Always 0: modules receive no cloud-to-device messages.
    pub cloud_to_device_message_count: u32,
    /// How the module authenticates.
    pub authentication: HubAuthentication,
    /// Who manages the module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

/// The desired and reported properties of a twin, each with `$version` (and `$metadata` in the
/// service view).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TwinProperties {
    /// Desired properties (written by the service).
    pub desired: Map<String, Value>,
    /// Reported properties (written by the device).
    pub reported: Map<String, Value>,
}

/// A device or module twin as the service API shows it (`GET /twins/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceTwin {
    /// The device id.
    pub device_id: String,
    /// The module id, for a module twin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// Entity tag of the twin (changes with every twin update).
    pub etag: String,
    /// Entity tag of the identity.
    pub device_etag: String,
    /// The identity's status.
    pub status: DeviceStatus,
    /// When the status last changed.
    pub status_update_time: String,
    /// Live connection state.
    pub connection_state: DeviceConnectionState,
    /// The last time the device connected, sent or received a message.
    pub last_activity_time: String,
    /// Cloud-to-device messages queued and not yet completed.
    pub cloud_to_device_message_count: u32,
    /// How the identity authenticates.
    pub authentication_type: HubAuthType,
    /// Thumbprints, for self-signed certificates.
    pub x509_thumbprint: X509Thumbprint,
    /// The twin version: bumped by every change.
    pub version: u64,
    /// Tags (service-only metadata).
    pub tags: Map<String, Value>,
    /// Desired and reported properties.
    pub properties: TwinProperties,
    /// Capabilities of the device.
    pub capabilities: DeviceCapabilities,
}

/// The live state of an identity, from the connection table.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveState {
    pub(crate) connected: bool,
    /// The live `lastActivityTime`, while connected.
    pub(crate) last_activity: Option<String>,
}

impl DeviceIdentity {
    /// The registry view of a stored device.
    pub(crate) fn from_record(device: &HubDevice, live: &LiveState, c2d_count: usize) -> Self {
        Self {
            device_id: device.device_id.clone(),
            generation_id: device.generation_id.clone(),
            etag: device.etag.clone(),
            connection_state: state(live),
            status: device.status,
            status_reason: device.status_reason.clone(),
            connection_state_updated_time: or_never(&device.connection_state_updated_time),
            status_updated_time: or_never(&device.status_updated_time),
            last_activity_time: live
                .last_activity
                .clone()
                .unwrap_or_else(|| or_never(&device.last_activity_time)),
            cloud_to_device_message_count: u32::try_from(c2d_count).unwrap_or(u32::MAX),
            authentication: device.authentication.clone(),
            capabilities: device.capabilities,
        }
    }
}

impl ModuleIdentity {
    /// The registry view of a stored module.
    pub(crate) fn from_record(device_id: &str, module: &HubModule, live: &LiveState) -> Self {
        Self {
            module_id: module.module_id.clone(),
            device_id: device_id.to_owned(),
            generation_id: module.generation_id.clone(),
            etag: module.etag.clone(),
            connection_state: state(live),
            connection_state_updated_time: or_never(&module.connection_state_updated_time),
            last_activity_time: live
                .last_activity
                .clone()
                .unwrap_or_else(|| or_never(&module.last_activity_time)),
            cloud_to_device_message_count: 0,
            authentication: module.authentication.clone(),
            managed_by: module.managed_by.clone(),
        }
    }
}

impl DeviceTwin {
    /// The service view of a device's twin.
    pub(crate) fn of_device(device: &HubDevice, live: &LiveState, c2d_count: usize) -> Self {
        let view = DeviceIdentity::from_record(device, live, c2d_count);
        Self {
            device_id: device.device_id.clone(),
            module_id: None,
            etag: twin_document::etag(device.twin_meta.version),
            device_etag: device.etag.clone(),
            status: device.status,
            status_update_time: view.status_updated_time,
            connection_state: view.connection_state,
            last_activity_time: view.last_activity_time,
            cloud_to_device_message_count: view.cloud_to_device_message_count,
            authentication_type: device.authentication.kind,
            x509_thumbprint: device
                .authentication
                .x509_thumbprint
                .clone()
                .unwrap_or_default(),
            version: device.twin_meta.version,
            tags: twin_document::tags(&device.twin),
            properties: service_properties(&device.twin, &device.twin_meta),
            capabilities: device.capabilities,
        }
    }

    /// The service view of a module's twin.
    pub(crate) fn of_module(device: &HubDevice, module: &HubModule, live: &LiveState) -> Self {
        let view = ModuleIdentity::from_record(&device.device_id, module, live);
        Self {
            device_id: device.device_id.clone(),
            module_id: Some(module.module_id.clone()),
            etag: twin_document::etag(module.twin_meta.version),
            device_etag: module.etag.clone(),
            status: device.status,
            status_update_time: or_never(&device.status_updated_time),
            connection_state: view.connection_state,
            last_activity_time: view.last_activity_time,
            cloud_to_device_message_count: 0,
            authentication_type: module.authentication.kind,
            x509_thumbprint: module
                .authentication
                .x509_thumbprint
                .clone()
                .unwrap_or_default(),
            version: module.twin_meta.version,
            tags: twin_document::tags(&module.twin),
            properties: service_properties(&module.twin, &module.twin_meta),
            capabilities: DeviceCapabilities::default(),
        }
    }
}

fn state(live: &LiveState) -> DeviceConnectionState {
    if live.connected {
        DeviceConnectionState::Connected
    } else {
        DeviceConnectionState::Disconnected
    }
}

fn or_never(time: &Option<String>) -> String {
    time.clone().unwrap_or_else(|| NEVER.to_owned())
}

/// The service view of both sections, with `$metadata.$lastUpdated` and `$version`.
pub(crate) fn service_properties(twin: &Value, meta: &TwinMeta) -> TwinProperties {
    let with_meta = |name: &str, updated: &Option<String>, version: u64| {
        let mut map = twin_document::section(twin, name);
        let mut metadata = Map::new();
        if let Some(updated) = updated {
            metadata.insert("$lastUpdated".into(), updated.clone().into());
        }
        map.insert("$metadata".into(), Value::Object(metadata));
        map.insert("$version".into(), version.into());
        map
    };
    TwinProperties {
        desired: with_meta("desired", &meta.desired_updated, meta.desired_version),
        reported: with_meta("reported", &meta.reported_updated, meta.reported_version),
    }
}
