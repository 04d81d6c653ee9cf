//! Keys that never leave a PKCS#11 token (HSM, smart card, secure element, TPM through
//! `tpm2-pkcs11`), named by RFC 7512 URIs.
//!
//! - SAS: [`Pkcs11HmacKey`] signs with `CKM_SHA256_HMAC` inside the token; for an enrollment
//!   group, [`Pkcs11HmacKey::derive_device_key`] derives each device's key into a session object.
//! - X.509: [`Pkcs11PrivateKey`] (EC P-256, RSA) signs TLS handshakes inside the token;
//!   [`load_identity`] pairs it with its chain from PEM or from the token's certificates.
//! - Certificate issuance: [`Pkcs11PrivateKey::generate`] makes the key pair in the token,
//!   [`Pkcs11PrivateKey::certificate_signing_request`] has the token sign the CSR, and
//!   [`store_chain`] stores the issued chain next to the key.
//!
//! The module is the path given, else the URI's `module-path`, else [`MODULE_ENV`]; the PIN is
//! the URI's `pin-value`, else `pin-source`, else [`PIN_ENV`]. PINs are wiped after use and
//! never printed. Each token is logged in once per process and its sessions are pooled (see
//! [`Pkcs11Token`]), so thousands of devices can sign concurrently through one token.

mod csr;
mod error;
mod hmac_key;
mod private_key;
mod token;
mod uri;

pub use error::Pkcs11Error;
pub use hmac_key::Pkcs11HmacKey;
pub use private_key::{ChainSource, KeyAlgorithm, Pkcs11PrivateKey, load_identity, store_chain};
pub use token::Pkcs11Token;
pub use uri::{ObjectType, Pkcs11Uri};

/// Environment variable naming the PKCS#11 module when none is given explicitly.
pub const MODULE_ENV: &str = "DPS_PKCS11_MODULE";
/// Environment variable holding the user PIN when the URI has no `pin-value`/`pin-source`.
pub const PIN_ENV: &str = "DPS_PKCS11_PIN";
