//! # dps-auth
//!
//! Credentials for Azure IoT Device Provisioning Service (DPS) and IoT Hub devices.
//!
//! - [`SymmetricKey`]: an individual enrollment's or hub device's key; [`GroupKey`]: an enrollment
//!   group's key, from which each device's key is [derived](GroupKey::derive).
//! - [`Signer`]: HMAC-SHA256 by whoever holds the key, so keys can stay in an HSM, a TPM or a
//!   secure element; [`generate_sas`] mints a token with any signer.
//! - [`Authenticator`]: hands a transport fresh [`Credentials`] on every connect, so tokens renew
//!   on reconnect. Implemented by [`SasAuthenticator`] (any signer; lifetime and token form
//!   configurable), by [`SymmetricKey`] itself (the defaults) and by [`X509Identity`] (client
//!   certificate, chain and key loaded from PEM, for rustls).
//! - [`verify_sas`]: checks a token as the service does (for emulators and tests).
//!
//! Token text, signatures and keys never appear in `Debug` output, error messages or `tracing`
//! events: secret-bearing types print `<redacted>` and expose their content only through
//! explicitly named methods ([`SasToken::expose`], [`SymmetricKey::to_base64`]).
//!
//! The protocol-level formatting and parsing (no cryptography) lives in
//! [`dps_core::sas`], re-exported here.
//!
//! ## Example: a group-enrolled device's key and its DPS token
//!
//! ```
//! # #[cfg(feature = "sas")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use dps_auth::{generate_sas, GroupKey, SasResource, SasStyle};
//!
//! // The enrollment group's primary key, as the Azure portal shows it.
//! let group = GroupKey::from_base64(
//!     "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
//! )?;
//! let registration_id = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
//! let device_key = group.derive(registration_id)?;
//! assert_eq!(
//!     device_key.to_base64().as_str(),
//!     "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
//! );
//! assert_eq!(format!("{device_key:?}"), "SymmetricKey(<redacted>)");
//!
//! // A DPS token in the documented form, valid until the given Unix time.
//! let resource = SasResource::dps("0ne00000A0A", registration_id);
//! let token = generate_sas(&device_key, &resource, &SasStyle::documented_dps(), 1_700_003_600)?;
//! assert!(token.expose().starts_with(
//!     "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fsn-007-888-abc-mac-a1-b2-c3-d4-e5-f6&sig="
//! ));
//! assert!(token.expose().ends_with("&se=1700003600&skn=registration"));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sas"))]
//! # fn main() {}
//! ```
//!
//! ## Features
//!
//! - `sas` (default): [`SymmetricKey`], [`GroupKey`] and [`verify_sas`] (HMAC-SHA256).
//! - `x509` (default): [`X509Identity`].
//! - `pkcs11`: keys that never leave a PKCS#11 token ([`pkcs11`] module): SAS signing and group
//!   derivation inside the token, X.509 TLS client keys, key generation for certificate
//!   issuance; configured by RFC 7512 URIs.
//!
//! Without either, the crate still offers [`Signer`], [`generate_sas`] and [`SasAuthenticator`]
//! for keys held in hardware.
#![forbid(unsafe_code)]
// Public types stay open to additions (rustls's rule): a closed set says so with `#[expect]`.
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authenticator;
mod b64;
mod error;
mod signer;
mod token;

#[cfg(feature = "sas")]
mod group;
#[cfg(feature = "sas")]
mod symmetric;
#[cfg(feature = "sas")]
mod verify;
#[cfg(feature = "x509")]
mod x509;

#[cfg(feature = "pkcs11")]
pub mod pkcs11;

pub use authenticator::{Authenticator, Credentials, SasAuthenticator};
pub use error::{AuthError, BoxError, KeyError, SignError};
pub use signer::{SIGNATURE_LEN, Signer};
pub use token::generate_sas;

#[cfg(feature = "sas")]
pub use group::GroupKey;
#[cfg(feature = "sas")]
pub use symmetric::SymmetricKey;
#[cfg(feature = "sas")]
pub use verify::{SasVerifyError, VerifiedSas, verify_sas};
#[cfg(feature = "x509")]
pub use x509::{X509Error, X509Identity, X509KeyKind, X509KeySigner, X509SignatureScheme};

pub use dps_core::ids::IdError;
pub use dps_core::sas::{
    FieldOrder, ParsedSas, ResourceEncoding, SasParseError, SasResource, SasStyle, SasToken,
};
/// The wiping buffer returned by [`SymmetricKey::to_base64`].
pub use zeroize::Zeroizing;

#[cfg(feature = "x509")]
/// Certificate and key types accepted by rustls.
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
