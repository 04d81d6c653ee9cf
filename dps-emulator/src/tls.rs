//! The emulator's TLS material and rustls server configuration.
//!
//! On first start [`TlsMaterial::load_or_create`] creates a private CA (ECDSA P-256) and a server
//! certificate signed by it, and stores both in the data directory (`ca.pem`, `ca.key`,
//! `server.pem`, `server.key`; keys are owner-only). Later starts reuse them, so devices and SDKs
//! keep trusting the same `ca.pem`. The server certificate is re-issued when the host-name set
//! changes, when it no longer chains to the CA, or when it is about to expire.
//!
//! The host-name set is the DPS host name, `localhost`, `127.0.0.1` and every linked hub, as the
//! real layout has them (DPS at `global.azure-devices-provisioning.net`, each hub at its own
//! `{name}.azure-devices.net`): a device assigned to any linked hub verifies the hub's name
//! against this one certificate. A hub linked later changes the set, so the next start re-issues
//! the certificate (#15).
//!
//! The server configuration follows `tls-policy.md`: TLS 1.2 and 1.3 only, the TLS 1.3 suites and
//! the four ECDHE GCM suites on TLS 1.2, the *ring* provider, no ALPN, and client certificates
//! requested but optional. A presented client chain is accepted as is (the application decides
//! later whether it chains to an enrolled certificate), but the handshake signature is really
//! verified, so a peer cannot present a certificate whose private key it does not hold.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsDistinguishedName, ServerConfig};
use rustls::{SignatureScheme, SupportedCipherSuite};
use time::{Duration, OffsetDateTime};

use crate::persist::{write_atomic, write_atomic_private};

/// Common name of the emulator's root CA.
pub(crate) const CA_COMMON_NAME: &str = "DPS Emulator Root CA";
/// File name of the CA certificate (PEM) in the data directory: what clients must trust.
pub(crate) const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (PEM, PKCS#8, mode 0600).
pub(crate) const CA_KEY_FILE: &str = "ca.key";
/// File name of the server certificate (PEM).
pub(crate) const SERVER_CERT_FILE: &str = "server.pem";
/// File name of the server private key (PEM, PKCS#8, mode 0600).
pub(crate) const SERVER_KEY_FILE: &str = "server.key";

/// CA validity: long enough that an emulator data directory never outlives its CA.
const CA_VALIDITY_DAYS: i64 = 30 * 365;
/// Server certificate validity: 825 days is the longest some TLS clients accept for a server
/// certificate; it is re-issued automatically when fewer than [`SERVER_RENEW_DAYS`] remain.
const SERVER_VALIDITY_DAYS: i64 = 825;
const SERVER_RENEW_DAYS: i64 = 30;
/// Certificates are back-dated so that a client whose clock is slightly behind still accepts them.
const BACKDATE: Duration = Duration::hours(1);

/// A failure to create, load or use the TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file in the data directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A stored certificate or key could not be parsed, or certificate generation failed.
    #[error("certificate error: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The data directory holds an unusable combination of files (e.g. `ca.pem` without `ca.key`).
    #[error("inconsistent TLS material: {0}")]
    Inconsistent(String),
    /// The certificate signing request is not valid PKCS#10, has a bad signature, or asks for an
    /// extension that is not supported.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(rcgen::Error),
    /// A validity period of zero days was requested.
    #[error("a certificate validity of zero days was requested")]
    ZeroValidity,
    /// rustls rejected the configuration.
    #[error("TLS configuration error: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The emulator's CA, its server certificate, and the rustls server configuration built on them.
pub struct TlsMaterial {
    dir: PathBuf,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca: Issuer<'static, KeyPair>,
    server_der: CertificateDer<'static>,
    server_names: Vec<String>,
    server_config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are deliberately left out.
        f.debug_struct("TlsMaterial")
            .field("dir", &self.dir)
            .field("server_names", &self.server_names)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Loads the CA and server certificate from `data_dir`, creating whatever is missing.
    ///
    /// The server certificate covers `hostname`, `localhost` and `127.0.0.1` (subject alternative
    /// names, EKU serverAuth). `hostname` may be a DNS name or an IP address.
    pub fn load_or_create(data_dir: &Path, hostname: &str) -> Result<Self, TlsError> {
        Self::load_or_create_covering(data_dir, hostname, &[])
    }

    /// [`TlsMaterial::load_or_create`] with a server certificate that also covers `hubs`, the
    /// linked hubs' host names.
    pub fn load_or_create_covering(
        data_dir: &Path,
        hostname: &str,
        hubs: &[String],
    ) -> Result<Self, TlsError> {
        std::fs::create_dir_all(data_dir).map_err(|source| TlsError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let (ca_pem, ca_key_pem) = load_or_create_ca(data_dir)?;
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let ca = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let ca_der = pem_to_der(&ca_pem, CA_CERT_FILE)?;

        let server_names = server_names(hostname, hubs);
        let (server_pem, server_key_pem) =
            load_or_create_server(data_dir, &server_names, &ca, &ca_der)?;
        let server_der = pem_to_der(&server_pem, SERVER_CERT_FILE)?;
        let server_key = KeyPair::from_pem(&server_key_pem)?;
        let server_config = build_server_config(
            vec![server_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;

        Ok(Self {
            dir: data_dir.to_path_buf(),
            ca_pem,
            ca_der,
            ca,
            server_der,
            server_names,
            server_config,
        })
    }

    /// The CA certificate in PEM: what clients pass as their trusted root
    /// (e.g. `server_verification_cert` of the Python SDK).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate in DER.
    pub fn ca_certificate(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Path of `ca.pem` in the data directory.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// The CA as an rcgen issuer, to sign further certificates with
    /// (`CertificateParams::signed_by(&public_key, tls.issuer())`).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.ca
    }

    /// The server certificate in DER.
    pub fn server_certificate(&self) -> &CertificateDer<'static> {
        &self.server_der
    }

    /// The names the server certificate covers (host name first; deduplicated).
    pub fn server_names(&self) -> &[String] {
        &self.server_names
    }

    /// Signs a PKCS#10 certificate signing request (DER) with the CA and returns the leaf
    /// certificate (DER), valid from now (back-dated one hour for clock skew) for
    /// `validity_days`.
    ///
    /// The request's signature is verified. The subject and subject alternative names are taken
    /// from the request; the rest is decided here, as a CA does: not a CA, key usage
    /// digitalSignature, extended key usage clientAuth, a random serial number, and an authority
    /// key identifier linking it to the CA. Checking the subject (e.g. CN = registration id) is
    /// the caller's job.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        validity_days: u32,
    ) -> Result<CertificateDer<'static>, TlsError> {
        if validity_days == 0 {
            return Err(TlsError::ZeroValidity);
        }
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(TlsError::InvalidCsr)?;
        let mut params = leaf_params(i64::from(validity_days))?;
        params.distinguished_name = csr.params.distinguished_name.clone();
        params.subject_alt_names = csr.params.subject_alt_names.clone();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&csr.public_key, &self.ca)?;
        Ok(cert.der().clone())
    }

    /// The rustls server configuration (shared; cheap to clone).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server_config)
    }
}

