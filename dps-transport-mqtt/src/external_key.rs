//! A rustls signing key whose signatures an [`X509KeySigner`] makes (a PKCS#11 token, a TPM):
//! rustls is handed a `CertifiedKey` through a client certificate resolver instead of key bytes.

use std::fmt;
use std::sync::Arc;

use dps_auth::{X509KeyKind, X509KeySigner, X509SignatureScheme};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// Offers the signer's key for every schemes it supports.
#[derive(Debug)]
struct ExternalKey(Arc<dyn X509KeySigner>);

/// Signs with one negotiated scheme.
struct ExternalSigner {
    key: Arc<dyn X509KeySigner>,
    scheme: SignatureScheme,
    ours: X509SignatureScheme,
}

impl fmt::Debug for ExternalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalSigner")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// The schemes a key kind can make, in preference order (PSS before PKCS#1: TLS 1.3 allows
/// only PSS for RSA, RFC 8446 §4.2.3).
fn schemes(kind: X509KeyKind) -> &'static [(SignatureScheme, X509SignatureScheme)] {
    match kind {
        X509KeyKind::EcP256 => &[(
            SignatureScheme::ECDSA_NISTP256_SHA256,
            X509SignatureScheme::EcdsaP256Sha256,
        )],
        _ => &[
            (
                SignatureScheme::RSA_PSS_SHA256,
                X509SignatureScheme::RsaPssSha256,
            ),
            (
                SignatureScheme::RSA_PSS_SHA384,
                X509SignatureScheme::RsaPssSha384,
            ),
            (
                SignatureScheme::RSA_PSS_SHA512,
                X509SignatureScheme::RsaPssSha512,
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA256,
                X509SignatureScheme::RsaPkcs1Sha256,
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA384,
                X509SignatureScheme::RsaPkcs1Sha384,
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA512,
                X509SignatureScheme::RsaPkcs1Sha512,
            ),
        ],
    }
}

impl SigningKey for ExternalKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        schemes(self.0.kind())
            .iter()
            .find(|(scheme, _)| offered.contains(scheme))
            .map(|&(scheme, ours)| {
                Box::new(ExternalSigner {
                    key: Arc::clone(&self.0),
                    scheme,
                    ours,
                }) as Box<dyn Signer>
            })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.0.kind() {
            X509KeyKind::EcP256 => SignatureAlgorithm::ECDSA,
            _ => SignatureAlgorithm::RSA,
        }
    }
}

impl Signer for ExternalSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key.sign(self.ours, message).map_err(|e| {
            tracing::warn!(error = %e, "the external key could not sign the handshake");
            rustls::Error::General(format!("the device key could not sign: {e}"))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Always presents the one certificate chain and its external key.
#[derive(Debug)]
pub(crate) struct ExternalKeyResolver(Arc<CertifiedKey>);

impl ExternalKeyResolver {
    pub(crate) fn new(chain: Vec<CertificateDer<'static>>, key: Arc<dyn X509KeySigner>) -> Self {
        Self(Arc::new(CertifiedKey::new(
            chain,
            Arc::new(ExternalKey(key)),
        )))
    }
}

impl ResolvesClientCert for ExternalKeyResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Presenting a certificate the key cannot sign for would fail the handshake later and
        // less clearly; present none and let the server say why.
        self.0
            .key
            .choose_scheme(sigschemes)
            .map(|_| Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}
