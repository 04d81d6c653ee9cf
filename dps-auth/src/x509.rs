//! [`X509Identity`]: a device certificate, its chain and its private key.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dps_core::ids::{IdError, MAX_X509_REGISTRATION_ID_LEN, validate_registration_id};
use dps_core::sas::SasResource;
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::authenticator::{Authenticator, Credentials};
use crate::error::{AuthError, SignError};

/// Why an X.509 identity could not be loaded or used. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// The certificate PEM holds no `CERTIFICATE` section. Pass the device certificate (leaf
    /// first, then its intermediates).
    #[error("no certificate found in the certificate PEM")]
    NoCertificate,
    /// The certificate PEM is malformed (bad base64, missing `END` line).
    #[error("certificate PEM is malformed")]
    InvalidCertificatePem,
    /// A `CERTIFICATE` section does not hold a valid X.509 certificate.
    #[error("certificate {index} of the chain is not a valid X.509 certificate")]
    InvalidCertificate {
        /// Position in the chain, the leaf being 0.
        index: usize,
    },
    /// The key PEM holds no `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or
    /// `RSA PRIVATE KEY` (PKCS#1) section. Pass the private key file, unencrypted.
    #[error("no private key found in the key PEM")]
    NoPrivateKey,
    /// The key PEM is malformed.
    #[error("private key PEM is unreadable")]
    KeyUnreadable,
    /// The leaf certificate's subject has no common name (or it is not text); DPS needs it as
    /// the registration id. Issue the device certificate with `CN=<registration id>`.
    #[error("leaf certificate's subject has no common name")]
    NoCommonName,
    /// The leaf certificate's common name is longer than the 64 characters X.509 allows.
    #[error("leaf certificate's common name is {len} characters long; at most 64 are allowed")]
    CommonNameTooLong {
        /// Its length in characters.
        len: usize,
    },
    /// The leaf certificate's common name is not a valid DPS registration id.
    #[error("leaf certificate's common name is not a valid registration id")]
    InvalidCommonName(#[source] IdError),
    /// The registration id in use differs from the certificate's common name; DPS would refuse
    /// the registration. Use the common name as the registration id.
    #[error("registration id {expected:?} differs from the certificate's common name {actual:?}")]
    RegistrationIdMismatch {
        /// The registration id the caller uses.
        expected: String,
        /// The leaf certificate's common name.
        actual: String,
    },
    /// A PEM file could not be read.
    #[error("cannot read {}: {kind}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        kind: io::ErrorKind,
    },
}

/// The kind of key an [`X509KeySigner`] holds, which decides the TLS signature schemes it
/// can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum X509KeyKind {
    /// An ECDSA key on NIST P-256 (secp256r1).
    EcP256,
    /// An RSA key (2048 bits or more).
    Rsa,
}

/// A TLS signature scheme an [`X509KeySigner`] is asked to sign with (RFC 8446 §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum X509SignatureScheme {
    /// ECDSA on P-256 over SHA-256; the signature is DER (`Ecdsa-Sig-Value`, RFC 3279 §2.2.3).
    EcdsaP256Sha256,
    /// RSASSA-PSS, MGF1 and SHA-256, salt as long as the hash.
    RsaPssSha256,
    /// RSASSA-PSS, MGF1 and SHA-384, salt as long as the hash.
    RsaPssSha384,
    /// RSASSA-PSS, MGF1 and SHA-512, salt as long as the hash.
    RsaPssSha512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (TLS 1.2 only).
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (TLS 1.2 only).
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (TLS 1.2 only).
    RsaPkcs1Sha512,
}

/// A private key that signs TLS handshakes without revealing itself: the X.509 counterpart of
/// [`Signer`](crate::Signer), implemented by [`Pkcs11PrivateKey`](crate::pkcs11::Pkcs11PrivateKey)
/// behind the `pkcs11` feature. The transport turns it into a rustls signing key.
///
/// Implementations must be safe to call from many connections at once and must not reveal the
/// key through `Debug`.
pub trait X509KeySigner: Send + Sync + fmt::Debug {
    /// The kind of key.
    fn kind(&self) -> X509KeyKind;

