//! Checking SAS tokens, as the service (or an emulator) does.

use base64::Engine as _;
use dps_core::sas::{ParsedSas, SasParseError, SasResource};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::b64;
use crate::error::SignError;
use crate::signer::Signer;
use crate::symmetric::SymmetricKey;

/// What a valid token said; returned by [`verify_sas`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSas {
    /// The resource URI the token grants access to, percent-decoded.
    pub resource: String,
    /// The expiry, in seconds since the Unix epoch.
    pub expiry_unix: u64,
    /// The key name (`skn`), if the token had one.
    pub key_name: Option<String>,
}

/// Why a SAS token was refused. The messages never quote the token or its signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SasVerifyError {
    /// The text is not a well-formed token. A service answers 401 (CONNACK "bad user name or
    /// password"); the client must fix how it builds tokens.
    #[error("malformed SAS token: {0}")]
    Malformed(SasParseError),
    /// The token was minted for another resource (another registration, device or hub). The
    /// client must mint a token for the resource it connects to.
    #[error("SAS token is for resource {actual:?}, expected {expected:?}")]
    ResourceMismatch {
        /// The resource the caller expected, un-encoded.
        expected: String,
        /// The token's resource, percent-decoded.
        actual: String,
    },
    /// The signature does not match: wrong key, or a token altered after signing. The client
    /// must use the right key (for group enrollments, the key derived for its registration id).
    #[error("SAS token signature does not match")]
    BadSignature,
    /// The signature is right but the token has expired. The client must mint a fresh token,
    /// and check its clock.
    #[error("SAS token expired at {expiry_unix} (now {now_unix})")]
    Expired {
        /// The token's expiry, in seconds since the Unix epoch.
        expiry_unix: u64,
        /// The time the check was made.
        now_unix: u64,
    },
    /// The key's signer failed (only possible with a custom [`Signer`]).
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Checks `token` against `key` for `expected`, at `now_unix` (seconds since the Unix epoch).
///
/// As the service does: the signature is computed over the `sr` text exactly as sent (upper- or
/// lower-case encoding, or none, all verify), compared in constant time; the decoded `sr` must
/// equal the expected resource ignoring ASCII case; `skn` may be present or not; the token is
/// valid up to and including the second `se`. Checks run in that order, so [`Expired`] means the
/// signature was right.
///
/// For an enrollment with a primary and a secondary key, call it with each.
///
/// # Errors
/// [`Malformed`], [`ResourceMismatch`], [`BadSignature`] or [`Expired`].
///
/// [`Malformed`]: SasVerifyError::Malformed
/// [`ResourceMismatch`]: SasVerifyError::ResourceMismatch
/// [`BadSignature`]: SasVerifyError::BadSignature
/// [`Expired`]: SasVerifyError::Expired
pub fn verify_sas(
    token: &str,
    key: &SymmetricKey,
    expected: &SasResource,
    now_unix: u64,
) -> Result<VerifiedSas, SasVerifyError> {
    let parsed = ParsedSas::parse(token).map_err(SasVerifyError::Malformed)?;
    let expected = expected.to_string();
    if !parsed.resource().eq_ignore_ascii_case(&expected) {
        return Err(SasVerifyError::ResourceMismatch {
            expected,
            actual: parsed.resource().to_owned(),
        });
    }
    let computed = Zeroizing::new(key.sign(parsed.signed_text().as_bytes())?);
    let presented = b64::ENGINE
        .decode(parsed.signature_base64())
        .map(Zeroizing::new)
        .map_err(|_| SasVerifyError::BadSignature)?;
    if !bool::from(computed.as_slice().ct_eq(presented.as_slice())) {
        return Err(SasVerifyError::BadSignature);
    }
    let expiry_unix = parsed.expiry();
    if expiry_unix < now_unix {
        return Err(SasVerifyError::Expired {
            expiry_unix,
            now_unix,
        });
    }
    Ok(VerifiedSas {
        resource: parsed.resource().to_owned(),
        expiry_unix,
        key_name: parsed.key_name().map(str::to_owned),
    })
}
