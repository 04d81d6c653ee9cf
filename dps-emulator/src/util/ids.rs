//! Identifiers shaped like the service's: operation ids, etags, tracking ids, generation ids.

use base64::Engine as _;
use rand::Rng as _;

/// `{digit}.{16 hex}.{uuid}`, as real operation ids look.
pub(crate) fn operation_id() -> String {
    let mut rng = rand::rng();
    format!(
        "{}.{:016x}.{}",
        rng.random_range(1..10u8),
        rng.random::<u64>(),
        uuid::Uuid::new_v4()
    )
}

/// A fresh uuid for `trackingId`.
pub(crate) fn tracking_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An etag: base64 of a quoted GUID-like string, as DPS sends.
pub(crate) fn etag() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\"{}\"", uuid::Uuid::new_v4()))
}

/// A hub device generation id (digits, like the service's).
pub(crate) fn generation_id() -> String {
    format!(
        "{:018}",
        rand::rng().random_range(0..1_000_000_000_000_000_000u64)
    )
}

/// A random 64-byte symmetric key, base64 (what the service generates for new enrollments).
pub(crate) fn symmetric_key() -> String {
    let mut key = [0u8; 64];
    rand::rng().fill(&mut key[..]);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// A 32-byte base64 shared access key (the length Azure uses for policy keys).
pub(crate) fn service_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key[..]);
    base64::engine::general_purpose::STANDARD.encode(key)
}