    /// Signs `message` (the whole message: hashing is part of the scheme).
    ///
    /// # Errors
    /// [`SignError`] when the key holder fails.
    fn sign(&self, scheme: X509SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// A device's X.509 credentials: the leaf certificate, the intermediates up to (not necessarily
/// including) the root, and the private key.
///
/// DPS group enrollments need the intermediates: the device must present the chain from its leaf
/// to a certificate DPS verified, so load the whole chain, leaf first. Cloning is cheap (shared).
/// The key is wiped from memory when the last clone is dropped; [`Debug`](fmt::Debug) shows the
/// common name and the chain length only.
///
/// For a TLS client configuration, pass [`certificate_chain`](Self::certificate_chain) and
/// [`private_key`](Self::private_key) to rustls' `with_client_auth_cert`.
#[derive(Clone)]
pub struct X509Identity {
    inner: Arc<Inner>,
}

struct Inner {
    /// Leaf first; never empty.
    chain: Vec<CertificateDer<'static>>,
    key: KeySource,
    common_name: Option<String>,
}

/// Where the private key is: in memory (PEM) or behind a signer that never reveals it.
enum KeySource {
    Der(Zeroizing<PrivateKeyDer<'static>>),
    External(Arc<dyn X509KeySigner>),
}

impl X509Identity {
    /// Loads an identity from PEM text: `cert_chain_pem` holds the leaf certificate then its
    /// intermediates, in order; `key_pem` the leaf's private key in PKCS#8, SEC1 or PKCS#1 form.
    /// Sections of other kinds are skipped, so one combined file may serve as both.
    ///
    /// # Errors
    /// An [`X509Error`] saying which part is missing or unreadable.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, X509Error> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| X509Error::InvalidCertificatePem)?;
        if chain.is_empty() {
            return Err(X509Error::NoCertificate);
        }
        let key = Zeroizing::new(PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            pem::Error::NoItemsFound => X509Error::NoPrivateKey,
            _ => X509Error::KeyUnreadable,
        })?);
        let common_name = inspect_chain(&chain)?;
        tracing::debug!(
            common_name = common_name.as_deref(),
            chain_len = chain.len(),
            "loaded X.509 identity"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                chain,
                key: KeySource::Der(key),
                common_name,
            }),
        })
    }

    /// An identity whose private key stays behind `signer` (a PKCS#11 token, a TPM, a secure
    /// element): `chain` is the leaf certificate then its intermediates, DER. The TLS handshake
    /// asks the signer for its signature; the key bytes are never needed.
    ///
    /// # Errors
    /// [`X509Error::NoCertificate`] for an empty chain, [`X509Error::InvalidCertificate`] for
    /// an unparsable certificate.
    pub fn from_signer(
        chain: Vec<CertificateDer<'static>>,
        signer: Arc<dyn X509KeySigner>,
    ) -> Result<Self, X509Error> {
        if chain.is_empty() {
            return Err(X509Error::NoCertificate);
        }
        let common_name = inspect_chain(&chain)?;
        tracing::debug!(
            common_name = common_name.as_deref(),
            chain_len = chain.len(),
            ?signer,
            "loaded X.509 identity with an external key"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                chain,
                key: KeySource::External(signer),
                common_name,
            }),
        })
    }

    /// Like [`from_signer`](Self::from_signer), the chain given as PEM text (leaf first).
    ///
    /// # Errors
    /// [`X509Error::InvalidCertificatePem`], or as [`from_signer`](Self::from_signer).
    pub fn from_pem_chain_and_signer(
        cert_chain_pem: &[u8],
        signer: Arc<dyn X509KeySigner>,
    ) -> Result<Self, X509Error> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| X509Error::InvalidCertificatePem)?;
        Self::from_signer(chain, signer)
    }

    /// Loads an identity from PEM files; see [`from_pem`](Self::from_pem).
    ///
    /// # Errors
    /// [`X509Error::Io`] when a file cannot be read, otherwise as [`from_pem`](Self::from_pem).
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, X509Error> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| X509Error::Io {
                path: path.to_owned(),
                kind: e.kind(),
            })
        };
        let chain = read(cert_chain_path.as_ref())?;
        let key = Zeroizing::new(read(key_path.as_ref())?);
        Self::from_pem(&chain, &key)
    }

    /// The leaf certificate's subject common name, as written (unchecked).
    #[must_use]
    pub fn common_name(&self) -> Option<&str> {
        self.inner.common_name.as_deref()
    }

    /// The registration id this identity registers as: the leaf certificate's common name.
    ///
    /// # Errors
    /// [`X509Error::NoCommonName`], [`X509Error::CommonNameTooLong`] or
    /// [`X509Error::InvalidCommonName`].
    pub fn registration_id(&self) -> Result<&str, X509Error> {
        let cn = self.common_name().ok_or(X509Error::NoCommonName)?;
        let len = cn.chars().count();
        if len > MAX_X509_REGISTRATION_ID_LEN {
            return Err(X509Error::CommonNameTooLong { len });
        }
        validate_registration_id(cn).map_err(X509Error::InvalidCommonName)?;
        Ok(cn)
    }

    /// Checks that `registration_id` is this identity's registration id (DPS compares them
    /// ignoring ASCII case), so a mismatch fails here rather than at the service.
    ///
    /// # Errors
    /// [`X509Error::RegistrationIdMismatch`], or an error of
    /// [`registration_id`](Self::registration_id).
    pub fn with_registration_id_check(self, registration_id: &str) -> Result<Self, X509Error> {
        self.check_registration_id(registration_id)?;
        Ok(self)
    }

    fn check_registration_id(&self, registration_id: &str) -> Result<(), X509Error> {
        let actual = self.registration_id()?;
        if actual.eq_ignore_ascii_case(registration_id) {
            Ok(())
        } else {
            Err(X509Error::RegistrationIdMismatch {
                expected: registration_id.to_owned(),
                actual: actual.to_owned(),
            })
        }
    }

    /// The leaf certificate.
    #[must_use]
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.inner.chain[0]
    }

    /// The intermediates, in order (empty when only the leaf was given).
    #[must_use]
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.inner.chain[1..]
    }

    /// Number of certificates, the leaf included.
    #[must_use]
    pub fn chain_len(&self) -> usize {
        self.inner.chain.len()
    }

    /// The leaf then the intermediates, ready for rustls' `with_client_auth_cert`.
    #[must_use]
    pub fn certificate_chain(&self) -> Vec<CertificateDer<'static>> {
        self.inner.chain.clone()
    }

    /// A copy of the private key, ready for rustls' `with_client_auth_cert`; `None` when the
    /// key is held by an [external signer](Self::key_signer).
    #[must_use]
    pub fn private_key(&self) -> Option<PrivateKeyDer<'static>> {
        match &self.inner.key {
            KeySource::Der(key) => Some(key.clone_key()),
            KeySource::External(_) => None,
        }
    }

    /// The signer holding the private key, when it is not in memory
    /// ([`from_signer`](Self::from_signer)).
    #[must_use]
    pub fn key_signer(&self) -> Option<&Arc<dyn X509KeySigner>> {
        match &self.inner.key {
            KeySource::Der(_) => None,
            KeySource::External(signer) => Some(signer),
        }
    }
}

