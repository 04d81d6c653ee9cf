//! [`Pkcs11PrivateKey`]: an X.509 device's private key in a PKCS#11 token, signing TLS
//! handshakes inside it, and [`load_identity`] for the certificate chain next to it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use sha2::Digest as _;

use super::error::Pkcs11Error;
use super::hmac_key::is_protected;
use super::token::Pkcs11Token;
use super::uri::Pkcs11Uri;
use crate::error::SignError;
use crate::x509::{X509Error, X509Identity, X509KeyKind, X509KeySigner, X509SignatureScheme};

/// DER of the OID of NIST P-256 (RFC 5480 §2.1.1.1), the `CKA_EC_PARAMS` of a P-256 key.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The key algorithm of a key pair to generate in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256.
    EcP256,
    /// RSA with a modulus of this many bits (2048 or 3072 are usual).
    Rsa(u32),
}

/// A private key in a PKCS#11 token (EC P-256 or RSA ≥ 2048) that signs TLS handshakes with
/// `CKM_ECDSA` (over a SHA-256 digest made here: the digest is not secret) or
/// `CKM_SHA*_RSA_PKCS_PSS` / `CKM_SHA*_RSA_PKCS` inside the token. Pass it to
/// [`X509Identity::from_signer`] (or use [`load_identity`]) for TLS client authentication.
#[derive(Clone)]
pub struct Pkcs11PrivateKey {
    inner: Arc<Inner>,
}

struct Inner {
    token: Pkcs11Token,
    handle: ObjectHandle,
    label: String,
    kind: X509KeyKind,
}

impl fmt::Debug for Pkcs11PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11PrivateKey")
            .field("token", &self.inner.token.label())
            .field("object", &self.inner.label)
            .field("kind", &self.inner.kind)
            .finish_non_exhaustive()
    }
}

impl Pkcs11PrivateKey {
    /// Opens the private key `uri` names; `module` as in [`Pkcs11Token::open`].
    ///
    /// # Errors
    /// A [`Pkcs11Error`]; [`Pkcs11Error::UnsupportedKey`] for keys other than EC P-256 and RSA.
    pub fn open(module: Option<&Path>, uri: &Pkcs11Uri) -> Result<Self, Pkcs11Error> {
        let token = Pkcs11Token::open(module, uri)?;
        Self::in_token(&token, uri)
    }

