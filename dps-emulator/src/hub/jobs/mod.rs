//! Import and export jobs (`POST /jobs/create`, `GET /jobs/{id}`, `GET /jobs`; api-version
//! 2021-04-12; identity-registry.md: "bulk export to / import from blob storage").
//!
//! An export writes every device of the hub as JSON lines (`devices.txt`, or
//! `outputBlobName`) in the service's `ExportImportDevice` shape, keys left out when
//! `excludeKeysInExport`. An import reads such lines (`inputBlobName`, default `devices.txt`)
//! and applies each with its `importMode`, tags and desired properties included; per-device
//! failures go to `importErrors.log` in the output container, as the service writes them. The
//! storage is any Blob service reached through a container URI with a SAS: Azure Storage, or
//! Azurite in tests.
//!
//! Like the service, a hub runs one job at a time. A job is stored (and so acknowledged) before
//! its answer; a job the emulator was running when it stopped is marked failed at the next
//! start, since its work may be half done.

pub(crate) mod blob;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::hub::runtime::HubRuntime;
use crate::hub::service::bulk::BulkDevice;
use crate::hub::service::view::service_properties;
use crate::hub::twin_document;
use crate::model::{HubDevice, Job};
use crate::rest::ServiceFailure;
use crate::store::StoreData;
use crate::util::time;
use blob::BlobUrl;

/// The blob an export writes and an import reads when the job names none.
const DEVICES_BLOB: &str = "devices.txt";
/// Where an import writes the lines it could not apply.
const IMPORT_ERRORS_BLOB: &str = "importErrors.log";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Export,
    Import,
}

fn kind_of(job: &Job) -> Result<Kind, ServiceFailure> {
    match job.kind.as_str() {
        "export" | "exportDevices" => Ok(Kind::Export),
        "import" | "importDevices" => Ok(Kind::Import),
        other => Err(ServiceFailure::bad_request(format!(
            "job type {other:?} is not supported: use export or import"
        ))),
    }
}

fn job_key(hub: &str, job_id: &str) -> String {
    format!("{}/{job_id}", hub.to_ascii_lowercase())
}

fn job_not_found(job_id: &str) -> ServiceFailure {
    ServiceFailure::not_found(404_002, format!("Job {job_id} not found."))
}

/// Marks the jobs a previous run left unfinished as failed (called at start).
pub(crate) fn fail_interrupted(data: &mut StoreData) {
    for job in data.hub_jobs.values_mut().filter(|j| j.is_active()) {
        job.status = "failed".into();
        job.end_time_utc = Some(time::now_utc());
        job.failure_reason = Some("the emulator stopped while the job ran".into());
    }
}

