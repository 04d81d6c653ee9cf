//! The lifecycle's configuration, its identity-recovery backoff, and the typed reasons and
//! events it reports.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::renewal::{CertificateRenewal, Issuer};
use crate::dps::registration::RegistrationConfig;
use crate::hub::session::SessionConfig;
use crate::retry::JitterSource;

/// An opaque credential slot: the driver maps each to an authenticator (an X.509 identity,
/// the primary key, the secondary key, an application callback), tried in the configured
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[expect(
    clippy::exhaustive_structs,
    reason = "an opaque id: the number is all there is to it"
)]
pub struct CredentialSlot(pub u8);

impl fmt::Display for CredentialSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credential slot {}", self.0)
    }
}

/// Identity-recovery backoff: the n-th consecutive re-provisioning without a hub connection in
/// between waits `min(floor * 2^(n-2), ceiling)` less a jitter of up to a quarter, never below
/// `floor` (the first one is immediate). Only a successful hub connection resets the count; a
/// larger DPS retry-after wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryBackoff {
    /// The shortest wait (default 5 minutes).
    pub floor: Duration,
    /// The longest wait (default 1 hour).
    pub ceiling: Duration,
}

impl Default for RecoveryBackoff {
    fn default() -> Self {
        Self {
            floor: Duration::from_secs(5 * 60),
            ceiling: Duration::from_secs(60 * 60),
        }
    }
}

impl RecoveryBackoff {
    /// A backoff between `floor` and `ceiling`.
    #[must_use]
    pub const fn new(floor: Duration, ceiling: Duration) -> Self {
        Self { floor, ceiling }
    }

    /// The wait before the `attempt`-th consecutive re-provisioning (1 for the first).
    #[must_use]
    pub fn delay(&self, attempt: u32, jitter: &mut JitterSource) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let ceiling = self.ceiling.max(self.floor);
        let exp = (attempt - 2).min(20);
        let base = self
            .floor
            .checked_mul(1_u32 << exp)
            .map_or(ceiling, |d| d.min(ceiling));
        base.saturating_sub(jitter.jitter(base / 4)).max(self.floor)
    }
}

/// The lifecycle's configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeviceConfig {
    /// The DPS registration to run when provisioning.
    pub registration: RegistrationConfig,
    /// The hub session template; its device id is replaced by the assignment's.
    pub session: SessionConfig,
    /// The credentials, in order of preference (at least one).
    pub credentials: Vec<CredentialSlot>,
    /// Re-provision after this many consecutive failed hub connection attempts (default 10).
    pub hub_attempts: u32,
    /// Re-provision when the hub stayed unreachable this long (default: not used).
    pub hub_unreachable_for: Option<Duration>,
    /// Re-provision when the assignment is older than this (default: never).
    pub max_assignment_age: Option<Duration>,
    /// The identity-recovery backoff.
    pub recovery: RecoveryBackoff,
    /// Certificate renewal, for a CSR-issued identity (default: off).
    pub renewal: Option<CertificateRenewal>,
}

impl DeviceConfig {
    /// A configuration with the defaults and the single credential slot 0.
    #[must_use]
    pub fn new(registration: RegistrationConfig, session: SessionConfig) -> Self {
        Self {
            registration,
            session,
            credentials: vec![CredentialSlot(0)],
            hub_attempts: 10,
            hub_unreachable_for: None,
            max_assignment_age: None,
            recovery: RecoveryBackoff::default(),
            renewal: None,
        }
    }

    /// Sets the credential slots, in order of preference (an empty list keeps slot 0).
    #[must_use]
    pub fn credentials(mut self, slots: Vec<CredentialSlot>) -> Self {
        if !slots.is_empty() {
            self.credentials = slots;
        }
        self
    }

    /// Sets the hub attempts before re-provisioning (at least 1).
    #[must_use]
    pub fn hub_attempts(mut self, attempts: u32) -> Self {
        self.hub_attempts = attempts.max(1);
        self
    }

    /// Sets the unreachable duration before re-provisioning.
    #[must_use]
    pub const fn hub_unreachable_for(mut self, limit: Option<Duration>) -> Self {
        self.hub_unreachable_for = limit;
        self
    }

    /// Sets the largest assignment age.
    #[must_use]
    pub const fn max_assignment_age(mut self, age: Option<Duration>) -> Self {
        self.max_assignment_age = age;
        self
    }

    /// Sets the certificate renewal policy.
    #[must_use]
    pub const fn renewal(mut self, renewal: Option<CertificateRenewal>) -> Self {
        self.renewal = renewal;
        self
    }

