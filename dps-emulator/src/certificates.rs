//! Certificate issuance, shared by DPS (a registration carrying a CSR, service-behaviour.md
//! §1.16) and the hub (renewal over `$iothub/credentials`, hub-device-protocol.md "Hub
//! certificate renewal"): the emulator's CA signs, for a lifetime the test chooses, and the hub
//! then trusts the issued certificate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;

use crate::dps::device::registrar::CertificateIssuer;
use crate::model::{HubAuthType, HubAuthentication};
use crate::rest::ServiceFailure;
use crate::tls::TlsMaterial;
use crate::util::x509;

/// The lifetime of issued certificates unless configured (`behaviour.certificateLifetimeSeconds`).
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a CSR was not turned into a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssueError {
    /// The CSR is not base64.
    NotBase64,
    /// The CSR does not parse or its signature is wrong.
    Rejected(String),
    /// The CSR's common name is not the identity it was sent for.
    WrongCommonName,
}

impl std::fmt::Display for IssueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotBase64 => f.write_str("The CSR is not valid base64."),
            Self::Rejected(why) => write!(f, "The CSR was rejected: {why}"),
            Self::WrongCommonName => {
                f.write_str("The CSR's common name must equal the device's id.")
            }
        }
    }
}

/// The emulator's CA as an issuer of client certificates.
pub(crate) struct CaIssuer {
    tls: Arc<TlsMaterial>,
    lifetime_seconds: AtomicU64,
}

impl CaIssuer {
    pub(crate) fn new(tls: Arc<TlsMaterial>, lifetime: Duration) -> Self {
        Self {
            tls,
            lifetime_seconds: AtomicU64::new(lifetime.as_secs().max(1)),
        }
    }

    /// The lifetime of the certificates issued from now on.
    pub(crate) fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_seconds.load(Ordering::Relaxed))
    }

    /// Sets the lifetime of the certificates issued from now on (at least one second).
    pub(crate) fn set_lifetime(&self, lifetime: Duration) -> Result<(), ServiceFailure> {
        if lifetime.as_secs() == 0 {
            return Err(ServiceFailure::bad_request(
                "the certificate lifetime must be at least one second",
            ));
        }
        self.lifetime_seconds
            .store(lifetime.as_secs(), Ordering::Relaxed);
        Ok(())
    }

    /// Issues a chain (base64 DER, leaf first, the CA last) for `csr` (base64 DER PKCS#10)
    /// whose common name must be `id` (case-insensitive, as registration ids compare).
    pub(crate) fn issue_base64(&self, id: &str, csr: &str) -> Result<Vec<String>, IssueError> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(csr.trim())
            .map_err(|_| IssueError::NotBase64)?;
        let chain = self.issue(&der).map_err(IssueError::Rejected)?;
        let cn = chain.first().and_then(|leaf| x509::common_name(leaf));
        if !cn.is_some_and(|cn| cn.eq_ignore_ascii_case(id)) {
            return Err(IssueError::WrongCommonName);
        }
        Ok(chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .collect())
    }
}

impl CertificateIssuer for CaIssuer {
    fn issue(&self, csr_der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let leaf = self
            .tls
            .sign_csr_for(csr_der, self.lifetime())
            .map_err(|e| e.to_string())?;
        Ok(vec![leaf.to_vec(), self.tls.ca_certificate().to_vec()])
    }
}

/// The hub authentication of an identity holding a certificate the emulator's CA issued: the
/// hub trusts that CA ("IoT Hub trusts it", service-behaviour.md §1.16), so any certificate it
/// issued whose CN is the device id connects, the renewed one as well as the one it replaces.
pub(crate) fn issued_authentication() -> HubAuthentication {
    HubAuthentication {
        kind: HubAuthType::CertificateAuthority,
        symmetric_key: None,
        x509_thumbprint: None,
    }
}
