//! What a registration sends and how patiently it waits.

use alloc::string::String;
use core::time::Duration;

use crate::dps::model::{ModelError, RegistrationRequest};

/// Timers and retry limits of a registration. The defaults suit Azure; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timing {
    /// Lower bound for any wait between requests, whatever `retry-after` says (default 1 s).
    /// Protects the service from a polling storm when it answers `retry-after=0`.
    pub retry_after_floor: Duration,
    /// Upper bound for any wait between requests (default 60 s), so that an absurd `retry-after`
    /// cannot park a device for hours.
    pub retry_after_ceiling: Duration,
    /// Wait before polling when a 202 carries no `retry-after` (default 2 s, as the service
    /// documentation and the C#, Python and Node SDKs use).
    pub default_retry_after: Duration,
    /// First step of the exponential backoff for 429, 5xx, lost responses and reconnects
    /// (default 1 s; doubled per consecutive failure up to the ceiling).
    pub backoff_base: Duration,
    /// Largest random jitter added to a backoff (default 1 s), so a fleet does not retry in
    /// lockstep.
    pub max_jitter: Duration,
    /// How long to wait for the answer to one request, or for SUBACK, before treating it as lost
    /// (default 30 s).
    pub request_timeout: Duration,
    /// How long the whole registration may take, from [`Registration::new`] (default 5 min).
    ///
    /// [`Registration::new`]: super::Registration::new
    pub deadline: Duration,
    /// How many connection attempts in a row may fail (TCP, TLS, CONNACK "server unavailable")
    /// before the registration ends with
    /// [`RegistrationError::Unreachable`](super::RegistrationError::Unreachable) instead of
    /// waiting out the deadline (default 3: an unreachable endpoint fails within seconds).
    /// `None` retries until the deadline.
    pub max_connect_failures: Option<u32>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            retry_after_floor: Duration::from_secs(1),
            retry_after_ceiling: Duration::from_secs(60),
            default_retry_after: Duration::from_secs(2),
            backoff_base: Duration::from_secs(1),
            max_jitter: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
            max_connect_failures: Some(3),
        }
    }
}

impl Timing {
    /// Sets [`Timing::retry_after_floor`].
    #[must_use]
    pub const fn retry_after_floor(mut self, value: Duration) -> Self {
        self.retry_after_floor = value;
        self
    }

    /// Sets [`Timing::retry_after_ceiling`].
    #[must_use]
    pub const fn retry_after_ceiling(mut self, value: Duration) -> Self {
        self.retry_after_ceiling = value;
        self
    }

    /// Sets [`Timing::default_retry_after`].
    #[must_use]
    pub const fn default_retry_after(mut self, value: Duration) -> Self {
        self.default_retry_after = value;
        self
    }

    /// Sets [`Timing::backoff_base`].
    #[must_use]
    pub const fn backoff_base(mut self, value: Duration) -> Self {
        self.backoff_base = value;
        self
    }

    /// Sets [`Timing::max_jitter`].
    #[must_use]
    pub const fn max_jitter(mut self, value: Duration) -> Self {
        self.max_jitter = value;
        self
    }

    /// Sets [`Timing::request_timeout`].
    #[must_use]
    pub const fn request_timeout(mut self, value: Duration) -> Self {
        self.request_timeout = value;
        self
    }

    /// Sets [`Timing::deadline`].
    #[must_use]
    pub const fn deadline(mut self, value: Duration) -> Self {
        self.deadline = value;
        self
    }

    /// Sets [`Timing::max_connect_failures`] (`None`: retry until the deadline; a bound of 0
    /// counts as 1).
    #[must_use]
    pub const fn max_connect_failures(mut self, value: Option<u32>) -> Self {
        self.max_connect_failures = value;
        self
    }

    /// Clamps a service-requested wait into `[floor, ceiling]`.
    pub(crate) fn clamp(&self, wait: Duration) -> Duration {
        // A floor above the ceiling is a configuration mistake; the ceiling wins.
        wait.max(self.retry_after_floor)
            .min(self.retry_after_ceiling)
    }
}

/// What to register: the request body and the timing policy.
///
/// ```
/// use core::time::Duration;
/// use dps_core::dps::registration::{RegistrationConfig, Timing};
/// let config = RegistrationConfig::new("my-device")
///     .payload_json(r#"{"modelId":"dtmi:com:example:Thermostat;1"}"#)?
///     .timing(Timing::default().deadline(Duration::from_secs(60)));
/// # Ok::<(), dps_core::dps::ModelError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    pub(crate) request: RegistrationRequest,
    pub(crate) timing: Timing,
}

impl RegistrationConfig {
    /// Registers `registration_id` with the default timing, no payload and no CSR.
    #[must_use]
    pub fn new(registration_id: impl Into<String>) -> Self {
        Self {
            request: RegistrationRequest::new(registration_id),
            timing: Timing::default(),
        }
    }

    /// Sends a custom payload (validated JSON text, sent verbatim).
    pub fn payload_json(mut self, json: &str) -> Result<Self, ModelError> {
        self.request = self.request.payload_json(json)?;
        Ok(self)
    }

    /// Sends a certificate signing request (base64 DER PKCS#10). The connection must announce
    /// api-version [`CSR_API_VERSION`](crate::dps::CSR_API_VERSION) or later.
    #[must_use]
    pub fn csr(mut self, csr_base64: impl Into<String>) -> Self {
        self.request = self.request.csr(csr_base64);
        self
    }

    /// Replaces the whole request body.
    #[must_use]
    pub fn request(mut self, request: RegistrationRequest) -> Self {
        self.request = request;
        self
    }

    /// Replaces the timing policy.
    #[must_use]
    pub const fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The request body that will be sent.
    #[must_use]
    pub const fn request_body(&self) -> &RegistrationRequest {
        &self.request
    }

    /// The timing policy.
    #[must_use]
    pub const fn timing_policy(&self) -> &Timing {
        &self.timing
    }
}
