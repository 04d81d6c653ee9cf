//! Test certificates made with rcgen: certificate authorities (root and intermediate), device
//! and server leaves, self-signed devices and certificate signing requests.
//!
//! One naming for every test: a [`Ca`] issues [`Leaf`]s; a leaf carries its chain (leaf first)
//! and its key, as DER and PEM, and turns into a [`dps_auth::X509Identity`].

use dps_auth::X509Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::Digest as _;

/// A validity window: (not before, not after).
pub type Validity = (time::OffsetDateTime, time::OffsetDateTime);

/// A test certificate authority (root or intermediate), never the emulator's own.
pub struct Ca {
    /// The CA certificate, DER.
    pub der: CertificateDer<'static>,
    /// The CA certificate, PEM.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn device_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn generate_key() -> KeyPair {
    KeyPair::generate().expect("a fresh key pair")
}

impl Ca {
    /// A self-signed root with CN `cn`.
    pub fn root(cn: &str) -> Self {
        let key = generate_key();
        let params = ca_params(cn);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA with CN `cn`, signed by this one.
    pub fn intermediate(&self, cn: &str) -> Self {
        let key = generate_key();
        let params = ca_params(cn);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("an intermediate CA");
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A device certificate with CN `cn` (EKU clientAuth); its chain is the leaf alone.
    pub fn leaf(&self, cn: &str) -> Leaf {
        self.leaf_with(cn, |_| {})
    }

    /// A device certificate with CN `cn` whose parameters `adjust` edits before signing.
    pub fn leaf_with(&self, cn: &str, adjust: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = device_params(cn);
        adjust(&mut params);
        self.issue(params)
    }

    /// A server certificate for the DNS `names` (EKU serverAuth), valid over `validity` when
    /// given (rcgen's default window otherwise).
    pub fn server(&self, names: &[&str], validity: Option<Validity>) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("valid server names");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Leaf {
        let key = generate_key();
        let cert = params.signed_by(&key, &self.issuer).expect("a signed leaf");
        Leaf::new(cert.der().clone(), cert.pem(), &key)
    }
}

/// An end-entity certificate chain (leaf first) and the leaf's private key.
pub struct Leaf {
    /// The chain presented in the TLS handshake, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate, PEM.
    pub pem: String,
    /// The leaf's private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of test output too.
        f.debug_struct("Leaf")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for Leaf {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            pem: self.pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

impl Leaf {
    fn new(der: CertificateDer<'static>, pem: String, key: &KeyPair) -> Self {
        Self {
            chain: vec![der],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            pem,
            key_pem: key.serialize_pem(),
        }
    }

    /// The leaf certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.chain[0].clone()
    }

    /// A copy of the private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The same leaf presented with `more` certificates after it.
    #[must_use]
    pub fn presenting(mut self, more: &[&CertificateDer<'static>]) -> Self {
        self.chain.extend(more.iter().map(|c| (*c).clone()));
        self
    }

    /// The leaf followed by the issuers in `chain_pem`, as a device identity.
    pub fn identity(&self, chain_pem: &[&str]) -> X509Identity {
        let mut pem = self.pem.clone();
        for issuer in chain_pem {
            pem.push_str(issuer);
        }
        X509Identity::from_pem(pem.as_bytes(), self.key_pem.as_bytes()).expect("a valid identity")
    }

    /// The leaf's SHA-256 thumbprint, upper-case hex (the IoT Hub's form).
    pub fn thumbprint(&self) -> String {
        hex(&sha2::Sha256::digest(&self.chain[0]))
    }
}

/// A self-signed device certificate with CN `cn` (EKU clientAuth), as individual X.509
/// enrollments and self-signed hub devices use.
pub fn self_signed(cn: &str) -> Leaf {
    let key = generate_key();
    let cert = device_params(cn)
        .self_signed(&key)
        .expect("a self-signed leaf");
    Leaf::new(cert.der().clone(), cert.pem(), &key)
}

/// A certificate signing request with CN `cn`: its DER and the key pair it was made with.
pub fn csr(cn: &str) -> (Vec<u8>, KeyPair) {
    let key = generate_key();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let request = params.serialize_request(&key).expect("a CSR");
    (request.der().to_vec(), key)
}

/// Upper-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
