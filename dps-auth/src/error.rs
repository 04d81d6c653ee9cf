//! The crate's error types.
//!
//! Messages never contain key material, signatures or tokens: they are safe to log.

use dps_core::ids::IdError;

/// A boxed error from a [`Signer`](crate::Signer) implementation (an HSM driver, a TPM stack…).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why key text could not be turned into a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is not valid base64. Copy the key again (the primary or secondary key of the
    /// enrollment or device, exactly as the portal or CLI shows it).
    #[error("key is not valid base64")]
    InvalidBase64,
    /// The key decodes to zero bytes. Supply the real key.
    #[error("key is empty")]
    Empty,
}

/// Why a [`Signer`](crate::Signer) could not sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key is temporarily unavailable (secure element busy, session not yet open). Retry
    /// later, with backoff.
    #[error("signing key is temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// Signing failed and retrying will not help (key missing, not usable for HMAC-SHA256). Fix
    /// the signer's configuration.
    #[error("signing failed")]
    Failed(#[source] BoxError),
}

impl SignError {
    /// A temporary failure; see [`SignError::Unavailable`].
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }

    /// A permanent failure; see [`SignError::Failed`].
    pub fn failed(source: impl Into<BoxError>) -> Self {
        Self::Failed(source.into())
    }

    /// True when trying again later may succeed.
    #[must_use]
    pub const fn is_retriable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Why credentials could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A key could not be read; see [`KeyError`].
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A registration id, device id or module id breaks the service's rules; see [`IdError`].
    /// Correct the id: the service would refuse it.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// The signer failed; see [`SignError`] (retry when [`SignError::is_retriable`]).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The X.509 identity is unusable for this request; see
    /// [`X509Error`](crate::X509Error).
    #[cfg(feature = "x509")]
    #[error(transparent)]
    X509(#[from] crate::X509Error),
}

impl AuthError {
    /// True when trying again later may succeed (only a temporarily unavailable signer).
    #[must_use]
    pub const fn is_retriable(&self) -> bool {
        match self {
            Self::Sign(e) => e.is_retriable(),
            _ => false,
        }
    }
}
