//! Containers of the built-in blob endpoint for the service's import and export jobs (#15): a
//! job's `outputBlobContainerUri` / `inputBlobContainerUri` may point at the emulator itself,
//! so a job runs with no storage account and no setup.

use std::time::Duration;

use super::Emulator;
use crate::blob::sas;
use crate::util::time;

impl Emulator {
    /// A container URI with a SAS (read, add, create, write) on the built-in blob endpoint,
    /// valid for `ttl`, for import and export jobs: `https://{host}:{https port}/{account}/{container}?{sas}`.
    /// The container is created if needed. `None` when file uploads go to an external storage
    /// account (the built-in endpoint is then off: use that account's URIs).
    #[must_use]
    pub fn builtin_container_uri(&self, container: &str, ttl: Duration) -> Option<String> {
        let api = self.files.builtin()?;
        api.store.create_container(container);
        let expiry = time::unix_now() + ttl.as_secs();
        let token = sas::container_sas(&api.account, &api.key, container, "racw", expiry).ok()?;
        Some(format!(
            "https://{}/{}/{container}?{token}",
            self.info().https_endpoint,
            api.account
        ))
    }
}
