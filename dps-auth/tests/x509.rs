//! X.509 identities loaded from real chains generated with rcgen.
#![cfg(feature = "x509")]

use dps_auth::{
    AuthError, Authenticator, Credentials, IdError, PrivateKeyDer, SasResource, X509Error,
    X509Identity,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

/// A root → intermediate → leaf chain; the leaf's subject is `leaf_dn`.
struct Chain {
    leaf_pem: String,
    intermediate_pem: String,
    leaf_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    leaf_key: KeyPair,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

fn chain_with_subject(leaf_dn: DistinguishedName) -> Chain {
    let root_key = KeyPair::generate().unwrap();
    let root = Issuer::new(ca_params("Test Root CA"), root_key);
    let intermediate_key = KeyPair::generate().unwrap();
    let intermediate_params = ca_params("Test Intermediate CA");
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &root)
        .unwrap();
    let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params.distinguished_name = leaf_dn;
    let leaf = leaf_params
        .signed_by(&leaf_key, &intermediate_issuer)
        .unwrap();
    Chain {
        leaf_pem: leaf.pem(),
        intermediate_pem: intermediate.pem(),
        leaf_der: leaf.der().to_vec(),
        intermediate_der: intermediate.der().to_vec(),
        leaf_key,
    }
}

fn chain_for(cn: &str) -> Chain {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    chain_with_subject(dn)
}

impl Chain {
    fn chain_pem(&self) -> String {
        format!("{}{}", self.leaf_pem, self.intermediate_pem)
    }

    fn pkcs8_pem(&self) -> String {
        self.leaf_key.serialize_pem()
    }

    /// The SEC1 `ECPrivateKey` inside rcgen's PKCS#8 (the content of its OCTET STRING).
    fn sec1_der(&self) -> Vec<u8> {
        let pkcs8 = self.leaf_key.serialized_der();
        // SEQUENCE { INTEGER 0, AlgorithmIdentifier SEQUENCE, OCTET STRING { ECPrivateKey } }
        let (_, body) = der_item(pkcs8);
        let (version_len, _) = der_item(body);
        let rest = &body[version_len..];
        let (alg_len, _) = der_item(rest);
        let rest = &rest[alg_len..];
        assert_eq!(rest[0], 0x04, "OCTET STRING expected");
        der_item(rest).1.to_vec()
    }

    fn sec1_pem(&self) -> String {
        pem("EC PRIVATE KEY", &self.sec1_der())
    }
}

/// Total length and content of the DER item at the start of `der` (definite lengths only).
fn der_item(der: &[u8]) -> (usize, &[u8]) {
    let first = der[1];
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    (header + len, &der[header..header + len])
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[test]
fn loads_chain_and_pkcs8_key() {
    let chain = chain_for("x509-device-01");
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    assert_eq!(id.registration_id(), Ok("x509-device-01"));
    assert_eq!(id.common_name(), Some("x509-device-01"));
    assert_eq!(id.chain_len(), 2);
    assert_eq!(id.leaf().as_ref(), chain.leaf_der.as_slice());
    assert_eq!(id.intermediates().len(), 1);
    assert_eq!(
        id.intermediates()[0].as_ref(),
        chain.intermediate_der.as_slice()
    );
    let certs = id.certificate_chain();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].as_ref(), chain.leaf_der.as_slice());
    match id.private_key().expect("an in-memory key") {
        PrivateKeyDer::Pkcs8(key) => {
            assert_eq!(key.secret_pkcs8_der(), chain.leaf_key.serialized_der());
        }
        other => panic!("unexpected key kind {other:?}"),
    }
}

#[test]
fn loads_sec1_key() {
    let chain = chain_for("sec1-device");
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.sec1_pem().as_bytes()).unwrap();
    match id.private_key().expect("an in-memory key") {
        PrivateKeyDer::Sec1(key) => assert_eq!(key.secret_sec1_der(), chain.sec1_der().as_slice()),
        other => panic!("unexpected key kind {other:?}"),
    }
}

#[test]
fn loads_pkcs1_key() {
    // rcgen cannot generate RSA keys with its ring backend, so this checks the PEM handling
    // only: the section is taken as PKCS#1 and handed on unchanged (the key itself is checked by
    // the TLS library when it is used).
    let chain = chain_for("rsa-device");
    let body = b"\x30\x03\x02\x01\x00 not a real RSA key";
    let key_pem = pem("RSA PRIVATE KEY", body);
    let id = X509Identity::from_pem(chain.chain_pem().as_bytes(), key_pem.as_bytes()).unwrap();
    match id.private_key().expect("an in-memory key") {
        PrivateKeyDer::Pkcs1(key) => assert_eq!(key.secret_pkcs1_der(), body),
        other => panic!("unexpected key kind {other:?}"),
    }
}