    /// Sets the identity-recovery backoff.
    #[must_use]
    pub const fn recovery(mut self, recovery: RecoveryBackoff) -> Self {
        self.recovery = recovery;
        self
    }
}

/// Why the device provisions (again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReprovisionReason {
    /// There is no usable stored assignment.
    NoCache,
    /// The hub refused every credential (CONNACK 4 or 5): the device was deleted or moved.
    HubRefused {
        /// The CONNACK code.
        code: u8,
    },
    /// The hub could not be reached in the configured number of attempts.
    HubUnreachable {
        /// The failed attempts.
        attempts: u32,
    },
    /// The hub stayed unreachable longer than the configured duration.
    HubUnreachableFor {
        /// How long.
        duration: Duration,
    },
    /// The assignment is older than the configured age.
    AssignmentTooOld,
    /// The application asked.
    Requested,
    /// The last provisioning failed in a way worth another try later.
    ProvisioningFailed,
    /// The certificate is renewed by provisioning with a new CSR (the hub does not issue).
    CertificateRenewal,
}

impl fmt::Display for ReprovisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCache => f.write_str("there is no stored assignment"),
            Self::HubRefused { code } => write!(
                f,
                "the hub refused every credential (CONNACK {code}): the device was deleted or moved"
            ),
            Self::HubUnreachable { attempts } => {
                write!(f, "the hub was unreachable for {attempts} attempts")
            }
            Self::HubUnreachableFor { duration } => {
                write!(f, "the hub was unreachable for {} s", duration.as_secs())
            }
            Self::AssignmentTooOld => f.write_str("the assignment is older than allowed"),
            Self::Requested => f.write_str("the application asked to provision again"),
            Self::ProvisioningFailed => f.write_str("the last provisioning failed"),
            Self::CertificateRenewal => {
                f.write_str("the certificate is renewed by provisioning with a new CSR")
            }
        }
    }
}

/// Where the device's assignment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The stored record: no DPS call.
    Cache,
    /// A DPS registration.
    Dps,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cache => "the stored assignment",
            Self::Dps => "the provisioning service",
        })
    }
}

/// Why the lifecycle stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceStopReason {
    /// [`Device::close`](super::Device::close) was called.
    Closed,
    /// DPS reports the enrollment disabled.
    EnrollmentDisabled,
    /// The hub keeps refusing the identity DPS just assigned (a disabled device): reported,
    /// not retried in a loop.
    DeviceDisabled {
        /// The CONNACK code.
        code: u8,
    },
    /// DPS refused every credential.
    CredentialsRefused,
    /// A failure retrying cannot fix (TLS trust, insecure endpoint, unusable credentials).
    Unrecoverable,
}

impl fmt::Display for DeviceStopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("the application closed the device"),
            Self::EnrollmentDisabled => f.write_str("the enrollment is disabled in DPS"),
            Self::DeviceDisabled { code } => write!(
                f,
                "the hub refuses the freshly assigned identity (CONNACK {code}): the device is disabled"
            ),
            Self::CredentialsRefused => f.write_str("DPS refused every configured credential"),
            Self::Unrecoverable => f.write_str("a failure retrying cannot fix"),
        }
    }
}

/// A step of the device's life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// The device has an assignment.
    Provisioned {
        /// Where it came from.
        source: Source,
        /// The hub.
        hub: alloc::string::String,
        /// The device id.
        device_id: alloc::string::String,
    },
    /// Connected to the hub with `credential`.
    Connected {
        /// The credential that worked.
        credential: CredentialSlot,
    },
    /// Provisioning again after `delay`.
    Reprovisioning {
        /// Why.
        reason: ReprovisionReason,
        /// The wait before the DPS registration starts.
        delay: Duration,
        /// Consecutive re-provisionings without a hub connection (1 for the first).
        attempt: u32,
    },
    /// A credential was refused; the next one is tried.
    CredentialSwitched {
        /// The refused one.
        from: CredentialSlot,
        /// The one tried next.
        to: CredentialSlot,
    },
    /// The certificate is due for renewal: generate a key and a CSR and hand the CSR to
    /// [`Device::renew_with_csr`](super::Device::renew_with_csr).
    CsrNeeded,
    /// The hub is busy with another request for this device (409004): the request is sent
    /// again after `retry_in`.
    RenewalDeferred {
        /// The wait.
        retry_in: Duration,
    },
    /// A new certificate chain was issued and saved; the next connection presents it.
    CertificateRenewed {
        /// Who issued it.
        via: Issuer,
    },
    /// Stopped for good.
    Stopped(DeviceStopReason),
}
