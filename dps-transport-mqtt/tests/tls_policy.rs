//! The TLS policy without a network: roots, suites, versions, ECC-only, fragment size and
//! configuration errors.

use dps_testkit::pki::Ca;
use dps_transport_mqtt::rustls::pki_types::CertificateDer;
use dps_transport_mqtt::rustls::{CipherSuite, SignatureScheme};
use dps_transport_mqtt::{TlsConfig, TlsErrorKind, TransportError};

/// Whether some trust anchor's subject contains `name` (the subject DER holds the common name
/// as a plain string).
fn trusts(tls: &TlsConfig, name: &str) -> bool {
    tls.root_store().unwrap().roots.iter().any(|anchor| {
        anchor
            .subject
            .windows(name.len())
            .any(|window| window == name.as_bytes())
    })
}

#[test]
fn webpki_roots_include_the_azure_roots() {
    let tls = TlsConfig::new();
    // The two roots Azure IoT asks devices to trust ("Microsoft RSA Root CA 2017" is
    // "Microsoft RSA Root Certificate Authority 2017" in full).
    assert!(trusts(&tls, "DigiCert Global Root G2"));
    assert!(trusts(
        &tls,
        "Microsoft RSA Root Certificate Authority 2017"
    ));
    // And the ECC roots behind the services' ECC certificates.
    assert!(trusts(&tls, "DigiCert Global Root G3"));
    assert!(trusts(
        &tls,
        "Microsoft ECC Root Certificate Authority 2017"
    ));
    assert!(tls.root_store().unwrap().len() > 100);
}

#[test]
fn only_the_allowed_suites() {
    let suites: Vec<CipherSuite> = TlsConfig::new()
        .cipher_suites()
        .iter()
        .map(|s| s.suite())
        .collect();
    assert_eq!(
        suites,
        vec![
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ]
    );
    let config = TlsConfig::new().client_config(None).unwrap();
    // The versions offered (1.2 and 1.3 only) are checked on the wire in the conformance
    // suite (`client_hello_offers_only_the_policy_and_tls11_is_refused`).
    assert!(config.alpn_protocols.is_empty());
    assert_eq!(config.max_fragment_size, None);
}

#[test]
fn ecc_only_restricts_suites_and_signature_schemes() {
    let tls = TlsConfig::new().ecc_only(true);
    assert!(tls.is_ecc_only());
    for suite in tls.cipher_suites() {
        let name = format!("{:?}", suite.suite());
        assert!(
            name.starts_with("TLS13_") || name.starts_with("TLS_ECDHE_ECDSA_"),
            "{name}"
        );
    }
    let schemes = tls
        .crypto_provider()
        .signature_verification_algorithms
        .supported_schemes();
    assert!(!schemes.is_empty());
    for scheme in schemes {
        assert!(
            matches!(
                scheme,
                SignatureScheme::ECDSA_NISTP256_SHA256
                    | SignatureScheme::ECDSA_NISTP384_SHA384
                    | SignatureScheme::ECDSA_NISTP521_SHA512
            ),
            "{scheme:?}"
        );
    }
    // Certificate chains may still be signed with RSA.
    assert!(
        tls.crypto_provider()
            .signature_verification_algorithms
            .all
            .len()
            > 4
    );
    tls.client_config(None).unwrap();
}

#[test]
fn max_fragment_size_is_applied_and_checked() {
    let config = TlsConfig::new()
        .max_fragment_size(Some(512))
        .client_config(None)
        .unwrap();
    assert_eq!(config.max_fragment_size, Some(512));
    for bad in [0, 31, 16_390] {
        let error = TlsConfig::new()
            .max_fragment_size(Some(bad))
            .client_config(None)
            .unwrap_err();
        assert_configuration(&error);
    }
}

fn assert_configuration(error: &TransportError) {
    assert!(
        matches!(
            error,
            TransportError::Tls {
                kind: TlsErrorKind::Configuration,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retriable());
}

#[test]
fn private_roots_replace_or_extend_the_webpki_roots() {
    let ca = Ca::root("Private Root Zeta");

    let only = TlsConfig::new()
        .webpki_roots(false)
        .add_root_pem(ca.pem.as_bytes())
        .unwrap();
    assert_eq!(only.root_store().unwrap().len(), 1);
    assert!(trusts(&only, "Private Root Zeta"));
    assert!(!trusts(&only, "DigiCert Global Root G2"));

    let both = TlsConfig::new().add_root(ca.der.clone());
    assert!(trusts(&both, "Private Root Zeta"));
    assert!(trusts(&both, "DigiCert Global Root G2"));

    // Nothing to trust, or something that is not a certificate, is a configuration error.
    assert_configuration(
        &TlsConfig::new()
            .webpki_roots(false)
            .client_config(None)
            .unwrap_err(),
    );
    assert_configuration(&TlsConfig::new().add_root_pem(b"no pem here").unwrap_err());
    assert_configuration(
        &TlsConfig::new()
            .add_root(CertificateDer::from(vec![1, 2, 3]))
            .client_config(None)
            .unwrap_err(),
    );
    let debug = format!("{:?}", TlsConfig::new().add_root(ca.der.clone()));
    assert!(debug.contains("extra_roots: 1"), "{debug}");
}

#[test]
fn errors_say_whether_to_retry() {
    use dps_transport_mqtt::TimeoutStage;
    for code in [1u8, 2, 4, 5] {
        assert!(!TransportError::Refused { code }.is_retriable(), "{code}");
    }
    assert!(TransportError::Refused { code: 3 }.is_retriable());
    assert!(TransportError::Refused { code: 4 }.is_credentials());
    assert!(TransportError::Refused { code: 5 }.is_credentials());
    assert!(!TransportError::Refused { code: 3 }.is_credentials());
    assert!(
        TransportError::Timeout {
            stage: TimeoutStage::Connack
        }
        .is_retriable()
    );
    assert!(TransportError::ConnectionClosed.is_retriable());
    assert!(!TransportError::InsecureUrl("ws://x".into()).is_retriable());
    assert!(!TransportError::Proxy { status: 407 }.is_retriable());
    assert!(TransportError::Proxy { status: 503 }.is_retriable());
    assert_eq!(
        TransportError::Refused { code: 5 }.to_string(),
        "connection refused by the server (connack code 5: not authorized)"
    );
    assert_eq!(
        TransportError::Timeout {
            stage: TimeoutStage::Tls
        }
        .to_string(),
        "timed out during tls handshake"
    );
}