#[test]
fn one_combined_file_serves_as_both() {
    let chain = chain_for("combined");
    let combined = format!("{}{}", chain.pkcs8_pem(), chain.chain_pem());
    let id = X509Identity::from_pem(combined.as_bytes(), combined.as_bytes()).unwrap();
    assert_eq!(id.chain_len(), 2);
    assert_eq!(id.leaf().as_ref(), chain.leaf_der.as_slice());
}

#[test]
fn missing_or_unreadable_parts() {
    let chain = chain_for("dev");
    let key = chain.pkcs8_pem();
    let certs = chain.chain_pem();
    assert_eq!(
        X509Identity::from_pem(key.as_bytes(), key.as_bytes()).unwrap_err(),
        X509Error::NoCertificate
    );
    assert_eq!(
        X509Identity::from_pem(certs.as_bytes(), certs.as_bytes()).unwrap_err(),
        X509Error::NoPrivateKey
    );
    let truncated_key = &key[..key.len() - 30];
    assert_eq!(
        X509Identity::from_pem(certs.as_bytes(), truncated_key.as_bytes()).unwrap_err(),
        X509Error::KeyUnreadable
    );
    let bad_base64 = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
    assert_eq!(
        X509Identity::from_pem(certs.as_bytes(), bad_base64.as_bytes()).unwrap_err(),
        X509Error::KeyUnreadable
    );
    let truncated_chain = &certs[..certs.len() - 30];
    assert_eq!(
        X509Identity::from_pem(truncated_chain.as_bytes(), key.as_bytes()).unwrap_err(),
        X509Error::InvalidCertificatePem
    );
    let not_a_cert = format!("{}{}", chain.leaf_pem, pem("CERTIFICATE", b"\x30\x00"));
    assert_eq!(
        X509Identity::from_pem(not_a_cert.as_bytes(), key.as_bytes()).unwrap_err(),
        X509Error::InvalidCertificate { index: 1 }
    );
}

#[test]
fn common_name_rules() {
    let mut no_cn = DistinguishedName::new();
    no_cn.push(DnType::OrganizationName, "Contoso");
    let chain = chain_with_subject(no_cn);
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    assert_eq!(id.common_name(), None);
    assert_eq!(id.registration_id(), Err(X509Error::NoCommonName));

    let long = "a".repeat(65);
    let chain = chain_for(&long);
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    assert_eq!(id.common_name(), Some(long.as_str()));
    assert_eq!(
        id.registration_id(),
        Err(X509Error::CommonNameTooLong { len: 65 })
    );
    let max = "a".repeat(64);
    let chain = chain_for(&max);
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    assert_eq!(id.registration_id(), Ok(max.as_str()));

    let chain = chain_for("bad id");
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    assert!(matches!(
        id.registration_id(),
        Err(X509Error::InvalidCommonName(IdError::InvalidChar {
            ch: ' ',
            ..
        }))
    ));
}

#[test]
fn registration_id_check_and_authenticator() {
    let chain = chain_for("Device-7");
    let id =
        X509Identity::from_pem(chain.chain_pem().as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    assert!(id.clone().with_registration_id_check("device-7").is_ok());
    assert_eq!(
        id.clone()
            .with_registration_id_check("device-8")
            .unwrap_err(),
        X509Error::RegistrationIdMismatch {
            expected: "device-8".into(),
            actual: "Device-7".into()
        }
    );

    let ok = id
        .credentials(&SasResource::dps("0ne00000A0A", "Device-7"), 0)
        .unwrap();
    assert!(matches!(&ok, Credentials::X509(x) if x.chain_len() == 2));
    assert_eq!(ok.password(), None);
    assert_eq!(ok.expiry_unix(), None);
    let mismatch = id.credentials(&SasResource::dps("0ne00000A0A", "other"), 0);
    assert!(matches!(
        mismatch,
        Err(AuthError::X509(X509Error::RegistrationIdMismatch { .. }))
    ));
    // Hub device ids need not equal the common name.
    assert!(
        id.credentials(
            &SasResource::hub_device("h.azure-devices.net", "anything"),
            0
        )
        .is_ok()
    );
}

#[test]
fn loads_from_files() {
    let chain = chain_for("file-device");
    let dir = std::env::temp_dir().join(format!("dps-auth-x509-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("chain.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, chain.chain_pem()).unwrap();
    std::fs::write(&key_path, chain.pkcs8_pem()).unwrap();
    let id = X509Identity::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(id.registration_id(), Ok("file-device"));
    let missing = dir.join("missing.pem");
    let err = X509Identity::from_pem_files(&cert_path, &missing).unwrap_err();
    assert_eq!(
        err,
        X509Error::Io {
            path: missing.clone(),
            kind: std::io::ErrorKind::NotFound
        }
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chain_out_of_order_still_loads() {
    let chain = chain_for("reordered");
    let reordered = format!("{}{}", chain.intermediate_pem, chain.leaf_pem);
    let id = X509Identity::from_pem(reordered.as_bytes(), chain.pkcs8_pem().as_bytes()).unwrap();
    // The first certificate is taken as the leaf: here the intermediate.
    assert_eq!(id.common_name(), Some("Test Intermediate CA"));
}
