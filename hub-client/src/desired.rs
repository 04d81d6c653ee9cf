//! What the desired-properties stream carries.

use dps_core::hub::Twin;
use serde_json::Value;

/// A change of the desired properties, from the
/// [`desired_patches`](crate::HubClient::desired_patches) stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DesiredUpdate {
    /// A patch the hub pushed while connected (apply it as a JSON merge patch).
    Patch {
        /// Its `$version`.
        version: u64,
        /// The patch (`null` members mean "delete").
        patch: Value,
    },
    /// The whole twin, read again after a (re)connect: patches are not delivered while
    /// offline, so reconcile with `twin.desired`.
    Resync {
        /// The twin.
        twin: Twin,
        /// Desired versions missed while offline (`Some(0)`: none); `None` after the first
        /// connect.
        missed: Option<u64>,
    },
}

impl DesiredUpdate {
    /// The desired version this update brings the device to.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::Patch { version, .. } => Some(*version),
            Self::Resync { twin, .. } => twin.desired_version(),
        }
    }
}
