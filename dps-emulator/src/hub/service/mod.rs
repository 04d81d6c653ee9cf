//! The hub's service side: the registry, twin and direct-method REST API as the official
//! service SDKs call it, cloud-to-device messages, the events feed and the emulator-only
//! endpoints, and the identity views they return.

pub(crate) mod api;
pub(crate) mod bulk;
pub(crate) mod messaging;
pub(crate) mod query;
pub(crate) mod registry;
pub(crate) mod twins;
pub(crate) mod view;
