//! Key rotation on the service side (#12): an enrollment's (or a group's) symmetric keys
//! regenerated, as an operator does when a key leaks. Devices holding a replaced key fail DPS
//! authentication (401) and survive with the other one; the hub identities DPS created keep
//! their keys until the device registers again (DPS writes them at assignment).
//!
//! The DPS service API has no "regenerate" operation (clients PUT the enrollment with new
//! keys); the emulator offers one under `/emulator` for tests.

use serde::{Deserialize, Serialize};

use super::enrollments::{self, Kind};
use crate::model::{AttestationMechanism, AttestationType, SymmetricKeyAttestation};
use crate::rest::ServiceFailure;
use crate::store::Store;
use crate::util::ids;

/// Which of the two symmetric keys to regenerate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeySlot {
    /// The primary key.
    Primary,
    /// The secondary key.
    Secondary,
    /// Both keys (the default).
    #[default]
    Both,
}

/// The body of the emulator's `regenerateKeys` endpoints: `{"key": "primary"|"secondary"|"both"}`
/// (an empty body means both).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RegenerateKeys {
    #[serde(default)]
    pub(crate) key: KeySlot,
}

impl RegenerateKeys {
    /// Parses the body; empty means both keys.
    pub(crate) fn parse(body: &[u8]) -> Result<KeySlot, ServiceFailure> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(KeySlot::Both);
        }
        serde_json::from_slice::<Self>(body)
            .map(|r| r.key)
            .map_err(|e| ServiceFailure::bad_request(format!("the request body is not valid: {e}")))
    }
}

/// Replaces the keys in `slot` with fresh ones; 400 without keys (X.509, TPM).
pub(crate) fn regenerate(
    keys: Option<&mut SymmetricKeyAttestation>,
    slot: KeySlot,
) -> Result<(), ServiceFailure> {
    let Some(keys) = keys else {
        return Err(ServiceFailure::bad_request(
            "only symmetric-key authentication has keys to regenerate",
        ));
    };
    if slot != KeySlot::Secondary {
        keys.primary_key = Some(ids::symmetric_key());
    }
    if slot != KeySlot::Primary {
        keys.secondary_key = Some(ids::symmetric_key());
    }
    Ok(())
}

/// Regenerates an individual enrollment's or a group's keys; the new attestation mechanism
/// (keys included).
pub(crate) async fn regenerate_enrollment_keys(
    store: &Store,
    kind: Kind,
    id: &str,
    slot: KeySlot,
) -> Result<AttestationMechanism, ServiceFailure> {
    match kind {
        Kind::Individual => {
            let mut enrollment = enrollments::get_enrollment(store, id)?;
            let attestation = &mut enrollment.settings.attestation;
            regenerate(symmetric(attestation), slot)?;
            let etag = enrollment.settings.etag.clone();
            // If-Match: a concurrent write in between is refused, not overwritten.
            let stored = enrollments::put_enrollment(store, enrollment, etag.as_deref()).await?;
            Ok(stored.settings.attestation)
        }
        Kind::Group => {
            let mut group = enrollments::get_group(store, id)?;
            let attestation = &mut group.settings.attestation;
            regenerate(symmetric(attestation), slot)?;
            let etag = group.settings.etag.clone();
            let stored = enrollments::put_group(store, group, etag.as_deref()).await?;
            Ok(stored.settings.attestation)
        }
    }
}

/// The symmetric keys of a symmetric-key attestation.
fn symmetric(attestation: &mut AttestationMechanism) -> Option<&mut SymmetricKeyAttestation> {
    if attestation.kind == AttestationType::SymmetricKey {
        attestation.symmetric_key.as_mut()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots() {
        let mut keys = SymmetricKeyAttestation {
            primary_key: Some("p".into()),
            secondary_key: Some("s".into()),
        };
        regenerate(Some(&mut keys), KeySlot::Primary).unwrap();
        assert_ne!(keys.primary_key.as_deref(), Some("p"));
        assert_eq!(keys.secondary_key.as_deref(), Some("s"));
        let before = keys.clone();
        regenerate(Some(&mut keys), KeySlot::Both).unwrap();
        assert_ne!(keys.primary_key, before.primary_key);
        assert_ne!(keys.secondary_key, before.secondary_key);
        assert!(regenerate(None, KeySlot::Both).is_err());
        assert_eq!(RegenerateKeys::parse(b"").unwrap(), KeySlot::Both);
        assert_eq!(
            RegenerateKeys::parse(br#"{"key":"secondary"}"#).unwrap(),
            KeySlot::Secondary
        );
        assert!(RegenerateKeys::parse(br#"{"key":"third"}"#).is_err());
    }
}
