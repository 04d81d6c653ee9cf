//! Keys in a real PKCS#11 token (SoftHSM2) against the in-process emulator, over MQTT and
//! WebSocket: SAS (individual and group-derived inside the token) and X.509 (EC P-256, RSA 2048
//! and 3072, generated in the token), provisioning, hub connection and telemetry, through the
//! library and through `dps provision` / `dps send`; plus the typed errors.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, when the module is initialized, so each test
//! creates its token directory and runs its body in a child process of this test binary with
//! that variable set (the parent checks the child ran and passed). Without the module the tests
//! are skipped, except under `CI` or `DPS_PKCS11_REQUIRED` (which `.ci/run` exports after installing
//! SoftHSM2), where a missing module fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use dps_auth::pkcs11::{
    ChainSource, KeyAlgorithm, Pkcs11Error, Pkcs11HmacKey, Pkcs11PrivateKey, Pkcs11Token,
    Pkcs11Uri, load_identity, store_chain,
};
use dps_auth::{Authenticator, GroupKey, SasAuthenticator, Signer as _, SymmetricKey};
use dps_client::{ProvisioningClient, TlsConfig, WebSocketTransport};
use dps_emulator::{Behaviour, Emulator, EmulatorConfig, Faults, HubEventKind};
use hub_client::{Features, HubClient, Message, MqttTransport};
use serde_json::json;

const DIR_ENV: &str = "DPS_TEST_SOFTHSM_DIR";
const MODULE_ENV: &str = "DPS_TEST_SOFTHSM_MODULE";
const PIN: &str = "246810";
const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The child's view: the module and a scratch directory.
struct Fx {
    module: PathBuf,
    dir: PathBuf,
}

impl Fx {
    fn uri(&self, object: &str, kind: &str) -> String {
        format!("pkcs11:token=dps;object={object};type={kind}?pin-value={PIN}")
    }

    fn token(&self) -> Pkcs11Token {
        Pkcs11Token::open(
            Some(&self.module),
            &parse(&format!("pkcs11:token=dps?pin-value={PIN}")),
        )
        .unwrap()
    }
}

fn parse(uri: &str) -> Pkcs11Uri {
    Pkcs11Uri::parse(uri).unwrap()
}

