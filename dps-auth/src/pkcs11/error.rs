//! [`Pkcs11Error`]: why a PKCS#11 key could not be opened or used. Never carries a PIN.

use std::io;
use std::path::PathBuf;

/// Why a PKCS#11 module, token or key could not be used. Messages never contain a PIN or key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The URI is not a usable RFC 7512 PKCS#11 URI.
    #[error("invalid PKCS#11 URI: {reason}")]
    InvalidUri {
        /// What is wrong.
        reason: &'static str,
    },
    /// No module path was given: pass one, put `module-path` in the URI or set
    /// [`MODULE_ENV`](super::MODULE_ENV).
    #[error("no PKCS#11 module given; pass its path or set {}", super::MODULE_ENV)]
    NoModule,
    /// The module (shared library) could not be loaded or initialized.
    #[error("cannot load the PKCS#11 module {}: {reason}", path.display())]
    ModuleUnavailable {
        /// The module path.
        path: PathBuf,
        /// What the loader or the module said.
        reason: String,
    },
    /// No slot holds a token with this label (or serial number).
    #[error("no PKCS#11 token labelled {label:?}")]
    TokenNotFound {
        /// The label or serial number asked for.
        label: String,
    },
    /// The token has no object matching the URI.
    #[error("no PKCS#11 object matching {what} in the token")]
    ObjectNotFound {
        /// The object label and/or id asked for.
        what: String,
    },
    /// The token refused the PIN.
    #[error("the PKCS#11 token refused the PIN")]
    WrongPin,
    /// The token is locked after too many wrong PINs.
    #[error("the PKCS#11 token's PIN is locked")]
    PinLocked,
    /// The token needs a login and no PIN was given.
    #[error(
        "the PKCS#11 token needs a PIN: use pin-value, pin-source or {}",
        super::PIN_ENV
    )]
    PinMissing,
    /// The `pin-source` file could not be read.
    #[error("cannot read the PIN file {}: {kind}", path.display())]
    PinSourceUnreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        kind: io::ErrorKind,
    },
    /// The token does not offer a mechanism this key needs.
    #[error("the PKCS#11 token does not support {mechanism}")]
    UnsupportedMechanism {
        /// The mechanism, e.g. `CKM_SHA256_HMAC`.
        mechanism: &'static str,
    },
    /// The key is of a kind this crate cannot use (only EC P-256 and RSA for X.509).
    #[error("unsupported PKCS#11 key: {reason}")]
    UnsupportedKey {
        /// Why.
        reason: &'static str,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {operation} failed: {reason}")]
    Device {
        /// What was being done.
        operation: &'static str,
        /// The module's return value.
        reason: String,
    },
}

impl Pkcs11Error {
    /// Maps a cryptoki error of `operation`, naming the common causes.
    pub(crate) fn device(operation: &'static str, e: &cryptoki::error::Error) -> Self {
        use cryptoki::error::{Error, RvError};
        match e {
            Error::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            ) => Self::WrongPin,
            Error::Pkcs11(RvError::PinLocked, _) => Self::PinLocked,
            Error::Pkcs11(RvError::MechanismInvalid, _) => Self::UnsupportedMechanism {
                mechanism: operation,
            },
            _ => Self::Device {
                operation,
                reason: e.to_string(),
            },
        }
    }
}
