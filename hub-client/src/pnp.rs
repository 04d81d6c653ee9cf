//! IoT Plug and Play conventions on top of the client: components, writable properties and
//! their acknowledgements ([`dps_core::hub::pnp`] holds the rules and the JSON).
//!
//! - Telemetry of a component: [`Message::component`](crate::Message::component) (`$.sub`).
//! - Read-only properties and acknowledgements: build a [`ReportedPatch`] and send it with
//!   [`HubClient::update_reported`](crate::HubClient::update_reported).
//! - Writable properties: [`DesiredUpdate::writable_properties`] turns each update of the
//!   [`desired_patches`](crate::HubClient::desired_patches) stream into the properties to apply,
//!   each with the version to acknowledge; after a reconnect only those not yet acknowledged at
//!   the current version come out, so the current desired state is acknowledged once.
//! - Commands: `component*command` method names, split in
//!   [`MethodRequest::component`](crate::MethodRequest::component) and
//!   [`command`](crate::MethodRequest::command).

pub use dps_core::hub::pnp::{
    COMPONENT_MARKER_KEY, COMPONENT_MARKER_VALUE, PropertyAck, ReportedPatch, WritableProperty,
    ack_code,
};

use crate::DesiredUpdate;

impl DesiredUpdate {
    /// The writable properties this update asks the device to apply, each with its component
    /// and the desired version to acknowledge. `components` names the model's components (a
    /// desired object with the `"__t": "c"` marker is one too).
    ///
    /// For a [`Patch`](Self::Patch), every property in it. For a [`Resync`](Self::Resync) (the
    /// twin read again after a connect), the properties whose acknowledgement in the reported
    /// properties is missing or older than the current desired version or value: what changed
    /// while the device was away, once.
    #[must_use]
    pub fn writable_properties(&self, components: &[&str]) -> Vec<WritableProperty> {
        match self {
            Self::Patch { patch, .. } => dps_core::hub::pnp::writable_properties(patch, components),
            Self::Resync { twin, .. } => {
                dps_core::hub::pnp::unacknowledged(&twin.desired, &twin.reported, components)
            }
        }
    }
}