/// In the child: the fixture. In the parent: sets up a token, runs `name` in a child, asserts
/// it passed, and returns `None`.
fn softhsm(name: &str) -> Option<Fx> {
    if let (Ok(dir), Ok(module)) = (std::env::var(DIR_ENV), std::env::var(MODULE_ENV)) {
        return Some(Fx {
            module: module.into(),
            dir: dir.into(),
        });
    }
    let module = std::env::var_os("DPS_PKCS11_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
    if !module.exists() {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("DPS_PKCS11_REQUIRED").is_none(),
            "SoftHSM2 is not installed at {} (CI installs it in .ci/run)",
            module.display()
        );
        eprintln!(
            "skipping {name}: no SoftHSM2 module at {}",
            module.display()
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "dps",
            "--pin",
            PIN,
            "--so-pin",
            "13579",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(DIR_ENV, dir.path())
        .env(MODULE_ENV, &module)
        .env_remove("DPS_PKCS11_MODULE")
        .env_remove("DPS_PKCS11_PIN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "{name} failed in its SoftHSM2 process:\n{stdout}\n{stderr}"
    );
    None
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn emulator(dir: &Path) -> Emulator {
    let behaviour = Behaviour {
        retry_after_seconds: 0,
        polls_before_assignment: 1,
        faults: Faults::default(),
        ..Behaviour::default()
    };
    let emu = Emulator::start(EmulatorConfig::new(dir.join("emu")).behaviour(behaviour))
        .await
        .unwrap();
    std::fs::write(dir.join("ca.pem"), emu.ca_pem()).unwrap();
    emu
}

fn tls(emu: &Emulator) -> TlsConfig {
    TlsConfig::default()
        .webpki_roots(false)
        .add_root(emu.ca_der().clone())
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Mqtt,
    Ws,
}

impl Via {
    fn port(self, emu: &Emulator) -> u16 {
        match self {
            Self::Mqtt => emu.mqtt_addr().port(),
            Self::Ws => emu.https_addr().port(),
        }
    }
}

/// Provisions `registration_id` over `via`, connects to its hub and sends one message; checks
/// the hub received it.
async fn provision_and_send(
    emu: &Emulator,
    via: Via,
    registration_id: &str,
    auth: impl Authenticator + Clone + 'static,
) {
    let endpoint = format!("localhost:{}", via.port(emu));
    let client = ProvisioningClient::new(emu.id_scope(), registration_id, auth.clone())
        .endpoint(&endpoint)
        .tls(tls(emu))
        .deadline(Duration::from_secs(30));
    let client = match via {
        Via::Mqtt => client,
        Via::Ws => client.transport(WebSocketTransport::new()),
    };
    let assignment = client.register().await.unwrap();
    assert_eq!(assignment.device_id(), registration_id);
    let hub_name = assignment.assigned_hub().to_owned();
    let before = emu.hub_events(&hub_name, 0).len();
    let builder = HubClient::builder(&hub_name, registration_id, auth)
        .endpoint(&endpoint)
        .tls(tls(emu))
        .features(Features::NONE)
        .initial_connect_timeout(Duration::from_secs(30));
    let builder = match via {
        Via::Mqtt => builder.transport(MqttTransport::new()),
        Via::Ws => builder.transport(hub_client::WebSocketTransport::new()),
    };
    let hub = builder.connect().await.unwrap();
    let receipt = hub
        .try_send(Message::json(&json!({ "via": format!("{via:?}") })).unwrap())
        .unwrap();
    receipt.await.unwrap();
    hub.close().await;
    let telemetry = emu
        .hub_events(&hub_name, 0)
        .into_iter()
        .skip(before)
        .filter(|e| e.kind == HubEventKind::Telemetry && e.device_id == registration_id)
        .count();
    assert_eq!(telemetry, 1, "{registration_id} over {via:?}");
}

/// Runs `dps` with `args`; its output.
async fn dps(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dps"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `dps provision` then `dps send` with the token key `key_args`, over `via`.
async fn cli_provision_and_send(fx: &Fx, emu: &Emulator, via: Via, id: &str, key_args: &[String]) {
    let endpoint = format!("localhost:{}", via.port(emu));
    let transport = match via {
        Via::Mqtt => "mqtt",
        Via::Ws => "ws",
    };
    let ca = fx.dir.join("ca.pem").display().to_string();
    let mut args: Vec<String> = [
        "provision",
        "--id-scope",
        emu.id_scope(),
        "--registration-id",
        id,
        "--endpoint",
        &endpoint,
        "--transport",
        transport,
        "--ca-file",
        &ca,
        "--pkcs11-module",
        &fx.module.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend_from_slice(key_args);
    let out = dps(args).await;
    assert!(
        out.status.success(),
        "dps provision {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registration = fx.dir.join(format!("{id}-{transport}.json"));
    std::fs::write(&registration, &out.stdout).unwrap();
    let hub_name = emu.default_hub().to_owned();
    let before = emu.hub_events(&hub_name, 0).len();
    let mut args: Vec<String> = [
        "send",
        "--from-registration",
        &registration.display().to_string(),
        "--endpoint",
        &endpoint,
        "--transport",
        transport,
        "--ca-file",
        &ca,
        "--pkcs11-module",
        &fx.module.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // `send` takes the device key (or the group key) the same way; `--registration-id` is not
    // one of its options.
    args.extend_from_slice(key_args);
    let out = dps(args).await;
    assert!(
        out.status.success(),
        "dps send {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let telemetry = emu
        .hub_events(&hub_name, 0)
        .into_iter()
        .skip(before)
        .filter(|e| e.kind == HubEventKind::Telemetry && e.device_id == id)
        .count();
    assert_eq!(telemetry, 1, "dps send {id} over {via:?}");
}

#[test]
fn sas_keys_in_the_token() {
    let Some(fx) = softhsm("sas_keys_in_the_token") else {
        return;
    };
    runtime().block_on(async {
        let emu = emulator(&fx.dir).await;
        let token = fx.token();

        // Individual enrollment: the key DPS issued is imported and only used from then on.
        let created = emu
            .put_enrollment(
                serde_json::from_value(json!({
                    "registrationId": "hsm-sas",
                    "attestation": { "type": "symmetricKey" },
                }))
                .unwrap(),
                None,
            )
            .await
            .unwrap();
        let issued = created.settings.attestation.symmetric_key.unwrap();
        let issued = issued.primary_key.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&issued)
            .unwrap();
        let key = Pkcs11HmacKey::import(&token, "hsm-sas", &bytes).unwrap();
        assert!(key.is_protected().unwrap(), "sensitive and not extractable");
        let software = SymmetricKey::from_base64(&issued).unwrap();
        assert_eq!(key.sign(b"msg").unwrap(), software.sign(b"msg").unwrap());
        assert!(!format!("{key:?}").contains(&issued));
        for via in [Via::Mqtt, Via::Ws] {
            provision_and_send(&emu, via, "hsm-sas", SasAuthenticator::new(key.clone())).await;
        }

        // Group enrollment: the group key stays in the token, device keys are derived in it.
        let created = emu
            .put_enrollment_group(
                serde_json::from_value(json!({
                    "enrollmentGroupId": "hsm-group",
                    "attestation": { "type": "symmetricKey" },
                }))
                .unwrap(),
                None,
            )
            .await
            .unwrap();
        let group_b64 = created.settings.attestation.symmetric_key.unwrap();
        let group_b64 = group_b64.primary_key.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&group_b64)
            .unwrap();
        let group = Pkcs11HmacKey::import(&token, "hsm-group", &bytes).unwrap();
        assert!(group.is_protected().unwrap());
        let software_group = GroupKey::from_base64(&group_b64).unwrap();
        for (via, id) in [(Via::Mqtt, "hsm-grp-mqtt"), (Via::Ws, "hsm-grp-ws")] {
            let device = group.derive_device_key(id).unwrap();
            assert!(device.is_protected().unwrap());
            let expected = software_group.derive(id).unwrap();
            assert_eq!(device.sign(b"m").unwrap(), expected.sign(b"m").unwrap());
            provision_and_send(&emu, via, id, SasAuthenticator::new(device)).await;
        }

        // Many devices signing at once through the one token: the session pool serves them all
        // and every signature is right.
        let devices: Vec<(String, Pkcs11HmacKey)> = (0..16)
            .map(|i| {
                let id = format!("gw-{i}");
                let key = group.derive_device_key(&id).unwrap();
                (id, key)
            })
            .collect();
        std::thread::scope(|s| {
            for (id, key) in &devices {
                let software = software_group.derive(id).unwrap();
                s.spawn(move || {
                    for n in 0..50u32 {
                        let message = format!("{id}/{n}");
                        assert_eq!(
                            key.sign(message.as_bytes()).unwrap(),
                            software.sign(message.as_bytes()).unwrap()
                        );
                    }
                });
            }
        });

        // The same through the command line, with only URIs and the module.
        for via in [Via::Mqtt, Via::Ws] {
            let key_uri = vec!["--key-uri".to_owned(), fx.uri("hsm-sas", "secret-key")];
            cli_provision_and_send(&fx, &emu, via, "hsm-sas", &key_uri).await;
        }
        let group_uri = vec![
            "--group-key-uri".to_owned(),
            fx.uri("hsm-group", "secret-key"),
        ];
        cli_provision_and_send(&fx, &emu, Via::Mqtt, "hsm-grp-cli", &group_uri).await;
    });
}

/// The token's public key, for rcgen to certify.
struct TokenPublicKey {
    raw: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

#[test]
fn x509_keys_in_the_token() {
    let Some(fx) = softhsm("x509_keys_in_the_token") else {
        return;
    };
    runtime().block_on(async {
        let emu = emulator(&fx.dir).await;
        let token = fx.token();

        // A test root CA (in software: it is the issuer, not the device) and a group for it.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hsm test root");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        emu.put_enrollment_group(
            serde_json::from_value(json!({
                "enrollmentGroupId": "hsm-x509",
                "attestation": {
                    "type": "x509",
                    "x509": { "signingCertificates": { "primary": { "certificate": ca_cert.pem() } } },
                },
            }))
            .unwrap(),
            None,
        )
        .await
        .unwrap();

        let keys = [
            ("hsm-ec", KeyAlgorithm::EcP256, &rcgen::PKCS_ECDSA_P256_SHA256),
            ("hsm-rsa2048", KeyAlgorithm::Rsa(2048), &rcgen::PKCS_RSA_SHA256),
            ("hsm-rsa3072", KeyAlgorithm::Rsa(3072), &rcgen::PKCS_RSA_SHA256),
        ];
        for (index, (id, algorithm, signature)) in keys.into_iter().enumerate() {
            let key_id = [u8::try_from(index).unwrap() + 1];
            let key = Pkcs11PrivateKey::generate(&token, id, &key_id, algorithm).unwrap();
            assert!(key.is_protected().unwrap(), "{id} is sensitive, not extractable");
            assert!(key.try_read_secret().is_err(), "{id}'s value cannot be read");

            // The certificate is issued for the token's public key; the chain is stored back.
            let public = TokenPublicKey {
                raw: key.public_key_raw().unwrap(),
                algorithm: signature,
            };
            let mut params = rcgen::CertificateParams::default();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(rcgen::DnType::CommonName, id);
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
            let cert = params.signed_by(&public, &issuer).unwrap();
            store_chain(&token, id, &key_id, &[cert.der().clone()]).unwrap();
            std::fs::write(fx.dir.join(format!("{id}.pem")), cert.pem()).unwrap();

            let uri = parse(&fx.uri(id, "private"));
            let identity = load_identity(Some(&fx.module), &uri, ChainSource::Token).unwrap();
            assert_eq!(identity.registration_id().unwrap(), id);
            assert!(identity.private_key().is_none(), "the key is not in memory");
            for via in [Via::Mqtt, Via::Ws] {
                provision_and_send(&emu, via, id, identity.clone()).await;
            }
        }

        // Certificate issuance: the key pair is generated in the token, the token signs the CSR,
        // DPS issues the certificate and the chain is stored back next to the key.
        let created = emu
            .put_enrollment_group(
                serde_json::from_value(json!({
                    "enrollmentGroupId": "hsm-csr",
                    "attestation": { "type": "symmetricKey" },
                }))
                .unwrap(),
                None,
            )
            .await
            .unwrap();
        let group_b64 = created.settings.attestation.symmetric_key.unwrap();
        let group_key = GroupKey::from_base64(group_b64.primary_key.as_deref().unwrap()).unwrap();
        emu.put_enrollment_group(
            serde_json::from_value(json!({
                "enrollmentGroupId": "issued",
                "attestation": {
                    "type": "x509",
                    "x509": { "signingCertificates": { "primary": { "certificate": emu.ca_pem() } } },
                },
            }))
            .unwrap(),
            None,
        )
        .await
        .unwrap();
        let id = "hsm-csr-dev";
        let key = Pkcs11PrivateKey::generate(&token, id, &[9], KeyAlgorithm::EcP256).unwrap();
        let csr = key.certificate_signing_request(id).unwrap();
        let assignment = ProvisioningClient::new(emu.id_scope(), id, group_key.derive(id).unwrap())
            .endpoint(format!("localhost:{}", emu.mqtt_addr().port()))
            .tls(tls(&emu))
            .csr(&csr)
            .register()
            .await
            .unwrap();
        let chain: Vec<_> = assignment
            .issued_certificate_chain()
            .iter()
            .map(|b64| {
                dps_auth::CertificateDer::from(
                    base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
                )
            })
            .collect();
        assert_eq!(chain.len(), 2, "leaf then the issuing CA");
        store_chain(&token, id, &[9], &chain).unwrap();
        let uri = parse(&fx.uri(id, "private"));
        let identity = load_identity(Some(&fx.module), &uri, ChainSource::Token).unwrap();
        assert_eq!(identity.chain_len(), 2, "the whole chain came back from the token");
        for via in [Via::Mqtt, Via::Ws] {
            provision_and_send(&emu, via, id, identity.clone()).await;
        }

        // The same issuance through the command line: authenticate with the group key (in the
        // token too), get a certificate for a key generated in the token, then use it.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(group_b64.primary_key.as_deref().unwrap())
            .unwrap();
        Pkcs11HmacKey::import(&token, "hsm-csr-group", &bytes).unwrap();
        let out = dps(vec![
            "provision".into(),
            "--id-scope".into(),
            emu.id_scope().into(),
            "--registration-id".into(),
            "hsm-cli-csr".into(),
            "--endpoint".into(),
            format!("localhost:{}", emu.mqtt_addr().port()),
            "--ca-file".into(),
            fx.dir.join("ca.pem").display().to_string(),
            "--pkcs11-module".into(),
            fx.module.display().to_string(),
            "--group-key-uri".into(),
            fx.uri("hsm-csr-group", "secret-key"),
            "--csr-key-uri".into(),
            fx.uri("hsm-cli-csr", "private"),
        ])
        .await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let issued = load_identity(
            Some(&fx.module),
            &parse(&fx.uri("hsm-cli-csr", "private")),
            ChainSource::Token,
        )
        .unwrap();
        assert_eq!(issued.registration_id().unwrap(), "hsm-cli-csr");
        assert_eq!(issued.chain_len(), 2);
        let csr_key = vec!["--key-uri".to_owned(), fx.uri("hsm-cli-csr", "private")];
        cli_provision_and_send(&fx, &emu, Via::Ws, "hsm-cli-csr", &csr_key).await;

        // Through the command line: chain from the token (EC) and from a PEM file (RSA).
        for via in [Via::Mqtt, Via::Ws] {
            let ec = vec!["--key-uri".to_owned(), fx.uri("hsm-ec", "private")];
            cli_provision_and_send(&fx, &emu, via, "hsm-ec", &ec).await;
        }
        let rsa = vec![
            "--key-uri".to_owned(),
            fx.uri("hsm-rsa3072", "private"),
            "--cert".to_owned(),
            fx.dir.join("hsm-rsa3072.pem").display().to_string(),
        ];
        cli_provision_and_send(&fx, &emu, Via::Mqtt, "hsm-rsa3072", &rsa).await;
    });
}

#[test]
fn typed_errors() {
    let Some(fx) = softhsm("typed_errors") else {
        return;
    };
    // A wrong PIN, before anything logged in to the token.
    let wrong = Pkcs11Token::open(
        Some(&fx.module),
        &parse("pkcs11:token=dps?pin-value=111111"),
    );
    let err = wrong.unwrap_err();
    assert!(matches!(err, Pkcs11Error::WrongPin), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("111111"));
    // A PIN file that does not exist.
    let err = Pkcs11Token::open(
        Some(&fx.module),
        &parse("pkcs11:token=dps?pin-source=file:/nonexistent/pin"),
    )
    .unwrap_err();
    assert!(
        matches!(err, Pkcs11Error::PinSourceUnreadable { .. }),
        "{err:?}"
    );
    // No module given anywhere, and a module that does not exist.
    let err = Pkcs11Token::open(None, &parse("pkcs11:token=dps")).unwrap_err();
    assert!(matches!(err, Pkcs11Error::NoModule), "{err:?}");
    let err = Pkcs11Token::open(
        Some(Path::new("/nonexistent/libpkcs11.so")),
        &parse("pkcs11:token=dps"),
    )
    .unwrap_err();
    assert!(
        matches!(err, Pkcs11Error::ModuleUnavailable { .. }),
        "{err:?}"
    );
    // A token that does not exist.
    let err =
        Pkcs11Token::open(Some(&fx.module), &parse("pkcs11:token=absent?pin-value=1")).unwrap_err();
    assert!(matches!(err, Pkcs11Error::TokenNotFound { .. }), "{err:?}");
    // Objects that do not exist, with the right PIN.
    let uri = parse(&fx.uri("absent", "secret-key"));
    let err = Pkcs11HmacKey::open(Some(&fx.module), &uri).unwrap_err();
    assert!(matches!(err, Pkcs11Error::ObjectNotFound { .. }), "{err:?}");
    let err = Pkcs11PrivateKey::open(Some(&fx.module), &uri).unwrap_err();
    assert!(matches!(err, Pkcs11Error::ObjectNotFound { .. }), "{err:?}");
    // An HMAC key is not a TLS key.
    let token = fx.token();
    let _hmac = Pkcs11HmacKey::import(&token, "not-a-tls-key", &[7; 32]).unwrap();
    let err = Pkcs11PrivateKey::open(
        Some(&fx.module),
        &parse(&fx.uri("not-a-tls-key", "private")),
    )
    .unwrap_err();
    assert!(matches!(err, Pkcs11Error::ObjectNotFound { .. }), "{err:?}");

    // The command line reports them as invalid input, without the PIN.
    let out = Command::new(env!("CARGO_BIN_EXE_dps"))
        .args([
            "provision",
            "--id-scope",
            "0ne00000000",
            "--registration-id",
            "absent",
            "--key-uri",
            &fx.uri("absent", "secret-key"),
            "--pkcs11-module",
            &fx.module.display().to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no PKCS#11 object"), "{stderr}");
    assert!(!stderr.contains(PIN), "{stderr}");
}
