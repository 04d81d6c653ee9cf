//! Where each of the device's connections goes: DPS or the assigned hub, with the credential
//! of the slot the lifecycle machine chose (`dps_core::device::Target`).

use std::sync::Arc;
use std::time::Duration;

use dps_auth::{Authenticator, SasResource};
use dps_core::device::{Device, Target};
use dps_core::dps::DpsConnectInfo;
use dps_core::hub::HubConnectInfo;
use dps_runtime::{Connector, Link};
use dps_transport_mqtt::{TlsConfig, Transport};

use crate::client::USER_AGENT;

/// Maps an assigned hub's host name to the endpoint to connect to.
pub(crate) type HubEndpoint = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// What every link of the device shares.
pub(crate) struct DeviceConnector {
    pub(crate) transport: Arc<dyn Transport>,
    /// The credentials, indexed by slot.
    pub(crate) credentials: Vec<Arc<dyn Authenticator>>,
    pub(crate) dps: DpsConnectInfo,
    pub(crate) dps_endpoint: String,
    pub(crate) hub_endpoint: HubEndpoint,
    pub(crate) model_id: Option<String>,
    pub(crate) tls: TlsConfig,
    pub(crate) keep_alive: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) subscribe_timeout: Duration,
    /// The link of the current target, rebuilt when the target changes.
    current: Option<(Target, Link)>,
}

impl DeviceConnector {
    #[expect(clippy::too_many_arguments, reason = "built once, by the builder only")]
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        credentials: Vec<Arc<dyn Authenticator>>,
        dps: DpsConnectInfo,
        dps_endpoint: String,
        hub_endpoint: HubEndpoint,
        model_id: Option<String>,
        tls: TlsConfig,
        keep_alive: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            transport,
            credentials,
            dps,
            dps_endpoint,
            hub_endpoint,
            model_id,
            tls,
            keep_alive,
            connect_timeout,
            subscribe_timeout: Duration::from_secs(30),
            current: None,
        }
    }

    fn build(&self, target: &Target) -> Option<Link> {
        let mut link = match target {
            Target::Dps { credential } => {
                let auth = self.credentials.get(usize::from(credential.0))?;
                Link::new(
                    Arc::clone(&self.transport),
                    Arc::clone(auth),
                    SasResource::dps(self.dps.id_scope(), self.dps.registration_id()),
                    self.dps_endpoint.clone(),
                    self.dps.client_id().to_owned(),
                    self.dps.username().to_string(),
                )
            }
            Target::Hub {
                hub,
                device_id,
                credential,
            } => {
                let auth = self.credentials.get(usize::from(credential.0))?;
                let mut info = HubConnectInfo::new(hub, device_id).device_client_type(USER_AGENT);
                if let Some(model) = &self.model_id {
                    info = info.model_id(model);
                }
                Link::new(
                    Arc::clone(&self.transport),
                    Arc::clone(auth),
                    SasResource::hub_device(hub, device_id),
                    (self.hub_endpoint)(hub),
                    info.client_id().to_string(),
                    info.username().to_string(),
                )
            }
            _ => return None,
        };
        link.keep_alive = self.keep_alive;
        link.tls = self.tls.clone();
        link.connect_timeout = self.connect_timeout;
        link.subscribe_timeout = self.subscribe_timeout;
        Some(link)
    }
}

impl Connector<Device> for DeviceConnector {
    fn link(&mut self, machine: &Device) -> Option<&Link> {
        let target = machine.target()?;
        let stale = self.current.as_ref().is_none_or(|(t, _)| *t != target);
        if stale {
            let link = self.build(&target)?;
            tracing::debug!(?target, "connection target");
            self.current = Some((target, link));
        }
        self.current.as_ref().map(|(_, link)| link)
    }
}