/// The cipher suites the emulator offers: every TLS 1.3 suite of the *ring* provider and, on
/// TLS 1.2, only the four ECDHE AES-GCM suites that IoT Hub still accepts.
pub fn allowed_cipher_suites() -> Vec<SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ]
}

/// The *ring* crypto provider restricted to [`allowed_cipher_suites`].
pub(crate) fn crypto_provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: allowed_cipher_suites(),
        ..rustls::crypto::ring::default_provider()
    }
}

fn build_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(crypto_provider());
    let verifier = Arc::new(OptionalClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // No ALPN: the Azure SDKs send none for MQTT, and HTTP is HTTP/1.1 only.
    Ok(Arc::new(config))
}

/// Requests a client certificate, does not require one, and accepts any chain: whether the chain
/// is trusted depends on enrollments, which the application checks after the handshake. The
/// handshake signature is verified for real, which proves the peer holds the leaf's private key.
#[derive(Debug)]
struct OptionalClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsDistinguishedName] {
        // Any issuer is acceptable, so no hints: clients then send whatever certificate they have.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `hostname`, `localhost`, `127.0.0.1`, then the linked hubs: deduplicated, the configured
/// name first.
fn server_names(hostname: &str, hubs: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let fixed = [hostname.trim(), "localhost", "127.0.0.1"];
    for name in fixed.into_iter().chain(hubs.iter().map(|h| h.trim())) {
        let name = normalize_name(name);
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Lower-cases DNS names and writes IP addresses canonically, so stored and configured names
/// compare equal when they mean the same thing.
fn normalize_name(name: &str) -> String {
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => name.to_ascii_lowercase(),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_file(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    let result = if private {
        write_atomic_private(path, text.as_bytes())
    } else {
        write_atomic(path, text.as_bytes())
    };
    result.map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Returns (certificate PEM, key PEM) of the CA, creating and storing them on first start.
fn load_or_create_ca(dir: &Path) -> Result<(String, String), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert), Some(key)) => Ok((cert, key)),
        (Some(_), None) => Err(TlsError::Inconsistent(format!(
            "{} exists but {} is missing; refusing to replace a CA that clients may trust",
            cert_path.display(),
            key_path.display()
        ))),
        // No certificate: a first start, or a crash after writing the key but before the
        // certificate. Nobody can trust a CA whose certificate was never written: start afresh.
        (None, _) => {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let cert = ca_params()?.self_signed(&key)?;
            // Key first: a crash in between is handled by the branch above.
            write_file(&key_path, &key.serialize_pem(), true)?;
            write_file(&cert_path, &cert.pem(), false)?;
            tracing::info!(path = %cert_path.display(), "created the emulator CA");
            Ok((cert.pem(), key.serialize_pem()))
        }
    }
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// Parameters shared by every end-entity certificate the CA issues.
fn leaf_params(validity_days: i64) -> Result<CertificateParams, TlsError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(validity_days);
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// Returns (certificate PEM, key PEM) of the server certificate, re-issuing it when needed.
fn load_or_create_server(
    dir: &Path,
    names: &[String],
    ca: &Issuer<'static, KeyPair>,
    ca_der: &CertificateDer<'static>,
) -> Result<(String, String), TlsError> {
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    if let (Some(cert), Some(key)) = (read_optional(&cert_path)?, read_optional(&key_path)?) {
        match server_cert_reusable(&cert, &key, names, ca_der) {
            Ok(()) => return Ok((cert, key)),
            Err(why) => tracing::info!(reason = %why, "re-issuing the server certificate"),
        }
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = leaf_params(SERVER_VALIDITY_DAYS)?;
    params.subject_alt_names = CertificateParams::new(names.to_vec())?.subject_alt_names;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, ca)?;
    write_file(&key_path, &key.serialize_pem(), true)?;
    write_file(&cert_path, &cert.pem(), false)?;
    tracing::info!(names = ?names, "issued the server certificate");
    Ok((cert.pem(), key.serialize_pem()))
}

/// Ok when the stored server certificate can be used as is; otherwise why not.
fn server_cert_reusable(
    cert_pem: &str,
    key_pem: &str,
    names: &[String],
    ca_der: &CertificateDer<'static>,
) -> Result<(), String> {
    let key = KeyPair::from_pem(key_pem).map_err(|e| format!("server key unreadable: {e}"))?;
    let der = pem_to_der(cert_pem, SERVER_CERT_FILE).map_err(|e| e.to_string())?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("server certificate unreadable: {e}"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|e| format!("CA certificate unreadable: {e}"))?;

    if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Err("the server key does not match the certificate".into());
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| "the server certificate is not signed by the current CA".to_string())?;
    let renew_at = OffsetDateTime::now_utc() + Duration::days(SERVER_RENEW_DAYS);
    if cert.validity().not_after.timestamp() < renew_at.unix_timestamp() {
        return Err("the server certificate expires soon".into());
    }

    let mut stored = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    stored.insert(normalize_name(dns));
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        stored.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let wanted: BTreeSet<String> = names.iter().cloned().collect();
    if stored != wanted {
        return Err(format!("host names changed: {stored:?} -> {wanted:?}"));
    }
    Ok(())
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn pem_to_der(pem: &str, what: &str) -> Result<CertificateDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsError::Inconsistent(format!("{what}: not a PEM certificate: {e}")))
}

