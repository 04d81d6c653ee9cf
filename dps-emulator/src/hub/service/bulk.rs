//! Bulk registry operations (`POST /devices`, api-version 2021-04-12): up to 100 devices
//! created, updated or deleted in one request, each with its own result, as the service's
//! `BulkRegistryOperationResult` reports them (identity-registry.md: "Operations"; the
//! service SDKs' `ExportImportDevice` and `DeviceRegistryOperationError` models).
//!
//! Like the service, a bulk request is not one transaction: every device is applied on its
//! own, a failure is reported for that device and the others proceed. Everything applied is on
//! disk before the answer (one flush for the whole batch).

use serde::{Deserialize, Serialize};

use crate::hub::runtime::HubRuntime;
use crate::hub::service::registry::{check_id, normalize_authentication};
use crate::hub::service::view::DeviceIdentity;
use crate::model::{DeviceCapabilities, DeviceStatus, HubAuthentication};
use crate::rest::ServiceFailure;

/// The most devices one bulk request may carry (the service's limit).
pub(crate) const MAX_BULK: usize = 100;

/// What to do with one device (`importMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ImportMode {
    /// Create; an existing device is an error.
    Create,
    /// Create or update, whatever the etag (`createOrUpdate`, the default, is the same: an
    /// exported `devices.txt`, which has no `importMode`, imports as is).
    #[default]
    #[serde(alias = "createOrUpdate")]
    Update,
    /// Update only when `eTag` matches; a missing device is an error.
    UpdateIfMatchETag,
    /// Delete, whatever the etag.
    Delete,
    /// Delete only when `eTag` matches.
    DeleteIfMatchETag,
    /// A mode bulk operations do not take (`updateTwin`, ...): refused for that device.
    #[serde(other)]
    Unsupported,
}

/// One device of a bulk request (`ExportImportDevice`; the twin members it may carry are not
/// applied by bulk operations, as the service documents them for import jobs).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkDevice {
    /// The device id.
    pub(crate) id: String,
    /// The operation.
    #[serde(default)]
    pub(crate) import_mode: ImportMode,
    /// The etag for the `...IfMatchETag` modes.
    #[serde(default, rename = "eTag")]
    pub(crate) etag: Option<String>,
    /// Enabled or disabled (default enabled).
    #[serde(default)]
    pub(crate) status: DeviceStatus,
    /// Why the status was set.
    #[serde(default)]
    pub(crate) status_reason: Option<String>,
    /// Credentials; keys are generated when omitted.
    #[serde(default)]
    pub(crate) authentication: Option<HubAuthentication>,
    /// Capabilities.
    #[serde(default)]
    pub(crate) capabilities: Option<DeviceCapabilities>,
}

/// One device's failure (`DeviceRegistryOperationError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkError {
    pub(crate) device_id: String,
    /// The service's error name (`DeviceAlreadyExists`, `DeviceNotFound`, ...).
    pub(crate) error_code: String,
    /// What went wrong.
    pub(crate) error_status: String,
}

/// The answer (`BulkRegistryOperationResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkResult {
    pub(crate) is_successful: bool,
    pub(crate) errors: Vec<BulkError>,
    pub(crate) warnings: Vec<serde_json::Value>,
}

/// The service's error name for a refused device operation.
pub(crate) fn error_code(failure: &ServiceFailure) -> &'static str {
    match failure.error_code {
        409_001 => "DeviceAlreadyExists",
        404_001 => "DeviceNotFound",
        412_001 => "PreconditionFailed",
        _ if failure.status == 400 => "ArgumentInvalid",
        _ => "ServerError",
    }
}

impl HubRuntime {
    /// `POST /devices`: applies each device in order; the per-device results.
    pub(crate) async fn bulk_devices(
        &self,
        hub: &str,
        devices: Vec<BulkDevice>,
    ) -> Result<BulkResult, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        if devices.is_empty() {
            return Err(ServiceFailure::bad_request(
                "a bulk operation needs at least one device",
            ));
        }
        if devices.len() > MAX_BULK {
            return Err(ServiceFailure::bad_request(format!(
                "a bulk operation takes at most {MAX_BULK} devices, not {}",
                devices.len()
            )));
        }
        let mut errors = Vec::new();
        let mut closed = Vec::new();
        for device in &devices {
            match self.bulk_one(&hub, device) {
                Ok(close) => {
                    if close {
                        closed.push(device.id.clone());
                    }
                }
                Err(failure) => errors.push(BulkError {
                    device_id: device.id.clone(),
                    error_code: error_code(&failure).to_owned(),
                    error_status: failure.message,
                }),
            }
        }
        for device_id in &closed {
            self.live.close_device(&hub, device_id);
        }
        // Durable before acknowledged: one flush covers every device applied.
        self.store.flush().await;
        tracing::info!(%hub, devices = devices.len(), failed = errors.len(), "bulk registry operation");
        Ok(BulkResult {
            is_successful: errors.is_empty(),
            errors,
            warnings: Vec::new(),
        })
    }

    /// One device of a bulk request; whether its connections must be closed.
    pub(crate) fn bulk_one(&self, hub: &str, device: &BulkDevice) -> Result<bool, ServiceFailure> {
        check_id(
            "device",
            &device.id,
            dps_core::ids::validate_device_id(&device.id).is_ok(),
        )?;
        let etag = || {
            device
                .etag
                .as_deref()
                .filter(|e| !e.is_empty())
                .ok_or_else(|| {
                    ServiceFailure::bad_request(format!(
                        "device {}: the ...IfMatchETag modes need an eTag",
                        device.id
                    ))
                })
        };
        match device.import_mode {
            ImportMode::Unsupported => Err(ServiceFailure::bad_request(format!(
                "device {}: importMode must be create, update, updateIfMatchETag, delete or \
                 deleteIfMatchETag",
                device.id
            ))),
            ImportMode::Delete | ImportMode::DeleteIfMatchETag => {
                let if_match = match device.import_mode {
                    ImportMode::DeleteIfMatchETag => Some(etag()?),
                    _ => None,
                };
                self.remove_device(hub, &device.id, if_match)?;
                Ok(true)
            }
            mode => {
                let if_match = match mode {
                    ImportMode::Create => None,
                    ImportMode::UpdateIfMatchETag => Some(etag()?),
                    _ => Some("*"),
                };
                let input = DeviceIdentity {
                    device_id: device.id.clone(),
                    status: device.status,
                    status_reason: device.status_reason.clone(),
                    authentication: device.authentication.clone().unwrap_or_default(),
                    capabilities: device.capabilities.unwrap_or_default(),
                    ..DeviceIdentity::default()
                };
                let authentication = normalize_authentication(input.authentication.clone())?;
                let (_, _, close) =
                    self.write_device(hub, &device.id, &input, authentication, if_match)?;
                Ok(close)
            }
        }
    }
}
