//! An X.509 identity the device renews itself: a new key generated locally, a CSR for it, and
//! the chain the service issues installed with the key in one atomic file replacement
//! (service-behaviour §1.16, certificate issuance; hub-device-protocol, hub certificate
//! renewal).

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

use crate::{AuthError, Authenticator, Credentials, SasResource, X509Error, X509Identity};

/// Why a renewal step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// The identity file could not be read or written.
    #[error("the identity file {} could not be {action}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// `read` or `written`.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The stored or issued identity is unusable.
    #[error(transparent)]
    X509(#[from] X509Error),
    /// A key or CSR could not be generated.
    #[error("the key or its CSR could not be generated: {0}")]
    Generate(String),
    /// A chain was issued while no CSR was pending.
    #[error("a certificate was issued but no CSR is pending")]
    NothingPending,
    /// The issued chain is not base64 DER.
    #[error("the issued certificate chain is not base64 DER")]
    ChainEncoding,
    /// The issued leaf certificate is not for the pending key.
    #[error("the issued certificate is not for the key of the pending CSR")]
    KeyMismatch,
}

/// A device certificate whose key and chain live in one PEM file (the chain, then the key;
/// owner-only permissions), replaced atomically when a new certificate is installed: a crash
/// leaves the old pair or the new one, never a key with the wrong certificate.
///
/// It authenticates with the current certificate ([`Authenticator`]); [`new_csr`](Self::new_csr)
/// generates a new EC P-256 key and a CSR for it (common name: the registration id), kept
/// pending until [`install`](Self::install) receives the chain the service issued.
pub struct RenewableIdentity {
    registration_id: String,
    path: PathBuf,
    current: RwLock<Option<X509Identity>>,
    /// The PKCS#8 PEM of the key whose CSR is out.
    pending: Mutex<Option<Zeroizing<String>>>,
}

impl fmt::Debug for RenewableIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenewableIdentity")
            .field("registration_id", &self.registration_id)
            .field("path", &self.path)
            .field("has_certificate", &self.has_certificate())
            .finish_non_exhaustive()
    }
}