/// A random positive 128-bit serial number (RFC 5280 asks for unique serials per CA; deriving
/// them from the public key, rcgen's default, would repeat when a key is certified twice).
fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| TlsError::Inconsistent("the system random generator failed".into()))?;
    // Positive and without a leading zero byte, so it encodes in exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deduplicated_and_normalized() {
        assert_eq!(
            server_names("localhost", &[]),
            vec!["localhost", "127.0.0.1"]
        );
        assert_eq!(
            server_names("Emu.Example", &[]),
            vec!["emu.example", "localhost", "127.0.0.1"]
        );
        assert_eq!(
            server_names("::1", &[]),
            vec!["::1", "localhost", "127.0.0.1"]
        );
        let hubs = ["Hub-A.azure-devices.net".to_owned(), "localhost".to_owned()];
        assert_eq!(
            server_names("global.azure-devices-provisioning.net", &hubs),
            vec![
                "global.azure-devices-provisioning.net",
                "localhost",
                "127.0.0.1",
                "hub-a.azure-devices.net"
            ]
        );
    }

    #[test]
    fn hostname_change_reissues_server_cert_but_keeps_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
        let again = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
        assert_eq!(first.server_certificate(), again.server_certificate());
        let renamed = TlsMaterial::load_or_create(dir.path(), "emu.local").unwrap();
        assert_eq!(first.ca_pem(), renamed.ca_pem());
        assert_ne!(first.server_certificate(), renamed.server_certificate());
        assert_eq!(renamed.server_names()[0], "emu.local");
    }

    #[test]
    fn a_hub_linked_later_reissues_the_server_cert() {
        let dir = tempfile::tempdir().unwrap();
        let one = ["hub-a.example".to_owned()];
        let two = ["hub-a.example".to_owned(), "hub-b.example".to_owned()];
        let first = TlsMaterial::load_or_create_covering(dir.path(), "dps.example", &one).unwrap();
        let again = TlsMaterial::load_or_create_covering(dir.path(), "dps.example", &one).unwrap();
        assert_eq!(first.server_certificate(), again.server_certificate());
        let more = TlsMaterial::load_or_create_covering(dir.path(), "dps.example", &two).unwrap();
        assert_ne!(first.server_certificate(), more.server_certificate());
        assert!(more.server_names().contains(&"hub-b.example".to_owned()));
    }

    #[test]
    fn ca_cert_without_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
        std::fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            TlsMaterial::load_or_create(dir.path(), "localhost"),
            Err(TlsError::Inconsistent(_))
        ));
    }

    #[test]
    fn garbage_csr_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
        assert!(matches!(
            tls.sign_csr(b"\x30\x03\x02\x01\x00", 30),
            Err(TlsError::InvalidCsr(_))
        ));
        assert!(matches!(tls.sign_csr(b"", 0), Err(TlsError::ZeroValidity)));
    }
}
