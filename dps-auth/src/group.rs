//! [`GroupKey`]: an enrollment group's key, from which each device's key is derived.

use std::fmt;

use dps_core::ids::validate_registration_id;
use zeroize::Zeroizing;

use crate::b64;
use crate::error::{AuthError, KeyError};
use crate::symmetric::{SymmetricKey, hmac_sha256};

/// The symmetric key of a DPS enrollment group.
///
/// Devices never sign with the group key itself: each device's key is
/// `HMAC-SHA256(group key, registration id)` ([`derive`](Self::derive)), so a factory or a gateway
/// can hold the group key and give every device its own key. It is as secret as the group: the
/// bytes are wiped on drop and [`Debug`](fmt::Debug) prints `GroupKey(<redacted>)`.
#[derive(Clone)]
pub struct GroupKey {
    bytes: Zeroizing<Vec<u8>>,
}

impl GroupKey {
    /// Reads the group's primary or secondary key in base64. Surrounding whitespace is ignored;
    /// padding is optional.
    ///
    /// # Errors
    /// [`KeyError::InvalidBase64`] or [`KeyError::Empty`]. The error never contains the text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = b64::decode_secret(text).ok_or(KeyError::InvalidBase64)?;
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { bytes })
    }

    /// The device key for `registration_id`:
    /// `HMAC-SHA256(base64-decoded group key, UTF-8 registration id)`, as the service computes it.
    ///
    /// # Errors
    /// [`AuthError::InvalidId`] when `registration_id` breaks the DPS rules (a key derived for it
    /// would be useless); [`AuthError::Sign`] is not expected in practice.
    pub fn derive(&self, registration_id: &str) -> Result<SymmetricKey, AuthError> {
        validate_registration_id(registration_id)?;
        let derived = Zeroizing::new(hmac_sha256(&self.bytes, registration_id.as_bytes())?);
        tracing::debug!(registration_id, "derived device key from group key");
        Ok(SymmetricKey::from_zeroizing(Zeroizing::new(
            derived.to_vec(),
        ))?)
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dps_core::ids::IdError;

    // Microsoft docs, "How to provision legacy devices using symmetric keys".
    const GROUP_KEY: &str =
        "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";

    #[test]
    fn derived_key_vector() {
        let group = GroupKey::from_base64(GROUP_KEY).unwrap();
        let key = group
            .derive("sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
            .unwrap();
        assert_eq!(
            key.to_base64().as_str(),
            "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
        );
    }

    #[test]
    fn invalid_registration_id_is_refused() {
        let group = GroupKey::from_base64(GROUP_KEY).unwrap();
        assert!(matches!(
            group.derive("bad id"),
            Err(AuthError::InvalidId(IdError::InvalidChar { .. }))
        ));
        assert!(matches!(
            group.derive(""),
            Err(AuthError::InvalidId(IdError::Empty { .. }))
        ));
    }
}
