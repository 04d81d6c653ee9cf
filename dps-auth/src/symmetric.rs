//! [`SymmetricKey`]: a device key held in memory.

use std::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::b64;
use crate::error::{KeyError, SignError};
use crate::signer::{SIGNATURE_LEN, Signer};

/// A symmetric device key (an individual enrollment's or IoT Hub device's key, or one derived
/// from a [`GroupKey`](crate::GroupKey)).
///
/// The key bytes are wiped from memory when the key is dropped. [`Debug`](fmt::Debug) prints
/// `SymmetricKey(<redacted>)` and there is no `Display`: the only way to see the key is the
/// explicitly named [`to_base64`](Self::to_base64).
///
/// It signs SAS tokens ([`Signer`]) and, used directly as an
/// [`Authenticator`](crate::Authenticator), mints a fresh token of the default lifetime and form
/// on every connect.
#[derive(Clone)]
pub struct SymmetricKey {
    bytes: Zeroizing<Vec<u8>>,
}

impl SymmetricKey {
    /// Reads a key in the base64 form the Azure portal, CLI and APIs show. Surrounding whitespace
    /// is ignored; padding is optional.
    ///
    /// # Errors
    /// [`KeyError::InvalidBase64`] or [`KeyError::Empty`]. The error never contains the text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = b64::decode_secret(text).ok_or(KeyError::InvalidBase64)?;
        Self::from_zeroizing(bytes)
    }

    /// A key from its raw bytes (copied).
    ///
    /// # Errors
    /// [`KeyError::Empty`] for an empty slice.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::from_zeroizing(Zeroizing::new(bytes.to_vec()))
    }

    pub(crate) fn from_zeroizing(bytes: Zeroizing<Vec<u8>>) -> Result<Self, KeyError> {
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { bytes })
    }

    /// The key in base64, for when a person or another program needs it (for example
    /// `dps derive-key`). The returned text is wiped when dropped; do not log it.
    #[must_use]
    pub fn to_base64(&self) -> Zeroizing<String> {
        b64::encode_secret(&self.bytes)
    }
}

/// HMAC-SHA256 of `message` under `key`.
///
/// HMAC accepts keys of any length, so the error is unreachable in practice; it is reported
/// rather than unwrapped so that no input can cause a panic.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .map_err(|_| SignError::failed("HMAC-SHA256 refused the key length"))?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().into())
}

impl Signer for SymmetricKey {
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        hmac_sha256(&self.bytes, message)
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_known_answer() {
        // Independent known answer, computed once with Python's standard library:
        //   python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //     b'key', b'The quick brown fox jumps over the lazy dog', hashlib.sha256).digest()).decode())"
        // (also the well-known HMAC-SHA256 example value f7bc83f4…).
        let key = SymmetricKey::from_bytes(b"key").unwrap();
        let mac = key
            .sign(b"The quick brown fox jumps over the lazy dog")
            .unwrap();
        assert_eq!(
            b64::encode_secret(&mac).as_str(),
            "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }

    #[test]
    fn base64_errors() {
        assert_eq!(
            SymmetricKey::from_base64("not base64!").unwrap_err(),
            KeyError::InvalidBase64
        );
        assert_eq!(SymmetricKey::from_base64("").unwrap_err(), KeyError::Empty);
        assert_eq!(
            SymmetricKey::from_base64("  \n").unwrap_err(),
            KeyError::Empty
        );
        assert_eq!(SymmetricKey::from_bytes(&[]).unwrap_err(), KeyError::Empty);
    }

    #[test]
    fn padding_and_whitespace_are_tolerated() {
        let padded = SymmetricKey::from_base64("a2V5MQ==\n").unwrap();
        let unpadded = SymmetricKey::from_base64("a2V5MQ").unwrap();
        assert_eq!(padded.to_base64().as_str(), "a2V5MQ==");
        assert_eq!(unpadded.to_base64().as_str(), "a2V5MQ==");
    }
}
