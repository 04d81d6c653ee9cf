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
    for file in ["state.redb", "service-key", "ca.key", "server.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    // The store really holds the enrollment's keys.
    let state = std::fs::read(dir.join("state.redb")).unwrap();
    assert!(
        state
            .windows(b"primaryKey".len())
            .any(|w| w == b"primaryKey"),
        "the enrollment is in the database"
    );
}

#[tokio::test]
async fn a_missing_state_file_next_to_existing_keys_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = start(dir.path()).await.unwrap();
    emulator.shutdown().await;
    std::fs::remove_file(dir.path().join("state.redb")).unwrap();

    match start(dir.path()).await {
        Err(EmulatorError::StoreMissing { store, found }) => {
            assert!(store.ends_with("state.redb"));
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

/// The JSON snapshot an earlier version kept (`state.json`) is loaded into the database at the
/// first start, renamed out of the way, and the state lives on in the database afterwards.
#[tokio::test]
async fn a_snapshot_of_an_earlier_version_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = serde_json::json!({
        "enrollments": {
            "old-dev": {
                "registrationId": "old-dev",
                "attestation": { "type": "symmetricKey", "symmetricKey": {
                    "primaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                    "secondaryKey": "HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=" } }
            }
        },
        "registrations": {},
        "hubDevices": {}
    });
    std::fs::write(
        dir.path().join("state.json"),
        serde_json::to_vec(&earlier).unwrap(),
    )
    .unwrap();

    let emulator = start(dir.path()).await.unwrap();
    assert_eq!(
        emulator.enrollment("old-dev").unwrap().registration_id,
        "old-dev"
    );
    emulator.shutdown().await;
    assert!(!dir.path().join("state.json").exists());
    assert!(dir.path().join("state.json.migrated").exists());
    assert!(dir.path().join("state.redb").exists());

    let emulator = start(dir.path()).await.unwrap();
    assert!(
        emulator.enrollment("old-dev").is_ok(),
        "read back from the database"
    );
    emulator.shutdown().await;
}

/// A damaged database is a typed error naming the file, not a panic or an empty emulator.
#[tokio::test]
async fn a_damaged_database_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    start(dir.path()).await.unwrap().shutdown().await;
    std::fs::write(dir.path().join("state.redb"), b"not a database at all").unwrap();
    match start(dir.path()).await {
        Err(EmulatorError::Store(error)) => {
            let text = error.to_string();
            assert!(text.contains("state.redb"), "{text}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
}
