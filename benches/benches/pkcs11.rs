//! Keys in a PKCS#11 token (SoftHSM2) against software keys: a SAS signature, a TLS handshake
//! with the emulator under an EC P-256 client key, and a fleet of group-derived devices minting
//! their first token from one shared token (devices/s).
//!
//! `cargo bench -p dps-benches --bench pkcs11` (needs `softhsm2`; the module path may be given
//! in `DPS_PKCS11_MODULE`). SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialized, so
//! the benchmark creates a token in a temporary directory and runs itself again with it set.

#![allow(missing_docs)] // criterion generates undocumented public items.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use dps_auth::pkcs11::{KeyAlgorithm, Pkcs11HmacKey, Pkcs11PrivateKey, Pkcs11Token, Pkcs11Uri};
use dps_auth::{GroupKey, SasResource, SasStyle, SymmetricKey, X509Identity, generate_sas};
use dps_client::TlsConfig;
use dps_emulator::{Emulator, EmulatorConfig};

const DIR_ENV: &str = "DPS_BENCH_SOFTHSM_DIR";
const PIN: &str = "246810";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const FLEET: usize = 1_000;

fn module() -> PathBuf {
    std::env::var_os("DPS_PKCS11_MODULE").map_or_else(
        || PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        PathBuf::from,
    )
}

/// Creates a token directory and runs this benchmark again with `SOFTHSM2_CONF` pointing at it.
fn relaunch() -> ! {
    let dir = std::env::temp_dir().join(format!("dps-bench-softhsm-{}", std::process::id()));
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("a temporary directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("the SoftHSM2 configuration");
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            PIN,
            "--so-pin",
            "13579",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .status()
        .expect("softhsm2-util (install softhsm2)");
    assert!(init.success(), "softhsm2-util --init-token failed");
    let status = Command::new(std::env::current_exe().expect("this executable"))
        .args(std::env::args_os().skip(1))
        .env("SOFTHSM2_CONF", &conf)
        .env(DIR_ENV, &dir)
        .status()
        .expect("the benchmark runs");
    let _ = std::fs::remove_dir_all(&dir);
    std::process::exit(status.code().unwrap_or(1));
}

fn token() -> Pkcs11Token {
    let uri = Pkcs11Uri::parse(&format!("pkcs11:token=bench?pin-value={PIN}")).expect("a URI");
    Pkcs11Token::open(Some(&module()), &uri).expect("the SoftHSM2 token")
}

fn key_bytes() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .expect("base64")
}

fn sas(c: &mut Criterion, token: &Pkcs11Token) {
    let software = SymmetricKey::from_base64(KEY).expect("a key");
    let hsm = Pkcs11HmacKey::import(token, "sas", &key_bytes()).expect("imported");
    let resource = SasResource::dps("0ne00000A0A", "bench-device");
    let style = SasStyle::documented_dps();
    let mut group = c.benchmark_group("sas_token");
    group.bench_function("software", |b| {
        b.iter(|| generate_sas(&software, &resource, &style, 1_700_000_000));
    });
    group.bench_function("softhsm2", |b| {
        b.iter(|| generate_sas(&hsm, &resource, &style, 1_700_000_000));
    });
    group.finish();
}

/// The token's public key, for rcgen to certify.
struct TokenPublicKey(Vec<u8>);

impl rcgen::PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

fn identities(token: &Pkcs11Token) -> (X509Identity, X509Identity) {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |cn: &str| {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params
    };
    let software_key = rcgen::KeyPair::generate().expect("a key");
    let cert = leaf("bench-software")
        .signed_by(&software_key, &issuer)
        .expect("a certificate");
    let software = X509Identity::from_pem(
        cert.pem().as_bytes(),
        software_key.serialize_pem().as_bytes(),
    )
    .expect("an identity");
    let hsm_key = Pkcs11PrivateKey::generate(token, "tls-ec", &[1], KeyAlgorithm::EcP256)
        .expect("a key pair");
    let public = TokenPublicKey(hsm_key.public_key_raw().expect("its public key"));
    let cert = leaf("bench-softhsm2")
        .signed_by(&public, &issuer)
        .expect("a certificate");
    let hsm = X509Identity::from_signer(vec![cert.der().clone()], Arc::new(hsm_key))
        .expect("an identity");
    (software, hsm)
}

fn handshake(c: &mut Criterion, token: &Pkcs11Token, dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let emu = rt
        .block_on(Emulator::start(EmulatorConfig::new(dir.join("emu"))))
        .expect("the emulator");
    let tls = TlsConfig::default()
        .webpki_roots(false)
        .add_root(emu.ca_der().clone());
    let addr = emu.mqtt_addr();
    let (software, hsm) = identities(token);
    let mut group = c.benchmark_group("tls_handshake_ec_p256");
    for (name, identity) in [("software", &software), ("softhsm2", &hsm)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let stream = tokio::net::TcpStream::connect(addr)
                        .await
                        .expect("connected");
                    tls.handshake("localhost", stream, Some(identity))
                        .await
                        .expect("handshake")
                })
            });
        });
    }
    group.finish();
    drop(emu);
}

/// A gateway's fleet: every device derives its key from the group key and mints its first DPS
/// token, 8 threads sharing the one token (or the software group key).
fn fleet(c: &mut Criterion, token: &Pkcs11Token) {
    let software = GroupKey::from_base64(KEY).expect("a group key");
    let hsm = Pkcs11HmacKey::import(token, "group", &key_bytes()).expect("imported");
    let style = SasStyle::documented_dps();
    let mut group = c.benchmark_group("fleet_group_devices");
    group.throughput(Throughput::Elements(FLEET as u64));
    group.sample_size(10);
    let run = |device: &(dyn Fn(&str) + Sync)| {
        std::thread::scope(|s| {
            for t in 0..8 {
                s.spawn(move || {
                    for i in (t..FLEET).step_by(8) {
                        device(&format!("gw-device-{i}"));
                    }
                });
            }
        });
    };
    group.bench_function(BenchmarkId::new("software", FLEET), |b| {
        b.iter(|| {
            run(&|id| {
                let key = software.derive(id).expect("derived");
                let resource = SasResource::dps("0ne00000A0A", id);
                generate_sas(&key, &resource, &style, 1_700_000_000).expect("a token");
            });
        });
    });
    group.bench_function(BenchmarkId::new("softhsm2", FLEET), |b| {
        b.iter(|| {
            run(&|id| {
                let key = hsm.derive_device_key(id).expect("derived in the token");
                let resource = SasResource::dps("0ne00000A0A", id);
                generate_sas(&key, &resource, &style, 1_700_000_000).expect("a token");
            });
        });
    });
    group.finish();
}

fn main() {
    let Some(dir) = std::env::var_os(DIR_ENV).map(PathBuf::from) else {
        if std::env::args().any(|a| a == "--list") || !module().exists() {
            // `cargo test --benches` lists benchmarks; without SoftHSM2 there is nothing to run.
            eprintln!("pkcs11 benchmarks need SoftHSM2 at {}", module().display());
            return;
        }
        relaunch();
    };
    let token = token();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    sas(&mut c, &token);
    handshake(&mut c, &token, &dir);
    fleet(&mut c, &token);
    c.final_summary();
}