impl HubRuntime {
    /// `POST /jobs/create`: checks and stores the job, then runs it in the background.
    pub(crate) async fn create_job(
        self: &Arc<Self>,
        hub: &str,
        mut job: Job,
    ) -> Result<Job, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let kind = kind_of(&job)?;
        let output = job
            .output_blob_container_uri
            .as_deref()
            .ok_or_else(|| ServiceFailure::bad_request("outputBlobContainerUri is required"))?;
        BlobUrl::new(output, DEVICES_BLOB).map_err(ServiceFailure::bad_request)?;
        if kind == Kind::Import {
            let input = job.input_blob_container_uri.as_deref().ok_or_else(|| {
                ServiceFailure::bad_request("inputBlobContainerUri is required for an import")
            })?;
            BlobUrl::new(input, DEVICES_BLOB).map_err(ServiceFailure::bad_request)?;
        }
        job.job_id = uuid::Uuid::new_v4().to_string();
        job.status = "enqueued".into();
        job.progress = 0;
        job.start_time_utc = Some(time::now_utc());
        job.end_time_utc = None;
        job.failure_reason = None;
        let prefix = job_key(&hub, "");
        let stored = self
            .store
            .mutate_durable(|data| {
                let busy = data
                    .hub_jobs
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .any(|(_, j)| j.is_active());
                if busy {
                    return Err(ServiceFailure::new(
                        409,
                        409_005,
                        "another import or export job is running on this hub",
                    ));
                }
                data.hub_jobs
                    .insert(job_key(&hub, &job.job_id), job.clone());
                Ok(job.clone())
            })
            .await?;
        tracing::info!(%hub, job_id = %stored.job_id, kind = ?kind, "job created");
        let runtime = Arc::clone(self);
        let job_id = stored.job_id.clone();
        tokio::spawn(async move { runtime.run_job(hub, job_id, kind).await });
        Ok(stored)
    }

    /// `GET /jobs/{id}`.
    pub(crate) fn job(&self, hub: &str, job_id: &str) -> Result<Job, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        self.store
            .read(|data| data.hub_jobs.get(&job_key(&hub, job_id)).cloned())
            .ok_or_else(|| job_not_found(job_id))
    }

    /// `GET /jobs`: the hub's jobs.
    pub(crate) fn jobs(&self, hub: &str) -> Result<Vec<Job>, ServiceFailure> {
        let hub = self.require_hub(hub)?;
        let prefix = job_key(&hub, "");
        Ok(self.store.read(|data| {
            data.hub_jobs
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, j)| j.clone())
                .collect()
        }))
    }

    async fn set_job(&self, hub: &str, job_id: &str, change: impl FnOnce(&mut Job)) {
        self.store
            .mutate_durable(|data| {
                if let Some(job) = data.hub_jobs.get_mut(&job_key(hub, job_id)) {
                    change(job);
                }
            })
            .await;
    }

    async fn run_job(self: Arc<Self>, hub: String, job_id: String, kind: Kind) {
        self.set_job(&hub, &job_id, |j| j.status = "running".into())
            .await;
        let Ok(job) = self.job(&hub, &job_id) else {
            return;
        };
        let outcome = match kind {
            Kind::Export => self.export(&hub, &job).await,
            Kind::Import => self.import(&hub, &job).await,
        };
        let now = time::now_utc();
        match &outcome {
            Ok(()) => tracing::info!(%hub, %job_id, "job completed"),
            Err(reason) => tracing::warn!(%hub, %job_id, %reason, "job failed"),
        }
        self.set_job(&hub, &job_id, move |j| {
            j.end_time_utc = Some(now);
            match outcome {
                Ok(()) => {
                    j.status = "completed".into();
                    j.progress = 100;
                }
                Err(reason) => {
                    j.status = "failed".into();
                    j.failure_reason = Some(reason);
                }
            }
        })
        .await;
    }

    async fn export(&self, hub: &str, job: &Job) -> Result<(), String> {
        let container = job.output_blob_container_uri.as_deref().unwrap_or_default();
        let name = job.output_blob_name.as_deref().unwrap_or(DEVICES_BLOB);
        let url = BlobUrl::new(container, name)?.trusting(&self.trusted_cas);
        self.sync_lifecycle();
        let prefix = StoreData::hub_device_key(hub, "");
        let devices: Vec<HubDevice> = self.store.read(|data| {
            data.hub_devices
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, d)| d.clone())
                .collect()
        });
        let mut lines = Vec::new();
        for device in &devices {
            let line = export_line(device, job.exclude_keys_in_export);
            lines.extend_from_slice(line.to_string().as_bytes());
            lines.push(b'\n');
        }
        url.put(lines).await
    }

    async fn import(&self, hub: &str, job: &Job) -> Result<(), String> {
        let input = job.input_blob_container_uri.as_deref().unwrap_or_default();
        let name = job.input_blob_name.as_deref().unwrap_or(DEVICES_BLOB);
        let text = BlobUrl::new(input, name)?
            .trusting(&self.trusted_cas)
            .get()
            .await?;
        let text = String::from_utf8(text).map_err(|_| format!("{name} is not UTF-8 text"))?;
        let mut errors = Vec::new();
        for (number, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            if let Err(failure) = self.import_line(hub, line).await {
                errors.push(json!({
                    "line": number + 1,
                    "errorCode": failure.0,
                    "errorStatus": failure.1,
                }));
            }
        }
        self.store.flush().await;
        if !errors.is_empty() {
            let container = job.output_blob_container_uri.as_deref().unwrap_or_default();
            let log: String = errors.iter().map(|e| format!("{e}\n")).collect();
            BlobUrl::new(container, IMPORT_ERRORS_BLOB)?
                .trusting(&self.trusted_cas)
                .put(log.into_bytes())
                .await?;
        }
        Ok(())
    }

    /// One line of an import: the identity as a bulk operation, then its tags and desired
    /// properties. The service's error name and message on failure.
    async fn import_line(&self, hub: &str, line: &str) -> Result<(), (String, String)> {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| ("ArgumentInvalid".to_owned(), format!("not JSON: {e}")))?;
        let device: BulkDevice = serde_json::from_value(value.clone())
            .map_err(|e| ("ArgumentInvalid".to_owned(), e.to_string()))?;
        let id = device.id.clone();
        let deleting = matches!(
            device.import_mode,
            crate::hub::service::bulk::ImportMode::Delete
                | crate::hub::service::bulk::ImportMode::DeleteIfMatchETag
        );
        let close = self.bulk_one(hub, &device).map_err(|f| {
            (
                crate::hub::service::bulk::error_code(&f).to_owned(),
                format!("{id}: {}", f.message),
            )
        })?;
        if close {
            self.live.close_device(hub, &id);
        }
        if deleting {
            return Ok(());
        }
        let mut twin = serde_json::Map::new();
        if let Some(tags) = value.get("tags").filter(|t| t.is_object()) {
            twin.insert("tags".into(), tags.clone());
        }
        if let Some(desired) = value
            .pointer("/properties/desired")
            .and_then(Value::as_object)
        {
            let writable: serde_json::Map<String, Value> = desired
                .iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            twin.insert("properties".into(), json!({ "desired": writable }));
        }
        if !twin.is_empty() {
            self.update_twin(hub, &id, None, &Value::Object(twin), Some("*"), false)
                .await
                .map_err(|f| ("ArgumentInvalid".to_owned(), format!("{id}: {}", f.message)))?;
        }
        Ok(())
    }
}

/// One exported device in the service's `ExportImportDevice` shape.
fn export_line(device: &HubDevice, exclude_keys: bool) -> Value {
    let mut authentication = serde_json::to_value(&device.authentication).unwrap_or(Value::Null);
    if exclude_keys {
        if let Some(keys) = authentication.get_mut("symmetricKey") {
            *keys = json!({ "primaryKey": null, "secondaryKey": null });
        }
    }
    let properties = service_properties(&device.twin, &device.twin_meta);
    let mut line = json!({
        "id": device.device_id,
        "eTag": device.etag,
        "status": device.status,
    });
    if let Some(reason) = &device.status_reason {
        line["statusReason"] = json!(reason);
    }
    line["authentication"] = authentication;
    line["twinETag"] = json!(twin_document::etag(device.twin_meta.version));
    line["tags"] = Value::Object(twin_document::tags(&device.twin));
    line["properties"] = json!({ "desired": properties.desired, "reported": properties.reported });
    line["capabilities"] = json!(device.capabilities);
    line
}
