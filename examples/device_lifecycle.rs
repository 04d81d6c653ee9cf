//! The device lifecycle (`hub_client::device::DeviceClient`): provision once, then start from
//! the stored assignment with no DPS call; provision again only when the hub refuses the
//! device (deleted, moved), stays unreachable, or the application asks.
//!
//! Run it several times against the embedded emulator, whose state (and the device's stored
//! assignment) stays in a directory between runs:
//!
//! ```text
//! cargo run --example device_lifecycle              # 1st run: provisions with DPS, sends
//! cargo run --example device_lifecycle              # 2nd run: from the cache, no DPS call
//! cargo run --example device_lifecycle -- --move    # the device moves to the other hub
//! cargo run --example device_lifecycle -- --reset   # forget everything
//! ```
//!
//! The directory is `$DEVICE_LIFECYCLE_DIR`, or `dps-rs-device-lifecycle` in the system's
//! temporary directory. With the quickstart's variables (`PROVISIONING_HOST`,
//! `PROVISIONING_IDSCOPE`, `PROVISIONING_REGISTRATION_ID`, `PROVISIONING_SYMMETRIC_KEY`) it
//! runs the same device against Azure (no `--move` there: move it in the portal).

use std::path::PathBuf;
use std::time::Duration;

use dps_emulator::model::{
    AttestationMechanism, AttestationType, EnrollmentSettings, IndividualEnrollment,
};
use dps_emulator::{Behaviour, Emulator, EmulatorConfig};
use hub_client::device::{DeviceClient, FileStore, LifecycleEvent};
use hub_client::{Message, SymmetricKey, TlsConfig};

const REGISTRATION_ID: &str = "lifecycle-device";
const HUBS: [&str; 2] = ["hub-a.azure-devices.net", "hub-b.azure-devices.net"];

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = env("DEVICE_LIFECYCLE_DIR").map_or_else(
        || std::env::temp_dir().join("dps-rs-device-lifecycle"),
        PathBuf::from,
    );
    if args.iter().any(|a| a == "--reset") {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        println!("forgot {}", dir.display());
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    let store = FileStore::new(dir.join("assignment.json"));

    if let (Some(host), Some(scope), Some(id), Some(key)) = (
        env("PROVISIONING_HOST"),
        env("PROVISIONING_IDSCOPE"),
        env("PROVISIONING_REGISTRATION_ID"),
        env("PROVISIONING_SYMMETRIC_KEY"),
    ) {
        let device = DeviceClient::builder(scope, id)
            .dps_endpoint(host)
            .credential(SymmetricKey::from_base64(&key)?)
            .store(store)
            .start()?;
        return run(&device).await;
    }

    // The emulator keeps its state in `dir/emulator` between runs.
    let config = EmulatorConfig::new(dir.join("emulator"))
        .linked_hubs(HUBS)
        .behaviour(Behaviour {
            retry_after_seconds: 1,
            polls_before_assignment: 0,
            ..Behaviour::default()
        });
    let emulator = Emulator::start(config).await?;
    let key = enrollment_key(&emulator).await?;
    if args.iter().any(|a| a == "--move") {
        move_device(&emulator).await?;
    }
    let before = emulator.registration(REGISTRATION_ID).ok();

    let endpoint = format!("localhost:{}", emulator.mqtt_addr().port());
    let hub_endpoint = endpoint.clone();
    let device = DeviceClient::builder(emulator.id_scope(), REGISTRATION_ID)
        .dps_endpoint(endpoint)
        // Every emulated hub listens on the emulator's one MQTT port.
        .hub_endpoint(move |_| hub_endpoint.clone())
        .tls(
            TlsConfig::default()
                .webpki_roots(false)
                .add_root(emulator.ca_der().clone()),
        )
        .credential(SymmetricKey::from_base64(&key)?)
        .store(store)
        .start()?;
    run(&device).await?;

    // What DPS saw, from its registration record and its request counter.
    let after = emulator.registration(REGISTRATION_ID)?;
    let requests = emulator.device_requests(REGISTRATION_ID);
    let unchanged = before.as_ref().and_then(|b| b.etag.as_ref()) == after.etag.as_ref();
    println!(
        "DPS: {requests} request(s) in this run; registration record {} (assigned hub {}, last updated {})",
        if unchanged { "unchanged" } else { "updated" },
        after.assigned_hub.as_deref().unwrap_or("-"),
        after.last_updated_date_time_utc.as_deref().unwrap_or("-"),
    );
    emulator.shutdown().await;
    Ok(())
}

/// Prints the lifecycle until the device is connected, sends three messages, closes.
async fn run(device: &DeviceClient) -> Result<(), Box<dyn std::error::Error>> {
    let mut events = device.lifecycle_events();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv()).await??;
        match &event {
            LifecycleEvent::Provisioned {
                source,
                hub,
                device_id,
            } => {
                println!("provisioned from {source}: {device_id} on {hub}");
            }
            LifecycleEvent::Reprovisioning { reason, delay, .. } if delay.is_zero() => {
                println!("provisioning now: {reason}");
            }
            LifecycleEvent::Reprovisioning { reason, delay, .. } => {
                println!("provisioning in {delay:?}: {reason}");
            }
            LifecycleEvent::Connected { credential } => {
                println!("connected with {credential}");
                break;
            }
            LifecycleEvent::Stopped(reason) => return Err(format!("stopped: {reason}").into()),
            other => println!("{other:?}"),
        }
    }
    for i in 1..=3 {
        device
            .hub()
            .send(Message::new(format!("{{\"reading\":{i}}}")))
            .await?;
    }
    println!("sent 3 messages, all acknowledged by the hub");
    device.close().await;
    Ok(())
}

/// The enrollment's key, creating the enrollment on the first run (allocated to hub A).
async fn enrollment_key(emulator: &Emulator) -> Result<String, Box<dyn std::error::Error>> {
    let enrollment = match emulator.enrollment(REGISTRATION_ID) {
        Ok(existing) => existing,
        Err(_) => {
            emulator
                .put_enrollment(
                    IndividualEnrollment {
                        registration_id: REGISTRATION_ID.into(),
                        device_id: None,
                        registration_state: None,
                        optional_device_information: None,
                        settings: EnrollmentSettings {
                            attestation: AttestationMechanism {
                                kind: AttestationType::SymmetricKey,
                                ..AttestationMechanism::default()
                            },
                            iot_hubs: Some(vec![HUBS[0].into()]),
                            ..EnrollmentSettings::default()
                        },
                    },
                    None,
                )
                .await?
        }
    };
    enrollment
        .settings
        .attestation
        .symmetric_key
        .and_then(|k| k.primary_key)
        .ok_or_else(|| "the enrollment has no key".into())
}

/// The operator's move: the enrollment now allocates the other hub, and the device leaves its
/// current one (which refuses it from now on).
async fn move_device(emulator: &Emulator) -> Result<(), Box<dyn std::error::Error>> {
    let current = emulator
        .registration(REGISTRATION_ID)
        .ok()
        .and_then(|r| r.assigned_hub)
        .ok_or("run once without --move first")?;
    let target = HUBS
        .iter()
        .find(|h| **h != current)
        .copied()
        .unwrap_or(HUBS[0]);
    let mut enrollment = emulator.enrollment(REGISTRATION_ID)?;
    enrollment.settings.iot_hubs = Some(vec![target.into()]);
    emulator.put_enrollment(enrollment, None).await?;
    emulator
        .delete_device(&current, REGISTRATION_ID, None)
        .await?;
    println!("moved {REGISTRATION_ID}: {current} -> {target} (deleted from {current})");
    Ok(())
}
