//! TLS policy cases: handshake timeouts, what the ClientHello offers, refused servers.

use std::time::Duration;

use dps_transport_mqtt::{TimeoutStage, TlsConfig, TlsErrorKind, TransportError};

use super::echo::EchoServer;
use super::harness::*;
use super::tls_servers;
use crate::pki::Ca;

/// A TCP listener that accepts and never answers: the handshake cannot finish.
pub async fn connect_times_out_in_the_tls_stage(setup: Setup) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let options =
        tls_only_options(port, TlsConfig::new()).with_connect_timeout(Duration::from_millis(400));
    let error = connect_err(&setup, &options).await;
    assert_eq!(
        error,
        TransportError::Timeout {
            stage: TimeoutStage::Tls
        }
    );
    assert!(error.is_retriable());
    hold.abort();
}

const TLS13_SUITES: [u16; 3] = [0x1301, 0x1302, 0x1303];
const ECDSA_GCM: [u16; 2] = [0xc02b, 0xc02c];
const RSA_GCM: [u16; 2] = [0xc02f, 0xc030];
/// Not a suite: the renegotiation signalling value.
const SCSV: u16 = 0x00ff;

/// Case: client hello offers only the policy and TLS 1.1 is refused.
pub async fn client_hello_offers_only_the_policy_and_tls11_is_refused(setup: Setup) {
    // Answers with a TLS 1.1 ServerHello choosing ECDHE-ECDSA-AES128-CBC-SHA.
    let (addr, hello) = tls_servers::raw_server(tls_servers::server_hello([3, 2], 0xc009)).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), TlsConfig::new())).await;
    assert_tls(&error, TlsErrorKind::UnsupportedVersion);

    let hello = hello.await.unwrap();
    assert_eq!(hello.legacy_version, 0x0303);
    let mut versions = hello.supported_versions.clone();
    versions.sort_unstable();
    assert_eq!(versions, vec![0x0303, 0x0304], "only TLS 1.2 and 1.3");
    let allowed: Vec<u16> = TLS13_SUITES
        .iter()
        .chain(&ECDSA_GCM)
        .chain(&RSA_GCM)
        .copied()
        .collect();
    let offered: Vec<u16> = hello
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| *s != SCSV)
        .collect();
    let mut sorted = offered.clone();
    sorted.sort_unstable();
    let mut expected = allowed.clone();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "offered {offered:04x?}");
    assert_eq!(hello.server_name.as_deref(), Some("localhost"));
}

/// Case: ECC only offers only ecdsa.
pub async fn ecc_only_offers_only_ecdsa(setup: Setup) {
    let (addr, hello) = tls_servers::raw_server(tls_servers::server_hello([3, 2], 0xc009)).await;
    let tls = TlsConfig::new().ecc_only(true);
    let _ = connect_err(&setup, &tls_only_options(addr.port(), tls)).await;
    let hello = hello.await.unwrap();
    for suite in &hello.cipher_suites {
        assert!(
            TLS13_SUITES.contains(suite) || ECDSA_GCM.contains(suite) || *suite == SCSV,
            "{suite:04x} offered in ecc-only mode"
        );
    }
    assert!(ECDSA_GCM.iter().all(|s| hello.cipher_suites.contains(s)));
    assert!(!hello.signature_algorithms.is_empty());
    for scheme in &hello.signature_algorithms {
        assert!(
            [0x0403, 0x0503, 0x0603].contains(scheme),
            "{scheme:04x} offered in ecc-only mode"
        );
    }

    // The emulator's certificate is ECDSA: ECC-only mode connects to it.
    let mut server = EchoServer::start().await;
    let mut options = echo_options(&setup, &server, "dev-ecc");
    options.tls = options.tls.clone().ecc_only(true);
    let connection = connect(&setup, &options).await;
    connection.disconnect().await;
    server.closed("dev-ecc").await;
    server.servers.shutdown().await;
}

/// Case: CBC suite server is refused.
pub async fn cbc_suite_server_is_refused(setup: Setup) {
    // A TLS 1.2 ServerHello choosing ECDHE-RSA-AES256-CBC-SHA384 (accepted by the service once,
    // never offered by this client).
    let (addr, _hello) = tls_servers::raw_server(tls_servers::server_hello([3, 3], 0xc028)).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), TlsConfig::new())).await;
    assert_tls(&error, TlsErrorKind::Negotiation);
}

/// Case: wrong host name is refused.
pub async fn wrong_host_name_is_refused(setup: Setup) {
    let ca = Ca::root("Test CA");
    let leaf = ca.server(&["other.example"], None);
    let addr = tls_servers::rustls_server(&leaf, vec![]).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), trusting(&ca.der))).await;
    assert_tls(&error, TlsErrorKind::WrongName);
}

/// Case: untrusted ca is refused.
pub async fn untrusted_ca_is_refused(setup: Setup) {
    let trusted = Ca::root("Trusted CA");
    let other = Ca::root("Other CA");
    let leaf = other.server(&["localhost"], None);
    let addr = tls_servers::rustls_server(&leaf, vec![]).await;
    let error = connect_err(
        &setup,
        &tls_only_options(addr.port(), trusting(&trusted.der)),
    )
    .await;
    assert_tls(&error, TlsErrorKind::UnknownIssuer);
    // The webpki roots do not trust it either.
    let error = connect_err(&setup, &tls_only_options(addr.port(), TlsConfig::new())).await;
    assert_tls(&error, TlsErrorKind::UnknownIssuer);
}

/// Case: expired certificate is refused.
pub async fn expired_certificate_is_refused(setup: Setup) {
    let ca = Ca::root("Test CA");
    let now = time::OffsetDateTime::now_utc();
    let leaf = ca.server(
        &["localhost"],
        Some((
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )),
    );
    let addr = tls_servers::rustls_server(&leaf, vec![]).await;
    let error = connect_err(&setup, &tls_only_options(addr.port(), trusting(&ca.der))).await;
    assert_tls(&error, TlsErrorKind::Expired);
}

/// Case: debug output hides the token.
pub async fn debug_output_hides_the_token(setup: Setup) {
    let options = tls_only_options(1, TlsConfig::new());
    let text = format!("{options:?} {:?}", setup.transport);
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("redacted"), "{text}");
}