    /// Opens the private key `uri` names in an already open `token`.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn in_token(token: &Pkcs11Token, uri: &Pkcs11Uri) -> Result<Self, Pkcs11Error> {
        let handle = token.find_object(uri, vec![Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
        let attrs = token.attributes(handle, &[AttributeType::KeyType, AttributeType::EcParams])?;
        let mut key_type = None;
        let mut params = None;
        for attr in attrs {
            match attr {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                _ => {}
            }
        }
        let kind = match key_type {
            Some(KeyType::EC) if params.as_deref() == Some(P256_PARAMS) => {
                token.require(MechanismType::ECDSA, "CKM_ECDSA")?;
                X509KeyKind::EcP256
            }
            Some(KeyType::EC) => {
                return Err(Pkcs11Error::UnsupportedKey {
                    reason: "EC keys must be on P-256",
                });
            }
            Some(KeyType::RSA) => {
                token.require(
                    MechanismType::SHA256_RSA_PKCS_PSS,
                    "CKM_SHA256_RSA_PKCS_PSS",
                )?;
                X509KeyKind::Rsa
            }
            _ => {
                return Err(Pkcs11Error::UnsupportedKey {
                    reason: "only EC P-256 and RSA keys sign TLS handshakes",
                });
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                token: token.clone(),
                handle,
                label: uri.object.clone().unwrap_or_default(),
                kind,
            }),
        })
    }

    /// Generates a key pair in `token`, labelled `label` with id `id`: the private key is
    /// persistent, sensitive and not extractable, so it never exists outside the token.
    /// Returns the key and its public key as a DER `SubjectPublicKeyInfo` for a CSR.
    ///
    /// # Errors
    /// [`Pkcs11Error::UnsupportedMechanism`] or [`Pkcs11Error::Device`].
    pub fn generate(
        token: &Pkcs11Token,
        label: &str,
        id: &[u8],
        algorithm: KeyAlgorithm,
    ) -> Result<Self, Pkcs11Error> {
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
                Attribute::Private(private),
            ]
        };
        let mut public = common(false);
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ]);
        public.push(Attribute::Verify(true));
        let mechanism = match algorithm {
            KeyAlgorithm::EcP256 => {
                public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Rsa(bits) => {
                public.push(Attribute::ModulusBits(u64::from(bits).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        token.with_session(|s| {
            s.generate_key_pair(&mechanism, &public, &private)
                .map_err(|e| Pkcs11Error::device("C_GenerateKeyPair", &e))
        })?;
        let uri_label = label.to_owned();
        let mut uri = Pkcs11Uri::parse("pkcs11:token=_")?;
        uri.object = Some(uri_label);
        uri.id = Some(id.to_vec());
        Self::in_token(token, &uri)
    }

    /// The public half, from the token's public-key object with the same label: for EC the
    /// uncompressed point (`04 || x || y`), for RSA the DER `RSAPublicKey` (RFC 8017 §A.1.1),
    /// the forms a CSR or certificate builder (e.g. rcgen's `PublicKeyData`) takes.
    ///
    /// # Errors
    /// [`Pkcs11Error::ObjectNotFound`] without a public-key object, or [`Pkcs11Error::Device`].
    pub fn public_key_raw(&self) -> Result<Vec<u8>, Pkcs11Error> {
        let token = &self.inner.token;
        let mut uri = Pkcs11Uri::parse("pkcs11:token=_")?;
        uri.object = Some(self.inner.label.clone());
        let handle = token.find_object(&uri, vec![Attribute::Class(ObjectClass::PUBLIC_KEY)])?;
        match self.inner.kind {
            X509KeyKind::EcP256 => {
                let attrs = token.attributes(handle, &[AttributeType::EcPoint])?;
                let point = attrs.into_iter().find_map(|a| match a {
                    Attribute::EcPoint(p) => Some(p),
                    _ => None,
                });
                // CKA_EC_POINT is the DER OCTET STRING of the point (PKCS#11 v2.40 §2.3.3).
                match point.as_deref() {
                    Some([0x04, 0x41, rest @ ..]) if rest.len() == 65 => Ok(rest.to_vec()),
                    Some(raw) if raw.len() == 65 && raw[0] == 0x04 => Ok(raw.to_vec()),
                    _ => Err(Pkcs11Error::UnsupportedKey {
                        reason: "the EC public key is not an uncompressed P-256 point",
                    }),
                }
            }
            _ => {
                let attrs = token.attributes(
                    handle,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )?;
                let (mut n, mut e) = (Vec::new(), Vec::new());
                for attr in attrs {
                    match attr {
                        Attribute::Modulus(v) => n = v,
                        Attribute::PublicExponent(v) => e = v,
                        _ => {}
                    }
                }
                let mut body = der_integer(&n);
                body.extend(der_integer(&e));
                Ok(der_tlv(0x30, &body))
            }
        }
    }

    /// Whether the token reports this key as sensitive and not extractable.
    ///
    /// # Errors
    /// [`Pkcs11Error::Device`] when the attributes cannot be read.
    pub fn is_protected(&self) -> Result<bool, Pkcs11Error> {
        is_protected(&self.inner.token, self.inner.handle)
    }

    /// Reads the key's value (`CKA_VALUE`, or `CKA_PRIVATE_EXPONENT` for RSA): for tests that a
    /// token really refuses it. Always an error on a protected key.
    ///
    /// # Errors
    /// [`Pkcs11Error::Device`] (`CKR_ATTRIBUTE_SENSITIVE`) on a protected key.
    pub fn try_read_secret(&self) -> Result<(), Pkcs11Error> {
        let wanted = match self.inner.kind {
            X509KeyKind::Rsa => AttributeType::PrivateExponent,
            _ => AttributeType::Value,
        };
        let attrs = self.inner.token.attributes(self.inner.handle, &[wanted])?;
        if attrs.is_empty() {
            Err(Pkcs11Error::Device {
                operation: "C_GetAttributeValue",
                reason: "the token withholds the key value".into(),
            })
        } else {
            Ok(())
        }
    }

    fn sign_with(
        &self,
        scheme: X509SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        let pss = |hash: MechanismType, mgf: PkcsMgfType, len: u64| PkcsPssParams {
            hash_alg: hash,
            mgf,
            s_len: len.into(),
        };
        let handle = self.inner.handle;
        let token = &self.inner.token;
        let run = |mechanism: &Mechanism<'_>, data: &[u8]| {
            token.with_session(|s| {
                s.sign(mechanism, handle, data)
                    .map_err(|e| Pkcs11Error::device("C_Sign", &e))
            })
        };
        match (self.inner.kind, scheme) {
            (X509KeyKind::EcP256, X509SignatureScheme::EcdsaP256Sha256) => {
                let digest = sha2::Sha256::digest(message);
                let raw = run(&Mechanism::Ecdsa, &digest)?;
                ecdsa_der(&raw)
            }
            (X509KeyKind::Rsa, X509SignatureScheme::RsaPssSha256) => run(
                &Mechanism::Sha256RsaPkcsPss(pss(
                    MechanismType::SHA256,
                    PkcsMgfType::MGF1_SHA256,
                    32,
                )),
                message,
            ),
            (X509KeyKind::Rsa, X509SignatureScheme::RsaPssSha384) => run(
                &Mechanism::Sha384RsaPkcsPss(pss(
                    MechanismType::SHA384,
                    PkcsMgfType::MGF1_SHA384,
                    48,
                )),
                message,
            ),
            (X509KeyKind::Rsa, X509SignatureScheme::RsaPssSha512) => run(
                &Mechanism::Sha512RsaPkcsPss(pss(
                    MechanismType::SHA512,
                    PkcsMgfType::MGF1_SHA512,
                    64,
                )),
                message,
            ),
            (X509KeyKind::Rsa, X509SignatureScheme::RsaPkcs1Sha256) => {
                run(&Mechanism::Sha256RsaPkcs, message)
            }
            (X509KeyKind::Rsa, X509SignatureScheme::RsaPkcs1Sha384) => {
                run(&Mechanism::Sha384RsaPkcs, message)
            }
            (X509KeyKind::Rsa, X509SignatureScheme::RsaPkcs1Sha512) => {
                run(&Mechanism::Sha512RsaPkcs, message)
            }
            _ => Err(Pkcs11Error::UnsupportedMechanism {
                mechanism: "this signature scheme for this key",
            }),
        }
    }
}

impl X509KeySigner for Pkcs11PrivateKey {
    fn kind(&self) -> X509KeyKind {
        self.inner.kind
    }

    fn sign(&self, scheme: X509SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_with(scheme, message).map_err(SignError::failed)
    }
}

/// PKCS#11 `CKM_ECDSA` returns `r || s` (PKCS#11 v2.40 mechanisms §2.3.1); TLS wants the DER
/// `Ecdsa-Sig-Value` SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
fn ecdsa_der(raw: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
    if raw.is_empty() || raw.len() % 2 != 0 || raw.len() > 132 {
        return Err(Pkcs11Error::Device {
            operation: "C_Sign(CKM_ECDSA)",
            reason: format!("unexpected {}-byte signature", raw.len()),
        });
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    Ok(der_tlv(0x30, &body))
}

/// DER tag-length-value with a definite length.
fn der_tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap_or(0));
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A DER INTEGER of the unsigned big-endian `value`.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let trimmed = match value.iter().position(|&b| b != 0) {
        Some(i) => &value[i..],
        None => &[0][..],
    };
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    der_tlv(0x02, &body)
}

/// Where an identity's certificate chain comes from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ChainSource<'a> {
    /// A PEM file (leaf first).
    PemFile(&'a Path),
    /// The token's certificate object with the key's label (the leaf), followed by the
    /// certificates labelled `<label>/chain/1`, `<label>/chain/2`… (as
    /// [`store_chain`] writes them).
    Token,
}

/// An [`X509Identity`] whose private key is the one `uri` names (it never leaves the token),
/// with the chain from `chain`. The registration id is the leaf's common name, as for PEM
/// identities.
///
/// # Errors
/// [`Pkcs11Error`] for the token and key, or [`X509Error`] for the chain, boxed.
pub fn load_identity(
    module: Option<&Path>,
    uri: &Pkcs11Uri,
    chain: ChainSource<'_>,
) -> Result<X509Identity, crate::BoxError> {
    let key = Pkcs11PrivateKey::open(module, uri)?;
    let certs = match chain {
        ChainSource::PemFile(path) => {
            let pem = std::fs::read(path).map_err(|e| X509Error::Io {
                path: path.to_owned(),
                kind: e.kind(),
            })?;
            CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| X509Error::InvalidCertificatePem)?
        }
        ChainSource::Token => read_chain(&key.inner.token, &key.inner.label)?,
    };
    Ok(X509Identity::from_signer(certs, Arc::new(key))?)
}

