//! The IoT Hub device protocol over MQTT: connect fields, topics and property bags, the message
//! model ([`Message`], [`ReceivedMessage`]), and the [`HubSession`] state machine
//! ([`session`]) that applies every rule of a device's session.
//!
//! Apart from the session, everything here is a pure codec. Builders are [`Display`](core::fmt::Display) values that
//! write a topic (or user name, or JSON body) straight into the caller's buffer, or into a
//! `String` with `to_string()`. Parsers borrow from the received topic, allocate nothing, and
//! hand back the raw (still percent-encoded) text with `decoded_*` methods that decode on demand.
//!
//! | feature | subscribe | publish (device) | parse (device) |
//! |---|---|---|---|
//! | connect | | [`HubConnectInfo`] | |
//! | telemetry | | [`TelemetryTopic`] + [`MessageProperties`] | |
//! | cloud-to-device | [`C2dSubscription`] | | [`parse_c2d_topic`] → [`PropertyBag`] |
//! | module inputs | [`InputSubscription`] | | [`parse_input_topic`] |
//! | twin | [`TWIN_RESPONSE_SUBSCRIPTION`], [`TWIN_DESIRED_SUBSCRIPTION`] | [`TwinGetTopic`], [`TwinReportedTopic`] | [`parse_twin_topic`] |
//! | direct methods | [`METHODS_SUBSCRIPTION`] | [`MethodResponseTopic`] | [`parse_method_request`] |
//! | certificate renewal | [`CREDENTIALS_RESPONSE_SUBSCRIPTION`] | [`IssueCertificateTopic`] + [`IssueCertificateRequest`] | [`parse_credentials_topic`] |
//!
//! The service side of each exchange (for an emulator) is here too: [`parse_telemetry_topic`],
//! [`C2dTopic`], [`InputTopic`], [`parse_twin_request`], [`TwinResponseTopic`],
//! [`TwinDesiredTopic`], [`MethodRequestTopic`], [`parse_method_response`],
//! [`parse_issue_certificate_topic`] and [`CredentialResponseTopic`].
//!
//! A driver offers each received topic to the parsers in turn: [`TopicError::NoMatch`] means
//! "not this feature", any other error a malformed topic of that feature.
//!
//! Request ids the sender chooses (twin GET and PATCH, certificate requests) are percent-encoded
//! when written; request ids that answer a received request (method and twin responses) are
//! echoed verbatim, so pass the raw id from the parsed request.
//!
//! ```
//! use dps_core::hub::{TopicError, TwinMessage, parse_c2d_topic, parse_twin_topic};
//!
//! fn on_publish(topic: &str) -> Result<(), TopicError> {
//!     match parse_c2d_topic(topic) {
//!         Ok(msg) => return Ok(println!("c2d for {}", msg.device_id)),
//!         Err(TopicError::NoMatch) => {}
//!         Err(e) => return Err(e),
//!     }
//!     match parse_twin_topic(topic)? {
//!         TwinMessage::GetResponse { rid, .. } => println!("twin for request {rid}"),
//!         other => println!("{other:?}"),
//!     }
//!     Ok(())
//! }
//!
//! assert_eq!(on_publish("$iothub/twin/res/200/?$rid=7"), Ok(()));
//! assert_eq!(on_publish("$iothub/twin/res/200"), Err(TopicError::UnexpectedEnd));
//! assert_eq!(on_publish("$iothub/methods/POST/m/?$rid=1"), Err(TopicError::NoMatch));
//! ```

pub mod c2d;
pub mod connect;
pub mod credentials;
pub mod inputs;
pub mod message;
pub mod methods;
pub mod pnp;
pub mod properties;
pub mod property_bag;
pub mod session;
pub mod telemetry;
mod topic;
pub mod twin;

#[cfg(test)]
mod proptests;

pub use c2d::{C2dMessage, C2dSubscription, C2dTopic, parse_c2d_topic};
pub use connect::{ClientId, DEFAULT_API_VERSION, HubConnectInfo, Username};
pub use credentials::{
    CREDENTIALS_API_VERSION, CREDENTIALS_RESPONSE_SUBSCRIPTION, CertificateAccepted,
    CredentialErrorBody, CredentialErrorInfo, CredentialResponse, CredentialResponseKind,
    CredentialResponseTopic, IssueCertificateRequest, IssueCertificateTopic, IssuedCertificates,
    REPLACE_ANY, parse_credentials_topic, parse_issue_certificate_topic,
};
pub use inputs::{InputMessage, InputSubscription, InputTopic, parse_input_topic};
pub use message::{Message, ReceivedMessage};
pub use methods::{
    COMMAND_SEPARATOR, METHODS_SUBSCRIPTION, MethodRequestTopic, MethodResponse,
    MethodResponseTopic, ParsedMethodRequest, PnpCommand, parse_method_request,
    parse_method_response, split_command,
};
pub use properties::{MessageProperties, SystemProperty};
pub use property_bag::{Properties, Property, PropertyBag};
pub use session::{
    Backoff, ConnectionState, Delivery, DisconnectReason, Event, Features, Heartbeat, HubSession,
    IgnoreReason, MAX_REPORTED_PATCH_SIZE, MessageId, MethodCall, Renewal, RequestId, SendError,
    SessionConfig, StopReason, Twin, TwinError,
};
pub use telemetry::{TelemetryMessage, TelemetryTopic, parse_telemetry_topic};
pub use topic::TopicError;
pub use twin::{
    TWIN_DESIRED_SUBSCRIPTION, TWIN_RESPONSE_SUBSCRIPTION, TwinDesiredTopic, TwinGetTopic,
    TwinMessage, TwinReportedTopic, TwinRequest, TwinResponseTopic, parse_twin_request,
    parse_twin_topic,
};

/// The largest device-to-cloud message the hub accepts, in bytes (256 KiB; the Python SDK's
/// `TELEMETRY_MESSAGE_SIZE_LIMIT`). Check the payload before publishing: a larger one makes
/// the hub drop the connection.
pub const MAX_TELEMETRY_MESSAGE_SIZE: usize = 262_144;

/// The largest MQTT keep-alive the hub honours, in seconds: it times a client out after 1.5 ×
/// the keep-alive, capped at 1767 s.
pub const MAX_KEEP_ALIVE_SECS: u16 = 1177;

/// The keep-alive to use when the application does not choose one, in seconds (the C and
/// Embedded C SDKs' default).
pub const DEFAULT_KEEP_ALIVE_SECS: u16 = 240;
