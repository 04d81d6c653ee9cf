//! [`TlsConfig`]: the TLS policy of Azure IoT devices, shared by every transport.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use dps_auth::X509Identity;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm};
use rustls::{ClientConfig, RootCertStore, SignatureScheme, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{TlsErrorKind, TransportError};
use crate::external_key::ExternalKeyResolver;

/// TLS settings for a device connection: the policy of
/// [IoT Hub and DPS](https://learn.microsoft.com/azure/iot-hub/iot-hub-tls-support), on rustls
/// with the *ring* provider.
///
/// - TLS 1.2 and 1.3 only (the service refuses 1.0 and 1.1);
/// - on TLS 1.2, only the four ECDHE AES-GCM suites the service accepts; on TLS 1.3 its three
///   suites; never CBC, never static RSA;
/// - server certificates verified against the Mozilla roots of `webpki-roots` (which include
///   DigiCert Global Root G2 and Microsoft RSA Root CA 2017, the roots of Azure's certificates)
///   plus any [added roots](Self::add_root); verification can never be turned off;
/// - [ECC-only](Self::ecc_only) mode for constrained devices, and an optional
///   [maximum fragment size](Self::max_fragment_size);
/// - an X.509 device identity is presented with its full chain (leaf and intermediates).
///
/// ```
/// use dps_transport_mqtt::TlsConfig;
///
/// // A constrained device: ECC certificates and small records.
/// let tls = TlsConfig::new().ecc_only(true).max_fragment_size(Some(4096));
/// let config = tls.client_config(None)?;
/// assert_eq!(config.max_fragment_size, Some(4096));
///
/// // A private deployment or the local emulator: trust its CA only, with
/// // `TlsConfig::new().webpki_roots(false).add_root_pem(ca_pem)?`.
/// # Ok::<(), dps_transport_mqtt::TransportError>(())
/// ```
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// Shared by every clone: each registration of a fleet holds its own `TlsConfig`, and a
    /// private CA's certificate copied into each would cost ~400 bytes per device.
    extra_roots: Arc<Vec<CertificateDer<'static>>>,
    no_webpki_roots: bool,
    ecc_only: bool,
    max_fragment_size: Option<usize>,
    /// Host names connected to at a fixed address instead of their DNS answer (the
    /// certificate is still verified for the name).
    addresses: Arc<Vec<(String, SocketAddr)>>,
    /// The rustls configuration for connections without a client certificate, built once and
    /// shared by every clone: a fleet's connections share one root store, verifier and session
    /// cache instead of building their own. Every setter starts a new one.
    shared: Arc<OnceLock<Arc<ClientConfig>>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("webpki_roots", &!self.no_webpki_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("ecc_only", &self.ecc_only)
            .field("max_fragment_size", &self.max_fragment_size)
            .field("addresses", &self.addresses)
            .finish()
    }
}

impl TlsConfig {
    /// The default policy: webpki roots, RSA and ECC, default fragment size.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts `root` (a CA certificate, DER): for private deployments and emulators.
    /// Verification stays on. A certificate that is not a usable trust anchor makes
    /// [`client_config`](Self::client_config) fail with [`TlsErrorKind::Configuration`].
    #[must_use]
    pub fn add_root(mut self, root: CertificateDer<'static>) -> Self {
        Arc::make_mut(&mut self.extra_roots).push(root);
        self.shared = Arc::default();
        self
    }

