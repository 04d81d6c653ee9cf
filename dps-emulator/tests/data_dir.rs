//! The data directory: secrets owner-only, crash leftovers removed, a lost state file refused
//! (#11).

use std::path::Path;

use dps_emulator::model::IndividualEnrollment;
use dps_emulator::{Emulator, EmulatorConfig, EmulatorError};

fn enrollment(id: &str) -> IndividualEnrollment {
    serde_json::from_value(serde_json::json!({
        "registrationId": id,
        "attestation": { "type": "symmetricKey" }
    }))
    .unwrap()
}

async fn start(dir: &Path) -> Result<Emulator, EmulatorError> {
    Emulator::start(EmulatorConfig::new(dir)).await
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn secrets_and_the_data_dir_are_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let emulator = start(&dir).await.unwrap();
    emulator
        .put_enrollment(enrollment("dev-1"), None)
        .await
        .unwrap();
    emulator.shutdown().await;

    assert_eq!(mode(&dir), 0o700, "the data directory");
    for file in ["state.json", "service-key", "ca.key", "server.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    // The state file really holds the enrollment's keys.
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(state.contains("primaryKey"), "{state}");
}

#[tokio::test]
async fn a_missing_state_file_next_to_existing_keys_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start(dir.path()).await.unwrap();
    emulator.shutdown().await;
    std::fs::remove_file(dir.path().join("state.json")).unwrap();

    match start(dir.path()).await {
        Err(EmulatorError::StoreMissing { store, found }) => {
            assert!(store.ends_with("state.json"));
            assert!(found.exists(), "{}", found.display());
        }
        other => panic!("expected StoreMissing, got {other:?}"),
    }
}

#[tokio::test]
async fn a_fresh_emulator_that_changed_nothing_restarts() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path()).await.unwrap().shutdown().await;
    start(dir.path()).await.unwrap().shutdown().await;
}

#[tokio::test]
async fn temporary_files_left_by_a_crash_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start(dir.path()).await.unwrap();
    emulator
        .put_enrollment(enrollment("dev-1"), None)
        .await
        .unwrap();
    emulator.shutdown().await;
    // What `kill -9` between writing a temporary file and renaming it leaves behind.
    let stray = dir.path().join(".state.json.tmp-4242-7");
    std::fs::write(&stray, b"{\"enrollments\": {\"trunc").unwrap();

    let emulator = start(dir.path()).await.unwrap();
    assert!(!stray.exists(), "the stray temporary file is still there");
    assert!(emulator.enrollment("dev-1").is_ok(), "the state survived");
    emulator.shutdown().await;
}
