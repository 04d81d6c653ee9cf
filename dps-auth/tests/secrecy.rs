//! Keys, signatures and tokens never show up in `Debug`, `Display`, errors or `tracing` events.
#![cfg(all(feature = "sas", feature = "x509"))]

use std::sync::Arc;

use dps_auth::{
    Authenticator, GroupKey, SasAuthenticator, SasResource, SasStyle, SymmetricKey, X509Identity,
    generate_sas, verify_sas,
};

const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
const DERIVED_KEY: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";
const REGISTRATION_ID: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";

/// Fails when `text` contains `secret` or any 8-character piece of it (which catches partial
/// leaks and different paddings).
fn assert_no_leak(text: &str, secret: &str) {
    let secret_bytes = secret.as_bytes();
    for window in secret_bytes.windows(8.min(secret_bytes.len())) {
        let piece = std::str::from_utf8(window).unwrap();
        assert!(
            !text.contains(piece),
            "{piece:?} of a secret leaked in {text:?}"
        );
    }
}

/// The signature's base64 text inside a token (percent-decoded).
fn signature_of(token: &str) -> String {
    let parsed = dps_auth::ParsedSas::parse(token).unwrap();
    parsed.signature_base64().to_owned()
}

#[test]
fn debug_output_is_redacted() {
    let group = GroupKey::from_base64(GROUP_KEY).unwrap();
    assert_eq!(format!("{group:?}"), "GroupKey(<redacted>)");
    let key = group.derive(REGISTRATION_ID).unwrap();
    assert_eq!(format!("{key:?}"), "SymmetricKey(<redacted>)");
    assert_eq!(format!("{key:#?}"), "SymmetricKey(<redacted>)");

    let resource = SasResource::dps("0ne00000A0A", REGISTRATION_ID);
    let token = generate_sas(&key, &resource, &SasStyle::documented_dps(), 1_700_000_000).unwrap();
    let signature = signature_of(token.expose());
    assert_eq!(format!("{token:?}"), "SasToken(<redacted>)");

    let auth = SasAuthenticator::new(key.clone());
    let credentials = auth.credentials(&resource, 1_700_000_000).unwrap();
    let parsed = token.parse().unwrap();
    for debug in [
        format!("{auth:?}"),
        format!("{auth:#?}"),
        format!("{credentials:?}"),
        format!("{parsed:?}"),
        format!("{:?}", Arc::new(key.clone())),
    ] {
        assert_no_leak(&debug, DERIVED_KEY);
        assert_no_leak(&debug, GROUP_KEY);
        assert_no_leak(&debug, &signature);
        assert_no_leak(&debug, &signature_of(credentials.password().unwrap()));
    }
}

#[test]
fn errors_from_bad_input_never_quote_it() {
    let mut errors = Vec::new();
    let almost = format!("{DERIVED_KEY}!");
    errors.push(format!(
        "{0} {0:?}",
        SymmetricKey::from_base64(&almost).unwrap_err()
    ));
    let almost_group = format!("{GROUP_KEY}#");
    errors.push(format!(
        "{0} {0:?}",
        GroupKey::from_base64(&almost_group).unwrap_err()
    ));
    // The key passed where the registration id belongs.
    let group = GroupKey::from_base64(GROUP_KEY).unwrap();
    errors.push(format!("{0} {0:?}", group.derive(DERIVED_KEY).unwrap_err()));

    let key = SymmetricKey::from_base64(DERIVED_KEY).unwrap();
    let resource = SasResource::dps("0ne00000A0A", REGISTRATION_ID);
    let token = generate_sas(&key, &resource, &SasStyle::documented_dps(), 100).unwrap();
    let signature = signature_of(token.expose());
    let wrong_key = SymmetricKey::from_base64("a2V5MQ==").unwrap();
    let tampered = token
        .expose()
        .replace("se=100", &format!("se=100&x={signature}"));
    let truncated = token.expose().replace("&se=100", "");
    for (text, verify_key) in [
        (token.expose(), &wrong_key),
        (token.expose(), &key),
        (tampered.as_str(), &key),
        (truncated.as_str(), &key),
    ] {
        let err = verify_sas(text, verify_key, &resource, 1_000).unwrap_err();
        errors.push(format!("{err} {err:?}"));
    }

    // A key file whose PEM is broken, with the key's text inside.
    let bad_pem = format!("-----BEGIN PRIVATE KEY-----\n{GROUP_KEY}!\n-----END PRIVATE KEY-----\n");
    let cert = rcgen::generate_simple_self_signed(vec!["dev".to_owned()]).unwrap();
    let err = X509Identity::from_pem(cert.cert.pem().as_bytes(), bad_pem.as_bytes()).unwrap_err();
    errors.push(format!("{err} {err:?}"));

    for error in &errors {
        assert_no_leak(error, DERIVED_KEY);
        assert_no_leak(error, GROUP_KEY);
        assert_no_leak(error, &signature);
    }
}

#[test]
fn x509_debug_shows_identity_not_key() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "x509-secrecy");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key_pem = key.serialize_pem();
    let id = X509Identity::from_pem(cert.pem().as_bytes(), key_pem.as_bytes()).unwrap();
    let debug = format!("{id:?}");
    assert!(
        debug.contains("x509-secrecy") && debug.contains("chain_len: 1"),
        "{debug}"
    );
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_no_leak(&debug, &key_body);
    let credentials = id
        .credentials(&SasResource::dps("0ne00000A0A", "x509-secrecy"), 0)
        .unwrap();
    assert_no_leak(&format!("{credentials:?}"), &key_body);
}