    /// Also trusts every certificate in `pem` (one or more `CERTIFICATE` sections).
    ///
    /// # Errors
    /// [`TransportError::Tls`] with [`TlsErrorKind::Configuration`] when the PEM is malformed or
    /// holds no certificate.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, TransportError> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| configuration(format!("root certificate pem is malformed: {e}")))?;
        if roots.is_empty() {
            return Err(configuration("no certificate in the root certificate pem"));
        }
        Arc::make_mut(&mut self.extra_roots).extend(roots);
        self.shared = Arc::default();
        Ok(self)
    }

    /// Connects to `addr` whenever an endpoint's host is `name` (case-insensitive), instead of
    /// what DNS answers, and still verifies the server's certificate for `name`: the real
    /// host-name layout (`global.azure-devices-provisioning.net`, `{hub}.azure-devices.net`)
    /// against a local emulator or a test double, as an `/etc/hosts` entry would, without one.
    #[must_use]
    pub fn connect_address(mut self, name: impl Into<String>, addr: SocketAddr) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        let addresses = Arc::make_mut(&mut self.addresses);
        addresses.retain(|(n, _)| *n != name);
        addresses.push((name, addr));
        self
    }

    /// The address set for `host` with [`connect_address`](Self::connect_address).
    #[must_use]
    pub fn address_for(&self, host: &str) -> Option<SocketAddr> {
        self.addresses
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(host))
            .map(|(_, addr)| *addr)
    }

    /// Whether to trust the Mozilla roots of `webpki-roots` (default `true`). With `false`,
    /// only the [added roots](Self::add_root) are trusted.
    #[must_use]
    pub fn webpki_roots(mut self, enabled: bool) -> Self {
        self.no_webpki_roots = !enabled;
        self.shared = Arc::default();
        self
    }

    /// Offers only ECDSA signature schemes and, on TLS 1.2, only the ECDHE-ECDSA suites, so
    /// the service presents its ECC certificate (less compute, memory and bandwidth than RSA).
    /// Default `false`.
    #[must_use]
    pub fn ecc_only(mut self, enabled: bool) -> Self {
        self.ecc_only = enabled;
        self.shared = Arc::default();
        self
    }

    /// Limits the size of the TLS records this client sends (rustls' `max_fragment_size`,
    /// 32 to 16 389 bytes including overhead). `None` (the default) uses the TLS maximum.
    #[must_use]
    pub fn max_fragment_size(mut self, size: Option<usize>) -> Self {
        self.max_fragment_size = size;
        self.shared = Arc::default();
        self
    }

    /// Whether ECC-only mode is on.
    #[must_use]
    pub fn is_ecc_only(&self) -> bool {
        self.ecc_only
    }

    /// The trusted roots: the webpki roots (unless disabled) and the added ones.
    ///
    /// # Errors
    /// [`TlsErrorKind::Configuration`] when an added root is not a usable trust anchor.
    pub fn root_store(&self) -> Result<RootCertStore, TransportError> {
        let mut roots = RootCertStore::empty();
        if !self.no_webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for root in self.extra_roots.iter() {
            roots
                .add(root.clone())
                .map_err(|e| configuration(format!("unusable root certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(configuration(
                "no trusted roots: enable the webpki roots or add a root",
            ));
        }
        Ok(roots)
    }

    /// The cipher suites this policy offers, in preference order.
    #[must_use]
    pub fn cipher_suites(&self) -> Vec<SupportedCipherSuite> {
        use rustls::crypto::ring::cipher_suite as cs;
        let mut suites = vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ];
        if !self.ecc_only {
            suites.extend([
                cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ]);
        }
        suites
    }

    /// The *ring* crypto provider restricted to this policy.
    #[must_use]
    pub fn crypto_provider(&self) -> CryptoProvider {
        let ring = rustls::crypto::ring::default_provider();
        let signature_verification_algorithms = if self.ecc_only {
            ecdsa_only(ring.signature_verification_algorithms)
        } else {
            ring.signature_verification_algorithms
        };
        CryptoProvider {
            cipher_suites: self.cipher_suites(),
            signature_verification_algorithms,
            ..ring
        }
    }

    /// The rustls client configuration: this policy, and `identity`'s certificate chain (leaf
    /// and intermediates) and key for client authentication when given.
    ///
    /// # Errors
    /// [`TlsErrorKind::Configuration`] when a root, the identity's key or the fragment size is
    /// unusable.
    pub fn client_config(
        &self,
        identity: Option<&X509Identity>,
    ) -> Result<Arc<ClientConfig>, TransportError> {
        let provider = Arc::new(self.crypto_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(self.root_store()?),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| configuration(format!("cannot build the certificate verifier: {e}")))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| configuration(e.to_string()))?
            .with_webpki_verifier(verifier);
        let mut config = match identity {
            Some(identity) => match (identity.private_key(), identity.key_signer()) {
                (Some(key), _) => builder
                    .with_client_auth_cert(identity.certificate_chain(), key)
                    .map_err(|e| {
                        configuration(format!("unusable client certificate or key: {e}"))
                    })?,
                // The key is in a token: rustls asks the resolver's key for each signature.
                (None, Some(signer)) => builder.with_client_cert_resolver(Arc::new(
                    ExternalKeyResolver::new(identity.certificate_chain(), Arc::clone(signer)),
                )),
                (None, None) => return Err(configuration("the X.509 identity has no key")),
            },
            None => builder.with_no_client_auth(),
        };
        if let Some(size) = self.max_fragment_size {
            if !(32..=16_389).contains(&size) {
                return Err(configuration(format!(
                    "max fragment size {size} is outside 32..=16389"
                )));
            }
            config.max_fragment_size = Some(size);
        }
        Ok(Arc::new(config))
    }

    /// Runs the TLS handshake with `host` (the server name checked against the certificate: a
    /// DNS name or an IP address) over `stream`.
    ///
    /// # Errors
    /// [`TransportError::Tls`] for handshake and certificate failures, [`TransportError::Io`]
    /// when the stream fails, [`TransportError::Dns`] when `host` is not a valid server name.
    pub async fn handshake<S>(
        &self,
        host: &str,
        stream: S,
        identity: Option<&X509Identity>,
    ) -> Result<TlsStream<S>, TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = match identity {
            None => match self.shared.get() {
                Some(config) => Arc::clone(config),
                None => {
                    let config = self.client_config(None)?;
                    // Another connection may have won the race; either configuration is right.
                    let _ = self.shared.set(Arc::clone(&config));
                    config
                }
            },
            Some(identity) => {
                // A configuration with a client certificate is built for one device, so its
                // session cache could never serve another: drop it (rustls' default cache
                // holds 256 sessions, ~15 KiB per connection in flight).
                let mut config = Arc::unwrap_or_clone(self.client_config(Some(identity))?);
                config.resumption = rustls::client::Resumption::disabled();
                Arc::new(config)
            }
        };
        let name = ServerName::try_from(host.to_owned()).map_err(|_| TransportError::Dns {
            host: host.to_owned(),
            message: "not a valid server name".into(),
        })?;
        let stream = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| TransportError::from_io(&e))?;
        let (_, connection) = stream.get_ref();
        tracing::debug!(
            host,
            version = ?connection.protocol_version(),
            suite = ?connection.negotiated_cipher_suite().map(|s| s.suite()),
            client_certificate = identity.is_some(),
            "tls handshake done"
        );
        Ok(stream)
    }
}