impl RenewableIdentity {
    /// The identity of `registration_id` kept at `path`, loaded when the file exists (a device
    /// that has not been issued a certificate yet has none).
    ///
    /// # Errors
    /// The file exists but cannot be read or holds no usable identity.
    pub fn open(
        registration_id: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> Result<Self, RenewalError> {
        let path = path.into();
        let current = match std::fs::read(&path) {
            Ok(pem) => {
                let pem = Zeroizing::new(pem);
                Some(X509Identity::from_pem(&pem, &pem)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(RenewalError::Io {
                    path,
                    action: "read",
                    source,
                });
            }
        };
        Ok(Self {
            registration_id: registration_id.into(),
            path,
            current: RwLock::new(current),
            pending: Mutex::new(None),
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a certificate is installed.
    #[must_use]
    pub fn has_certificate(&self) -> bool {
        self.read().is_some()
    }

    /// The current certificate's validity, Unix seconds (`not_before`, `not_after`).
    #[must_use]
    pub fn validity(&self) -> Option<(u64, u64)> {
        let current = self.read().clone()?;
        let (_, leaf) = x509_parser::parse_x509_certificate(current.leaf()).ok()?;
        let validity = leaf.validity();
        let unix = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
        Some((unix(validity.not_before), unix(validity.not_after)))
    }

    /// Generates a new key and returns a CSR for it (base64 DER, PKCS#10), the key kept
    /// pending; a later call replaces the pending key.
    ///
    /// # Errors
    /// [`RenewalError::Generate`].
    pub fn new_csr(&self) -> Result<String, RenewalError> {
        let generate = |e: rcgen::Error| RenewalError::Generate(e.to_string());
        let key = rcgen::KeyPair::generate().map_err(generate)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.registration_id.as_str());
        let csr = params.serialize_request(&key).map_err(generate)?;
        let der = base64::engine::general_purpose::STANDARD.encode(csr.der());
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Zeroizing::new(key.serialize_pem()));
        Ok(der)
    }

    /// Installs `chain` (base64 DER, leaf first), issued for the pending key: the file is
    /// replaced (written aside, flushed, renamed), then connections use the new certificate.
    ///
    /// # Errors
    /// Nothing pending, a chain that is not for the pending key, or the file not written (the
    /// current identity stays in use and the key stays pending).
    pub fn install(&self, chain: &[String]) -> Result<(), RenewalError> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let key_pem = pending.as_ref().ok_or(RenewalError::NothingPending)?;
        let ders = chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.decode(c.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| RenewalError::ChainEncoding)?;
        let leaf = ders.first().ok_or(X509Error::NoCertificate)?;
        let key =
            rcgen::KeyPair::from_pem(key_pem).map_err(|e| RenewalError::Generate(e.to_string()))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(leaf).map_err(|_| X509Error::NoCertificate)?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        {
            return Err(RenewalError::KeyMismatch);
        }
        let mut pem = Zeroizing::new(String::new());
        for der in &ders {
            pem.push_str(&pem_block("CERTIFICATE", der));
        }
        pem.push_str(key_pem);
        let identity = X509Identity::from_pem(pem.as_bytes(), pem.as_bytes())?;
        let chain_der: Vec<CertificateDer<'static>> =
            ders.into_iter().map(CertificateDer::from).collect();
        debug_assert_eq!(chain_der.len(), identity.chain_len());
        self.write(pem.as_bytes())?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(identity);
        *pending = None;
        tracing::info!(path = %self.path.display(), "installed a renewed certificate");
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<X509Identity>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, bytes: &[u8]) -> Result<(), RenewalError> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(dir) = std::fs::File::open(dir) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        };
        write().map_err(|source| RenewalError::Io {
            path: self.path.clone(),
            action: "written",
            source,
        })
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Authenticator for RenewableIdentity {
    fn credentials(&self, resource: &SasResource, unix_now: u64) -> Result<Credentials, AuthError> {
        let current = self.read().clone().ok_or(X509Error::NoCertificate)?;
        current.credentials(resource, unix_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(csr_b64: &str, days: i64) -> Vec<String> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(csr_b64)
            .unwrap();
        let csr = rcgen::CertificateSigningRequestParams::from_der(&der.into()).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut params = csr.params;
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = params.not_before + std::time::Duration::from_secs(86_400 * days as u64);
        let leaf = params.signed_by(&csr.public_key, &issuer).unwrap();
        [leaf.der().to_vec(), ca_cert.der().to_vec()]
            .iter()
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
            .collect()
    }

    #[test]
    fn a_renewed_certificate_replaces_the_file_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.pem");
        let identity = RenewableIdentity::open("dev-1", &path).unwrap();
        assert!(!identity.has_certificate());
        assert!(identity.install(&[]).is_err(), "nothing pending");
        let csr = identity.new_csr().unwrap();
        let chain = issue(&csr, 30);
        identity.install(&chain).unwrap();
        let (nb, na) = identity.validity().unwrap();
        assert_eq!(na - nb, 30 * 86_400);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
        let reopened = RenewableIdentity::open("dev-1", &path).unwrap();
        assert_eq!(reopened.validity(), Some((nb, na)));
        assert!(!format!("{reopened:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_chain_for_another_key_is_refused_and_the_old_identity_stays() {
        let dir = tempfile::tempdir().unwrap();
        let identity = RenewableIdentity::open("dev-1", dir.path().join("id.pem")).unwrap();
        let first = identity.new_csr().unwrap();
        identity.install(&issue(&first, 10)).unwrap();
        let before = identity.validity();
        let other = RenewableIdentity::open("dev-1", dir.path().join("other.pem")).unwrap();
        let foreign = issue(&other.new_csr().unwrap(), 20);
        let _ = identity.new_csr().unwrap();
        assert!(matches!(
            identity.install(&foreign),
            Err(RenewalError::KeyMismatch)
        ));
        assert_eq!(identity.validity(), before);
        assert!(matches!(
            identity.install(&["%%".to_owned()]),
            Err(RenewalError::ChainEncoding)
        ));
    }
}
