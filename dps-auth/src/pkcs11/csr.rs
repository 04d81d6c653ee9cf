//! Certificate signing requests signed inside the token, for DPS certificate issuance.

use super::error::Pkcs11Error;
use super::private_key::Pkcs11PrivateKey;
use crate::x509::{X509KeyKind, X509KeySigner as _, X509SignatureScheme};

/// rcgen's view of a token key: the public half and a signer that asks the token.
struct TokenKey<'a> {
    key: &'a Pkcs11PrivateKey,
    public: Vec<u8>,
}

impl rcgen::PublicKeyData for TokenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.key.kind() {
            X509KeyKind::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            _ => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl rcgen::SigningKey for TokenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let scheme = match self.key.kind() {
            X509KeyKind::EcP256 => X509SignatureScheme::EcdsaP256Sha256,
            _ => X509SignatureScheme::RsaPkcs1Sha256,
        };
        self.key
            .sign(scheme, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

impl Pkcs11PrivateKey {
    /// A PKCS#10 certificate signing request (DER) for this key with subject `CN=common_name`,
    /// signed inside the token: pass it to the provisioning client's `csr`, then store the
    /// issued chain with [`store_chain`](super::store_chain) so the key and its certificate sit
    /// together in the token. DPS wants the registration id as the common name.
    ///
    /// # Errors
    /// [`Pkcs11Error`] when the public key cannot be read or the token cannot sign.
    pub fn certificate_signing_request(&self, common_name: &str) -> Result<Vec<u8>, Pkcs11Error> {
        let key = TokenKey {
            key: self,
            public: self.public_key_raw()?,
        };
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let csr = params
            .serialize_request(&key)
            .map_err(|e| Pkcs11Error::Device {
                operation: "C_Sign(certificate signing request)",
                reason: e.to_string(),
            })?;
        Ok(csr.der().to_vec())
    }
}
