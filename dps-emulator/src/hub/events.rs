//! The events feed: what the hub's built-in endpoint would carry (device telemetry and
//! device lifecycle notifications), kept in memory for tests to read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// How many events the feed keeps; older ones are dropped first.
pub const EVENT_FEED_CAPACITY: usize = 10_000;

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum HubEventKind {
    /// A device-to-cloud message (telemetry, or a module output).
    Telemetry,
    /// A device or module identity was created or deleted (`opType` says which).
    DeviceLifecycle,
    /// A device reported a successful file upload; the body is a
    /// [`FileUploadNotification`](crate::hub::FileUploadNotification) in JSON.
    FileUpload,
    /// A device or module connected or disconnected (`opType` `deviceConnected` /
    /// `deviceDisconnected`), as the service routes `deviceConnectionStateEvents` (#15).
    DeviceConnectionState,
}

/// One event on a hub's feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubEvent {
    /// Position in the feed: increases by one per event, across hubs.
    pub sequence_number: u64,
    /// The hub.
    pub hub: String,
    /// What it is.
    pub kind: HubEventKind,
    /// The device it is from or about.
    pub device_id: String,
    /// The module, if it is from or about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
    /// When the hub received it.
    pub enqueued_time: String,
    /// System properties: for telemetry `messageId`, `correlationId`, `contentType`,
    /// `contentEncoding`, `userId`, `outputName`, `creationTimeUtc`, ... as sent, plus
    /// `iothub-connection-device-id`, `iothub-connection-module-id`, `iothub-enqueuedtime` and
    /// `iothub-message-source`.
    pub system_properties: BTreeMap<String, String>,
    /// Application properties (a property sent without a value has the empty string).
    /// Lifecycle notifications carry `opType`, `hubName`, `deviceId`, `operationTimestamp` and
    /// `iothub-message-schema` here, as the service does.
    pub properties: BTreeMap<String, String>,
    /// The body.
    #[serde(with = "body_serde")]
    pub body: Vec<u8>,
}

impl HubEvent {
    /// The body as UTF-8 text, if it is.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The body parsed as JSON, if it is.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The body as `body` (UTF-8 text, or `null`) and `bodyBase64` (always), so JSON readers need
/// no decoding for text and lose nothing for binary.
mod body_serde {
    use super::*;
    use serde::ser::SerializeMap as _;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        // Serialized as a nested object because `flatten` cannot be combined with `with`.
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("text", &std::str::from_utf8(body).ok())?;
        map.serialize_entry(
            "base64",
            &base64::engine::general_purpose::STANDARD.encode(body),
        )?;
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        #[derive(Deserialize)]
        struct Body {
            base64: String,
        }
        let body = Body::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(body.base64)
            .map_err(serde::de::Error::custom)
    }
}

/// The bounded, in-memory feed.
#[derive(Debug, Default)]
pub(crate) struct EventFeed {
    inner: Mutex<Feed>,
}

#[derive(Debug, Default)]
struct Feed {
    last: u64,
    events: VecDeque<HubEvent>,
}

impl EventFeed {
    fn lock(&self) -> MutexGuard<'_, Feed> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an event (its sequence number is assigned here); returns the number.
    pub(crate) fn push(&self, mut event: HubEvent) -> u64 {
        let mut feed = self.lock();
        feed.last += 1;
        event.sequence_number = feed.last;
        if feed.events.len() >= EVENT_FEED_CAPACITY {
            feed.events.pop_front();
        }
        feed.events.push_back(event);
        feed.last
    }

    /// The events of `hub` (any case) numbered after `since`, oldest first, at most `limit`.
    pub(crate) fn read(&self, hub: &str, since: u64, limit: usize) -> Vec<HubEvent> {
        let feed = self.lock();
        // Numbers are consecutive, so the first wanted event's position is computed, not searched.
        let first = feed.events.front().map_or(0, |e| e.sequence_number);
        let skip =
            usize::try_from(since.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        feed.events
            .iter()
            .skip(skip)
            .filter(|e| e.hub.eq_ignore_ascii_case(hub))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The number of the last event appended (0 when none was).
    pub(crate) fn last(&self) -> u64 {
        self.lock().last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(hub: &str) -> HubEvent {
        HubEvent {
            sequence_number: 0,
            hub: hub.into(),
            kind: HubEventKind::Telemetry,
            device_id: "d".into(),
            module_id: None,
            enqueued_time: String::new(),
            system_properties: BTreeMap::new(),
            properties: BTreeMap::new(),
            body: b"hi".to_vec(),
        }
    }

    #[test]
    fn bounded_and_filtered() {
        let feed = EventFeed::default();
        for i in 0..EVENT_FEED_CAPACITY + 5 {
            feed.push(event(if i % 2 == 0 { "a" } else { "b" }));
        }
        assert_eq!(feed.last(), (EVENT_FEED_CAPACITY + 5) as u64);
        let all_a = feed.read("A", 0, usize::MAX);
        assert_eq!(all_a.len(), EVENT_FEED_CAPACITY / 2);
        assert_eq!(all_a[0].sequence_number, 7, "the oldest were dropped");
        let tail = feed.read("a", feed.last() - 3, usize::MAX);
        assert_eq!(
            tail.iter().map(|e| e.sequence_number).collect::<Vec<_>>(),
            vec![feed.last() - 2, feed.last()]
        );
        assert!(feed.read("a", u64::MAX, 10).is_empty());
    }

    #[test]
    fn body_round_trips_through_json() {
        let mut e = event("a");
        e.body = vec![0xff, 0];
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["body"]["text"], serde_json::Value::Null);
        let back: HubEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back.body, vec![0xff, 0]);
        assert_eq!(
            serde_json::to_value(event("a")).unwrap()["body"]["text"],
            "hi"
        );
    }
}