fn cert_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

fn read_chain(
    token: &Pkcs11Token,
    label: &str,
) -> Result<Vec<CertificateDer<'static>>, Pkcs11Error> {
    let mut chain = Vec::new();
    for index in 0.. {
        let name = if index == 0 {
            label.to_owned()
        } else {
            format!("{label}/chain/{index}")
        };
        let found = token.with_session(|s| {
            s.find_objects(&cert_template(&name))
                .map_err(|e| Pkcs11Error::device("C_FindObjects", &e))
        })?;
        let Some(&handle) = found.first() else {
            break;
        };
        for attr in token.attributes(handle, &[AttributeType::Value])? {
            if let Attribute::Value(der) = attr {
                chain.push(CertificateDer::from(der));
            }
        }
    }
    if chain.is_empty() {
        return Err(Pkcs11Error::ObjectNotFound {
            what: format!("certificate object={label:?}"),
        });
    }
    Ok(chain)
}

/// Stores `chain` (leaf first) in the token as certificate objects next to the key labelled
/// `label`: the leaf with the key's label and `id`, the others as `<label>/chain/N`, so
/// [`ChainSource::Token`] finds them.
///
/// # Errors
/// [`Pkcs11Error::Device`] when the token refuses the objects.
pub fn store_chain(
    token: &Pkcs11Token,
    label: &str,
    id: &[u8],
    chain: &[CertificateDer<'_>],
) -> Result<(), Pkcs11Error> {
    for (index, cert) in chain.iter().enumerate() {
        let name = if index == 0 {
            label.to_owned()
        } else {
            format!("{label}/chain/{index}")
        };
        let (subject, issuer) = x509_parser::parse_x509_certificate(cert)
            .map(|(_, c)| (c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec()))
            .map_err(|_| Pkcs11Error::Device {
                operation: "C_CreateObject(certificate)",
                reason: format!("certificate {index} is not valid X.509"),
            })?;
        let mut template = cert_template(&name);
        template.extend([
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Subject(subject),
            Attribute::Issuer(issuer),
            Attribute::Value(cert.to_vec()),
        ]);
        if index == 0 {
            template.push(Attribute::Id(id.to_vec()));
        }
        token.with_session(|s| {
            s.create_object(&template)
                .map_err(|e| Pkcs11Error::device("C_CreateObject(certificate)", &e))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        // r with its high bit set gains a 0x00; s with leading zeros loses them.
        let mut raw = vec![0x80; 32];
        raw.extend([0x00, 0x00, 0x01]);
        raw.extend([0x7f; 29]);
        let der = ecdsa_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 35 + 32, 0x02, 33, 0x00]);
        assert_eq!(&der[37..40], &[0x02, 30, 0x01]);
        assert!(ecdsa_der(&[1, 2, 3]).is_err());
        assert!(ecdsa_der(&[]).is_err());
    }

    #[test]
    fn long_der_lengths() {
        let body = vec![0u8; 300];
        assert_eq!(&der_tlv(0x30, &body)[..4], &[0x30, 0x82, 0x01, 0x2c]);
        assert_eq!(der_integer(&[0, 0, 5]), vec![0x02, 1, 5]);
        assert_eq!(der_integer(&[0, 0]), vec![0x02, 1, 0]);
    }
}
