//! Certificate helpers: decoding enrolled certificates, thumbprints, chain verification.

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, UnixTime, pem::PemObject as _};
use sha1::Digest as _;

use dps_core::dps::X509CertificateInfo;

/// Decodes an enrolled certificate given as PEM or as base64 DER (both are accepted by the
/// service API).
pub(crate) fn decode_certificate(text: &str) -> Option<CertificateDer<'static>> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return CertificateDer::from_pem_slice(text.as_bytes()).ok();
    }
    let compact: String = text.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
        .map(CertificateDer::from)
}

/// Upper-case hex SHA-1 of the DER (the hub's `x509Thumbprint` form).
pub(crate) fn sha1_thumbprint(der: &[u8]) -> String {
    hex_upper(&sha1::Sha1::digest(der))
}

/// Upper-case hex SHA-256 of the DER.
pub(crate) fn sha256_thumbprint(der: &[u8]) -> String {
    hex_upper(&sha2::Sha256::digest(der))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The subject common name, if the certificate parses and has one.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The service's summary of a certificate.
pub(crate) fn certificate_info(der: &[u8]) -> Option<X509CertificateInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        crate::util::time::format_utc(std::time::Duration::from_secs(
            u64::try_from(t.timestamp()).unwrap_or(0),
        ))
    };
    Some(X509CertificateInfo {
        subject_name: Some(cert.subject().to_string()),
        sha1_thumbprint: Some(sha1_thumbprint(der)),
        sha256_thumbprint: Some(sha256_thumbprint(der)),
        issuer_name: Some(cert.issuer().to_string()),
        not_before_utc: Some(time(cert.validity().not_before)),
        not_after_utc: Some(time(cert.validity().not_after)),
        serial_number: Some(
            cert.raw_serial_as_string()
                .replace(':', "")
                .to_ascii_uppercase(),
        ),
        version: Some(i64::from(cert.version().0) + 1),
    })
}

/// Checks that `leaf` chains through `intermediates` to `anchor` (an enrolled certificate) and
/// is valid now for client authentication. The handshake already proved possession of the
/// leaf's key.
pub(crate) fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchor: &CertificateDer<'_>,
) -> Result<(), String> {
    let anchor = webpki::anchor_from_trusted_cert(anchor).map_err(|e| e.to_string())?;
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// True when `der` is currently within its validity period (for certificates matched by
/// identity rather than by chain).
pub(crate) fn currently_valid(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert.validity().is_valid())
        .unwrap_or(false)
}
