//! Import and export jobs (`JobProperties`, api-version 2021-04-12), as the store keeps them.

use serde::{Deserialize, Serialize};

/// An import or export job. The container URIs carry SAS tokens: they are kept in the store
/// (owner-only) and answered to the service client as the service does, never logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Job {
    pub(crate) job_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start_time_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end_time_utc: Option<String>,
    /// `export` or `import` (also taken as `exportDevices` / `importDevices`).
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// `enqueued`, `running`, `completed` or `failed`.
    pub(crate) status: String,
    pub(crate) progress: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) input_blob_container_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) input_blob_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_blob_container_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_blob_name: Option<String>,
    pub(crate) exclude_keys_in_export: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) storage_authentication_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) failure_reason: Option<String>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The container URIs carry SAS tokens.
        f.debug_struct("Job")
            .field("job_id", &self.job_id)
            .field("kind", &self.kind)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// Whether the job still runs (or waits to).
    pub(crate) fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "enqueued" | "running")
    }
}
