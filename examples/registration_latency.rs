//! Measures single-registration latency against the embedded emulator (retry-after 0).
//!
//! `cargo run --release --example registration_latency -- [RUNS] [POLLS]` (defaults 30 and 1).
//! With POLLS = 1 the device registers, gets `assigning` with `retry-after=0`, polls once and gets
//! the assignment; the client's `retry-after` floor is set to 0 for the measurement (the default
//! floor of 1 s protects the real service from poll storms). POLLS = 0 answers the registration
//! request directly. Each run opens a new TLS connection, as a fresh device would.

use std::time::{Duration, Instant};

use dps_auth::SymmetricKey;
use dps_client::{ProvisioningClient, Timing, TlsConfig};
use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentSettings, IndividualEnrollment,
};
use dps_emulator::{Behaviour, Emulator, EmulatorConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(Ok(30), |a| a.parse())?;
    let polls: u32 = args.next().map_or(Ok(1), |a| a.parse())?;

    let dir = tempfile::tempdir()?;
    let emulator = Emulator::start(EmulatorConfig::new(dir.path()).behaviour(Behaviour {
        retry_after_seconds: 0,
        polls_before_assignment: polls,
        ..Behaviour::default()
    }))
    .await?;
    let enrollment = emulator
        .put_enrollment(
            IndividualEnrollment {
                registration_id: "latency-device".into(),
                device_id: None,
                registration_state: None,
                optional_device_information: None,
                settings: EnrollmentSettings {
                    attestation: AttestationMechanism {
                        kind: AttestationType::SymmetricKey,
                        ..AttestationMechanism::default()
                    },
                    ..EnrollmentSettings::default()
                },
            },
            None,
        )
        .await?;
    let key = enrollment
        .settings
        .attestation
        .symmetric_key
        .and_then(|k| k.primary_key)
        .ok_or("no key")?;
    let client = ProvisioningClient::new(
        emulator.id_scope(),
        "latency-device",
        SymmetricKey::from_base64(&key)?,
    )
    .endpoint(format!("localhost:{}", emulator.mqtt_addr().port()))
    .tls(
        TlsConfig::default()
            .webpki_roots(false)
            .add_root(emulator.ca_der().clone()),
    )
    .timing(Timing::default().retry_after_floor(Duration::ZERO));

    // One warm-up run (first-use costs: page faults, lazy statics).
    client.register().await?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        client.register().await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{runs} registrations (polls before assignment: {polls}): median {:.2} ms, p10 {:.2} ms, p90 {:.2} ms, min {:.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.1).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
    );
    emulator.shutdown().await;
    Ok(())
}
