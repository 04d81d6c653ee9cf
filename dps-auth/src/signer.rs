//! The [`Signer`] trait: HMAC-SHA256 by whoever holds the key.

use std::fmt;
use std::sync::Arc;

use crate::error::SignError;

/// Length of an HMAC-SHA256 signature, in bytes.
pub const SIGNATURE_LEN: usize = 32;

/// Computes HMAC-SHA256 under a device key that the caller may not be able to read.
///
/// SAS tokens only need the signature, never the key itself, so the key can stay in an HSM, a
/// TPM or a secure element: implement this trait over its API and hand the implementation to
/// [`SasAuthenticator`](crate::SasAuthenticator) or [`generate_sas`](crate::generate_sas).
/// [`SymmetricKey`](crate::SymmetricKey) is the in-memory implementation.
///
/// Implementations must be cheap to call on every (re)connect, must not panic, and their `Debug`
/// output must not reveal the key.
pub trait Signer: Send + Sync + fmt::Debug {
    /// Returns HMAC-SHA256(key, `message`).
    ///
    /// # Errors
    /// [`SignError::Unavailable`] when a retry may succeed, [`SignError::Failed`] otherwise.
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError>;
}

impl<S: Signer + ?Sized> Signer for &S {
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        (**self).sign(message)
    }
}

impl<S: Signer + ?Sized> Signer for Box<S> {
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        (**self).sign(message)
    }
}

impl<S: Signer + ?Sized> Signer for Arc<S> {
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        (**self).sign(message)
    }
}