fn configuration(message: impl Into<String>) -> TransportError {
    TransportError::Tls {
        kind: TlsErrorKind::Configuration,
        message: message.into(),
    }
}

/// The ring algorithms with only ECDSA handshake signature schemes offered. Certificate chains
/// may still be signed with any algorithm (an ECC leaf may hang under an RSA root).
fn ecdsa_only(all: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    type Mapping = (
        SignatureScheme,
        &'static [&'static dyn SignatureVerificationAlgorithm],
    );
    static ECDSA: OnceLock<Vec<Mapping>> = OnceLock::new();
    let mapping = ECDSA.get_or_init(|| {
        all.mapping
            .iter()
            .filter(|(scheme, _)| {
                matches!(
                    scheme,
                    SignatureScheme::ECDSA_NISTP256_SHA256
                        | SignatureScheme::ECDSA_NISTP384_SHA384
                        | SignatureScheme::ECDSA_NISTP521_SHA512
                )
            })
            .copied()
            .collect()
    });
    WebPkiSupportedAlgorithms {
        all: all.all,
        mapping,
    }
}

/// Classifies a rustls error.
pub(crate) fn classify(error: &rustls::Error) -> TransportError {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    let kind = match error {
        E::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => TlsErrorKind::UnknownIssuer,
            Cert::Expired | Cert::ExpiredContext { .. } => TlsErrorKind::Expired,
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => TlsErrorKind::NotYetValid,
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => TlsErrorKind::WrongName,
            _ => TlsErrorKind::BadCertificate,
        },
        E::PeerIncompatible(incompatible) => match incompatible {
            rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
            | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | rustls::PeerIncompatible::Tls12NotOffered
            | rustls::PeerIncompatible::Tls12NotOfferedOrEnabled
            | rustls::PeerIncompatible::SupportedVersionsExtensionRequired => {
                TlsErrorKind::UnsupportedVersion
            }
            _ => TlsErrorKind::Negotiation,
        },
        E::PeerMisbehaved(rustls::PeerMisbehaved::SelectedUnofferedCipherSuite) => {
            TlsErrorKind::Negotiation
        }
        E::PeerMisbehaved(_) | E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            TlsErrorKind::PeerMisbehaved
        }
        E::AlertReceived(Alert::ProtocolVersion) => TlsErrorKind::UnsupportedVersion,
        E::AlertReceived(Alert::HandshakeFailure | Alert::InsufficientSecurity) => {
            TlsErrorKind::Negotiation
        }
        E::AlertReceived(_) => TlsErrorKind::AlertReceived,
        E::NoCertificatesPresented => TlsErrorKind::BadCertificate,
        _ => TlsErrorKind::Other,
    };
    TransportError::Tls {
        kind,
        message: error.to_string(),
    }
}
