//! Where each of the device's connections goes: DPS or the assigned hub, with the credential
//! of the slot the lifecycle machine chose (`dps_core::device::Target`).

use std::sync::Arc;
use std::time::Duration;

use dps_auth::{Authenticator, RenewableIdentity, SasResource};
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
    /// The certificate the service issued: presented to the hub once there is one.
    pub(crate) issued: Option<Arc<RenewableIdentity>>,
    /// The hub api-version (the credentials topic needs a newer one).
    pub(crate) hub_api_version: &'static str,
    /// The link of the current target (and whether an issued certificate was in use), rebuilt
    /// when either changes.
    current: Option<(Target, bool, Link)>,
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
            issued: None,
            hub_api_version: dps_core::hub::DEFAULT_API_VERSION,
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
                // An issued certificate is the device's hub identity (its onboarding
                // credentials are for DPS; service-behaviour §1.16).
                let auth = match &self.issued {
                    Some(issued) if issued.has_certificate() => {
                        &(Arc::clone(issued) as Arc<dyn Authenticator>)
                    }
                    _ => self.credentials.get(usize::from(credential.0))?,
                };
                let auth = Arc::clone(auth);
                let mut info = HubConnectInfo::new(hub, device_id)
                    .device_client_type(USER_AGENT)
                    .api_version(self.hub_api_version);
                if let Some(model) = &self.model_id {
                    info = info.model_id(model);
                }
                Link::new(
                    Arc::clone(&self.transport),
                    auth,
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
        let issued = self.issued.as_ref().is_some_and(|i| i.has_certificate());
        let stale = self
            .current
            .as_ref()
            .is_none_or(|(t, i, _)| *t != target || *i != issued);
        if stale {
            let link = self.build(&target)?;
            tracing::debug!(?target, issued, "connection target");
            self.current = Some((target, issued, link));
        }
        self.current.as_ref().map(|(_, _, link)| link)
    }
}
