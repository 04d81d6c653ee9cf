//! The assignment record: what a cache keeps between boots, with a stable, versioned JSON form,
//! and the store actions the driver performs (the machine never touches storage itself).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dps::Substatus;
use crate::dps::registration::Assignment;

/// The version [`AssignmentRecord::to_json`] writes. A record with another version is refused
/// by [`AssignmentRecord::from_json`], so an old cache means "provision again", never a
/// misread.
pub const RECORD_VERSION: u32 = 1;

/// The last assignment of the device: enough to reach its hub after a reboot without asking
/// DPS. It holds no secret (keys and private keys stay with the authenticators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AssignmentRecord {
    /// The format version ([`RECORD_VERSION`]).
    pub version: u32,
    /// The assigned hub host name.
    pub assigned_hub: String,
    /// The device id on that hub.
    pub device_id: String,
    /// How the assignment relates to the previous one, when DPS said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<Substatus>,
    /// The payload returned by the allocation (JSON text), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The certificate chain DPS issued for a CSR (base64 DER, leaf first), when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issued_certificate_chain: Vec<String>,
    /// When the assignment was made, in Unix seconds (the wall clock: it outlives reboots,
    /// which a monotonic clock does not).
    pub provisioned_at: u64,
}

/// Why a stored record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The text is not a record (not JSON, or fields missing or unknown).
    Malformed,
    /// The record was written by another format version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The hub or the device id is empty.
    Incomplete,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("the stored assignment is not a valid record"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "the stored assignment has format version {found}, this build reads {RECORD_VERSION}"
            ),
            Self::Incomplete => f.write_str("the stored assignment has no hub or no device id"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RecordError {}

impl AssignmentRecord {
    /// A record of `assignment`, made at the Unix time `provisioned_at`.
    #[must_use]
    pub fn from_assignment(assignment: &Assignment, provisioned_at: u64) -> Self {
        Self {
            version: RECORD_VERSION,
            assigned_hub: assignment.assigned_hub().to_string(),
            device_id: assignment.device_id().to_string(),
            substatus: assignment.substatus().cloned(),
            payload: assignment.payload().map(|p| p.get().to_string()),
            issued_certificate_chain: assignment.issued_certificate_chain().to_vec(),
            provisioned_at,
        }
    }

    /// A record of a hub and device id made at `provisioned_at` (Unix seconds), with nothing
    /// else: for tests and for applications that provisioned by other means.
    #[must_use]
    pub fn new(
        assigned_hub: impl Into<String>,
        device_id: impl Into<String>,
        provisioned_at: u64,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            assigned_hub: assigned_hub.into(),
            device_id: device_id.into(),
            substatus: None,
            payload: None,
            issued_certificate_chain: Vec::new(),
            provisioned_at,
        }
    }

    /// The stable JSON form the store persists.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail; an empty string would only be
        // refused by `from_json`, never misread.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the JSON form back, checking the version and the fields a connection needs.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        // The version first, so a future format is reported as such rather than as malformed.
        let probe: Version = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or(RecordError::Malformed)?;
        if probe.version != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion {
                found: probe.version,
            });
        }
        let record: Self = serde_json::from_str(text).map_err(|_| RecordError::Malformed)?;
        if record.assigned_hub.is_empty() || record.device_id.is_empty() {
            return Err(RecordError::Incomplete);
        }
        Ok(record)
    }

    /// The age of the record at the Unix time `unix_now` (zero when the clock is behind it).
    #[must_use]
    pub const fn age(&self, unix_now: u64) -> Duration {
        Duration::from_secs(unix_now.saturating_sub(self.provisioned_at))
    }
}

/// What the driver does with its store. The machine emits these; the driver performs them
/// (atomically) through its [`AssignmentStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreAction {
    /// Replace the stored record with this one.
    Save(AssignmentRecord),
    /// Remove the stored record (the assignment is known to be gone).
    Clear,
}

/// The store a driver keeps the record in (a file, flash, a key-value store). Synchronous and
/// small on purpose: a record is a few hundred bytes, written once per assignment.
pub trait AssignmentStore {
    /// Why an operation failed.
    type Error;
    /// The stored record, `None` when there is none.
    fn load(&mut self) -> Result<Option<AssignmentRecord>, Self::Error>;
    /// Replaces the stored record atomically.
    fn save(&mut self, record: &AssignmentRecord) -> Result<(), Self::Error>;
    /// Removes the stored record.
    fn clear(&mut self) -> Result<(), Self::Error>;

    /// Performs `action`.
    fn apply(&mut self, action: &StoreAction) -> Result<(), Self::Error> {
        match action {
            StoreAction::Save(record) => self.save(record),
            StoreAction::Clear => self.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_versions_are_checked() {
        let mut r = AssignmentRecord::new("h.azure-devices.net", "d1", 100);
        r.payload = Some("{\"k\":1}".into());
        let text = r.to_json();
        assert_eq!(AssignmentRecord::from_json(&text), Ok(r));
        assert_eq!(
            AssignmentRecord::from_json(&text.replace("\"version\":1", "\"version\":2")),
            Err(RecordError::UnsupportedVersion { found: 2 })
        );
        assert_eq!(
            AssignmentRecord::from_json("nope"),
            Err(RecordError::Malformed)
        );
        let empty = AssignmentRecord::new("", "d1", 1).to_json();
        assert_eq!(
            AssignmentRecord::from_json(&empty),
            Err(RecordError::Incomplete)
        );
    }

    #[test]
    fn age_saturates() {
        let r = AssignmentRecord::new("h", "d", 100);
        assert_eq!(r.age(160), Duration::from_secs(60));
        assert_eq!(r.age(50), Duration::ZERO);
    }
}
