//! The inputs of the core micro-benchmarks, shared by criterion (`benches/core.rs`) and the
//! allocation counter (`src/bin/allocs.rs`), so both measure exactly the same work.

use std::fmt::Write as _;

use dps_auth::{GroupKey, SasResource, SasStyle, SymmetricKey, generate_sas};
use dps_core::Timestamp;
use dps_core::dps::Response;
use dps_core::dps::topic::ResponseTopic;
use dps_core::hub::{
    Features, HubSession, Message, MessageProperties, SessionConfig, TelemetryTopic,
};
use dps_core::mqtt::{Connected, Machine as _, Transmit};

/// An enrollment group key (the Microsoft docs' example).
pub const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
/// A registration id of typical length.
pub const REGISTRATION_ID: &str = "sensor-0042-b8-27-eb-12-34-56";
/// A DPS id scope.
pub const ID_SCOPE: &str = "0ne00000A0A";
/// The token expiry used for SAS generation (fixed so runs are comparable).
pub const EXPIRY_UNIX: u64 = 1_900_000_000;

/// The 202 response topic of a registration request.
pub const RESPONSE_TOPIC_202: &str = "$dps/registrations/res/202/?$rid=1&retry-after=3";
/// The 200 response topic of an operation-status poll.
pub const RESPONSE_TOPIC_200: &str = "$dps/registrations/res/200/?$rid=2";
/// The body of a final `assigned` answer, as the service sends it.
pub const ASSIGNED_BODY: &[u8] = br#"{"operationId":"4.d0a671905ea5b2c8.42d78160-4c78-479e-8be7-61d5e55dac0d","status":"assigned","registrationState":{"registrationId":"sensor-0042-b8-27-eb-12-34-56","createdDateTimeUtc":"2025-06-01T10:00:00.1234567Z","assignedHub":"contoso-hub-01.azure-devices.net","deviceId":"sensor-0042-b8-27-eb-12-34-56","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2025-06-01T10:00:00.3456789Z","etag":"IjFhMDAzMmU1LTAwMDAtMDMwMC0wMDAwLTY2NWIxYjEwMDAwMCI="}}"#;

/// The message properties of a typical telemetry message ([`telemetry_message`]'s): four
/// system properties and two application properties, one of which needs percent-encoding.
#[must_use]
pub fn telemetry_properties() -> MessageProperties {
    telemetry_message().properties().clone()
}

/// Parses the 202 response topic (the parser borrows from the topic: no allocation).
///
/// # Panics
/// When the fixture does not parse (a bug in the fixture or the parser).
pub fn parse_response_topic() -> u16 {
    let topic = ResponseTopic::parse(std::hint::black_box(RESPONSE_TOPIC_202)).unwrap();
    topic.status + topic.retry_after.map_or(0, |s| s as u16)
}

/// Parses the 200 topic and the `assigned` JSON body together, as the client does on receipt.
///
/// # Panics
/// When the fixture does not parse.
pub fn parse_response() -> u16 {
    let response = Response::parse(
        std::hint::black_box(RESPONSE_TOPIC_200),
        std::hint::black_box(ASSIGNED_BODY),
    )
    .unwrap();
    response.effective_status()
}

/// Writes the telemetry topic with `properties` into `buffer` (cleared first, so a reused
/// buffer is measured, as a client publishing in a loop would use it).
///
/// # Panics
/// Never: writing into a `String` cannot fail.
pub fn format_telemetry_topic(buffer: &mut String, properties: &MessageProperties) -> usize {
    buffer.clear();
    write!(
        buffer,
        "{}",
        TelemetryTopic::new(std::hint::black_box(REGISTRATION_ID)).properties(properties)
    )
    .unwrap();
    buffer.len()
}

/// The device key of [`REGISTRATION_ID`] in the group of [`GROUP_KEY`].
///
/// # Panics
/// When the fixture key is invalid.
#[must_use]
pub fn device_key() -> SymmetricKey {
    group_key().derive(REGISTRATION_ID).unwrap()
}

/// The group key of [`GROUP_KEY`].
///
/// # Panics
/// When the fixture key is invalid.
#[must_use]
pub fn group_key() -> GroupKey {
    GroupKey::from_base64(GROUP_KEY).unwrap()
}

/// The DPS resource of [`REGISTRATION_ID`].
#[must_use]
pub fn dps_resource() -> SasResource {
    SasResource::dps(ID_SCOPE, REGISTRATION_ID)
}

/// Mints the DPS SAS token of the device (HMAC-SHA256, base64, percent-encoding, formatting).
///
/// # Panics
/// When signing fails (it cannot with a software key).
pub fn generate_sas_token(key: &SymmetricKey, resource: &SasResource, style: &SasStyle) -> usize {
    generate_sas(key, resource, style, std::hint::black_box(EXPIRY_UNIX))
        .unwrap()
        .expose()
        .len()
}

/// Derives the device key from the group key.
///
/// # Panics
/// When the fixture registration id is invalid.
pub fn derive_group_key(group: &GroupKey) -> SymmetricKey {
    group.derive(std::hint::black_box(REGISTRATION_ID)).unwrap()
}

/// A hub session, connected, without subscriptions: the telemetry path alone.
#[must_use]
pub fn connected_session() -> HubSession {
    let config = SessionConfig::device("sensor-0042").features(Features::NONE);
    let mut session = HubSession::new(config, Timestamp::ZERO, 7);
    while session.poll_transmit().is_some() {}
    session.handle_connected(
        Timestamp::ZERO,
        Connected::new(false, Some(1_700_003_600), 1_700_000_000),
    );
    while session.poll_transmit().is_some() {}
    while session.poll_event().is_some() {}
    session
}

/// A typical telemetry message: a small JSON body and [`with_typical_properties`].
#[must_use]
pub fn telemetry_message() -> Message {
    with_typical_properties(Message::new(&b"{\"t\":22.5}"[..]), "msg-000042")
}

/// `message` with message id `id` and the properties every benchmark's telemetry carries: three
/// more system properties and two application properties (one needing percent-encoding).
#[must_use]
pub fn with_typical_properties(message: Message, id: impl AsRef<str>) -> Message {
    message
        .message_id(id)
        .correlation_id("corr-7")
        .content_type("application/json")
        .content_encoding("utf-8")
        .property("alert", "true")
        .property("zone", "north/7")
}

/// One QoS 1 telemetry message through the session machine: queue it, take its PUBLISH,
/// acknowledge it, take the event: the core's whole share of a message's cost.
pub fn telemetry_cycle(session: &mut HubSession, message: Message) {
    let now = Timestamp::ZERO;
    let _ = std::hint::black_box(session.send_telemetry(now, message));
    while let Some(t) = session.poll_transmit() {
        if let Transmit::Publish { id, .. } = std::hint::black_box(t) {
            session.handle_puback(now, id);
        }
    }
    while session.poll_event().is_some() {}
}
