//! The emulated IoT Hub: the device side (MQTT over TLS and over WebSocket, on the same
//! listeners as DPS) and the service side (the registry, twin and direct-method REST API).
//!
//! - Device side: CONNECT with a SAS token or an X.509 certificate against the identity
//!   registry, one connection per identity, SAS expiry, documented topics only, telemetry with
//!   property bags, cloud-to-device messages (queued while offline), twins and direct methods,
//!   modules.
//! - Service side: `/devices`, `/twins`, `/twins/{id}/methods` as the official service SDKs call
//!   them, plus emulator-only endpoints under `/emulator/hubs/{hub}/` to read the events feed
//!   (telemetry and lifecycle notifications) and to send cloud-to-device messages.
//! - File upload: the devices' `POST /devices/{id}/files` and `/files/notifications` endpoints
//!   (blob SAS URI, at most 10 uploads in progress, SAS TTL), with the notifications on the
//!   events feed; the blobs go to the built-in endpoint of [`blob`](crate::blob) or to Azurite.
//!
//! The same operations are methods of [`Emulator`](crate::Emulator) (`create_device`,
//! `update_twin`, `invoke_method`, `send_c2d`, `hub_events`, ...).

mod c2d;
mod connect;
mod events;
// File upload (#14).
mod files;
mod lifecycle;
mod live;
mod messaging;
mod methods;
mod registry;
mod rest;
mod runtime;
mod session;
mod telemetry;
mod twin;
mod twins;
mod view;

pub(crate) use c2d::QueuedC2d;
pub use c2d::{CloudToDeviceMessage, MAX_C2D_SIZE, MAX_QUEUED_C2D};
pub use events::{EVENT_FEED_CAPACITY, HubEvent, HubEventKind};
pub use files::FileUploadNotification;
pub(crate) use files::{FileUploadApi, files_api};
pub use methods::{MethodInvocation, MethodResult};
pub(crate) use rest::HubServiceApi;
pub(crate) use runtime::HubRuntime;
pub use view::{ConnectionState, Device, Module, Twin, TwinProperties};