/// Parses every certificate, returns the leaf's common name, and warns when the chain is not in
/// issuing order (leaf, its issuer, that issuer's issuer…), which DPS would refuse.
fn inspect_chain(chain: &[CertificateDer<'static>]) -> Result<Option<String>, X509Error> {
    let parsed = chain
        .iter()
        .enumerate()
        .map(|(index, der)| {
            x509_parser::parse_x509_certificate(der)
                .map(|(_, cert)| cert)
                .map_err(|_| X509Error::InvalidCertificate { index })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (index, pair) in parsed.windows(2).enumerate() {
        if pair[0].issuer().as_raw() != pair[1].subject().as_raw() {
            tracing::warn!(
                index,
                "certificate {index} of the chain was not issued by certificate {}; \
                 pass the chain leaf first, each certificate followed by its issuer",
                index + 1
            );
        }
    }
    let common_name = parsed[0]
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(common_name)
}

impl fmt::Debug for X509Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Identity")
            .field("common_name", &self.inner.common_name)
            .field("chain_len", &self.inner.chain.len())
            .finish_non_exhaustive()
    }
}

/// Presents the certificate on every connect. For a DPS resource, the registration id must be
/// the certificate's common name ([`X509Error::RegistrationIdMismatch`] otherwise).
impl Authenticator for X509Identity {
    fn credentials(
        &self,
        resource: &SasResource,
        _unix_now: u64,
    ) -> Result<Credentials, AuthError> {
        if let SasResource::Dps {
            registration_id, ..
        } = resource
        {
            self.check_registration_id(registration_id)?;
        }
        Ok(Credentials::X509(self.clone()))
    }
}
