//! The emulated IoT Hub: the device side (MQTT over TLS and over WebSocket, on the same
//! listeners as DPS) and the service side (the registry, twin and direct-method REST API).
//!
//! - [`device`]: CONNECT with a SAS token or an X.509 certificate against the identity
//!   registry, one connection per identity, SAS expiry, documented topics only, telemetry with
//!   property bags, cloud-to-device messages (queued while offline), twins and direct methods,
//!   modules.
//! - [`service`]: `/devices`, `/twins`, `/twins/{id}/methods` as the official service SDKs call
//!   them, plus emulator-only endpoints under `/emulator/hubs/{hub}/` to read the events feed
//!   (telemetry and lifecycle notifications) and to send cloud-to-device messages.
//! - Here, what both sides share: the runtime state ([`runtime`]), the live connections
//!   ([`live`]), the events feed ([`events`]), lifecycle notifications ([`lifecycle`]), pending
//!   direct methods ([`methods`]) and the twin document rules ([`twin_document`]).
//! - File upload: the devices' `POST /devices/{id}/files` and `/files/notifications` endpoints
//!   (blob SAS URI, at most 10 uploads in progress, SAS TTL), with the notifications on the
//!   events feed; the blobs go to the built-in endpoint of [`blob`](crate::blob) or to Azurite.
//!
//! The same operations are methods of [`Emulator`](crate::Emulator) (`create_device`,
//! `update_twin`, `invoke_method`, `send_c2d`, `hub_events`, ...).

pub(crate) mod announce;
pub(crate) mod device;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod lifecycle;
pub(crate) mod live;
pub(crate) mod methods;
pub(crate) mod runtime;
pub(crate) mod service;
pub(crate) mod twin_document;

pub use device::files::FileUploadNotification;
pub(crate) use device::files::{FileUploadApi, files_api};
pub use events::{EVENT_FEED_CAPACITY, HubEvent, HubEventKind};
pub use methods::{MethodInvocation, MethodResult};
pub use service::view::{
    DeviceConnectionState, DeviceIdentity, DeviceTwin, ModuleIdentity, TwinProperties,
};
