//! [`DeviceClientBuilder`]: the device's identity, credentials, store and lifecycle policy.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dps_auth::Authenticator;
use dps_core::device::{CertificateRenewal, CredentialSlot, Device, DeviceConfig, RecoveryBackoff};
use dps_core::dps::registration::{RegistrationConfig, Timing};
use dps_core::dps::{DpsConnectInfo, GLOBAL_ENDPOINT};
use dps_core::hub::{Features, SessionConfig};
use dps_runtime::{Clock, Entropy, OsEntropy, SystemClock};
use dps_transport_mqtt::{MqttTransport, TlsConfig, Transport};
use tracing::Instrument as _;

use super::DeviceClient;
use super::app::{DeviceApp, DeviceShared};
use super::connector::{DeviceConnector, HubEndpoint};
use super::store::{AnyStore, NoStore};
use crate::app::{HubApp, streams};
use crate::client::{Handle, USER_AGENT};
use crate::config_error::{ConfigError, ConfigProblem};
use crate::{HubClient, HubError};

/// Builds a [`DeviceClient`]; see [`DeviceClient::builder`].
#[must_use]
pub struct DeviceClientBuilder {
    id_scope: String,
    registration_id: String,
    credentials: Vec<Arc<dyn Authenticator>>,
    store: Box<dyn AnyStore>,
    dps_endpoint: String,
    hub_endpoint: HubEndpoint,
    transport: Arc<dyn Transport>,
    tls: TlsConfig,
    model_id: Option<String>,
    payload: Option<String>,
    timing: Timing,
    session: SessionConfig,
    hub_attempts: u32,
    hub_unreachable_for: Option<Duration>,
    max_assignment_age: Option<Duration>,
    recovery: RecoveryBackoff,
    renewal: Option<CertificateRenewal>,
    connect_timeout: Duration,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    stream_capacity: usize,
    manual_completion: bool,
}

impl fmt::Debug for DeviceClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceClientBuilder")
            .field("id_scope", &self.id_scope)
            .field("registration_id", &self.registration_id)
            .field("credentials", &self.credentials.len())
            .field("dps_endpoint", &self.dps_endpoint)
            .field("transport", &self.transport.name())
            .finish_non_exhaustive()
    }
}

impl DeviceClientBuilder {
    pub(crate) fn new(id_scope: String, registration_id: String) -> Self {
        Self {
            id_scope,
            registration_id,
            credentials: Vec::new(),
            store: Box::new(NoStore),
            dps_endpoint: GLOBAL_ENDPOINT.to_owned(),
            hub_endpoint: Arc::new(str::to_owned),
            transport: Arc::new(MqttTransport::new()),
            tls: TlsConfig::default(),
            model_id: None,
            payload: None,
            timing: Timing::default(),
            session: SessionConfig::device(""),
            hub_attempts: 10,
            hub_unreachable_for: None,
            max_assignment_age: None,
            recovery: RecoveryBackoff::default(),
            renewal: None,
            connect_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock::new()),
            entropy: Arc::new(OsEntropy),
            stream_capacity: 64,
            manual_completion: false,
        }
    }

    /// Adds a credential, in order of preference: an
    /// [`X509Identity`](dps_auth::X509Identity), the primary key, the secondary key, a
    /// [`SasAuthenticator`](dps_auth::SasAuthenticator) around a hardware signer, or any
    /// [`Authenticator`] (an application callback). DPS or the hub refusing one moves to the
    /// next. The same credential serves DPS and the hub.
    pub fn credential(mut self, credential: impl Authenticator + 'static) -> Self {
        self.credentials.push(Arc::new(credential));
        self
    }

    /// Keeps the assignment in `store` ([`FileStore`](super::FileStore) for a file). Without
    /// one, nothing is kept and every start provisions.
    pub fn store<S>(mut self, store: S) -> Self
    where
        S: dps_core::device::AssignmentStore + Send + 'static,
        S::Error: fmt::Display,
    {
        self.store = Box::new(store);
        self
    }

    /// The DPS endpoint, `host` or `host:port` (default `global.azure-devices-provisioning.net`).
    pub fn dps_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.dps_endpoint = endpoint.into();
        self
    }

    /// Where to connect for an assigned hub (default: its host name on the transport's port);
    /// an emulator or a gateway maps the host name to its own `host:port`.
    pub fn hub_endpoint(mut self, map: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.hub_endpoint = Arc::new(map);
        self
    }

    /// MQTT over TLS (default) or over WebSocket, for DPS and the hub alike.
    pub fn transport(mut self, transport: impl Transport + 'static) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// The TLS policy and trusted roots.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// The IoT Plug and Play model id, announced to DPS and the hub.
    pub fn model_id(mut self, dtmi: impl Into<String>) -> Self {
        self.model_id = Some(dtmi.into());
        self
    }

    /// A custom payload for DPS (JSON text, checked at [`start`](Self::start)).
    pub fn payload_json(mut self, json: impl Into<String>) -> Self {
        self.payload = Some(json.into());
        self
    }

    /// DPS request timing (timeouts, retry-after floor, deadline).
    pub fn dps_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The hub features to subscribe to (default all).
    pub fn features(mut self, features: Features) -> Self {
        self.session.features = features;
        self
    }

    /// Edits the hub session's configuration (queue, in-flight window, backoff, timeouts).
    pub fn session_config(mut self, edit: impl FnOnce(SessionConfig) -> SessionConfig) -> Self {
        self.session = edit(self.session);
        self
    }

    /// Provisions again after this many failed hub connection attempts in a row (default 10).
    pub fn hub_attempts(mut self, attempts: u32) -> Self {
        self.hub_attempts = attempts.max(1);
        self
    }

    /// Provisions again once the hub stayed unreachable this long (default: not used).
    pub fn hub_unreachable_for(mut self, limit: Duration) -> Self {
        self.hub_unreachable_for = Some(limit);
        self
    }

    /// Provisions again once the assignment is older than this (default: never).
    pub fn max_assignment_age(mut self, age: Duration) -> Self {
        self.max_assignment_age = Some(age);
        self
    }

    /// The identity-recovery backoff between re-provisionings (default 5 min to 1 h).
    pub fn recovery(mut self, recovery: RecoveryBackoff) -> Self {
        self.recovery = recovery;
        self
    }

    /// Certificate renewal for a CSR-issued identity (default off).
    pub fn renewal(mut self, renewal: CertificateRenewal) -> Self {
        self.renewal = Some(renewal);
        self
    }

    /// Bound on one connection attempt (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The clock (a virtual one in tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where the jitter seeds come from (fixed in tests).
    pub fn entropy(mut self, entropy: impl Entropy + 'static) -> Self {
        self.entropy = Arc::new(entropy);
        self
    }

    /// How many items each stream holds before the client holds back (default 64).
    pub fn stream_capacity(mut self, capacity: usize) -> Self {
        self.stream_capacity = capacity.max(1);
        self
    }

    /// Manual completion of deliveries (see [`HubClientBuilder::manual_completion`](crate::HubClientBuilder::manual_completion)).
    pub fn manual_completion(mut self, manual: bool) -> Self {
        self.manual_completion = manual;
        self
    }

    fn config_errors(&self) -> Option<ConfigError> {
        let mut problems = Vec::new();
        if self.id_scope.is_empty() {
            problems.push(ConfigProblem::EmptyIdScope);
        }
        if let Err(e) = dps_core::ids::validate_registration_id(&self.registration_id) {
            problems.push(ConfigProblem::RegistrationId(e));
        }
        if self.credentials.is_empty() {
            problems.push(ConfigProblem::NoCredential);
        }
        if let Some(payload) = &self.payload {
            if serde_json::from_str::<serde_json::Value>(payload).is_err() {
                problems.push(ConfigProblem::Payload);
            }
        }
        if self.credentials.len() > usize::from(u8::MAX) {
            problems.push(ConfigProblem::TooManyCredentials {
                count: self.credentials.len(),
            });
        }
        ConfigError::from_problems(problems)
    }

    /// Loads the stored assignment and starts the device: it connects to the stored hub, or
    /// provisions first. Returns at once; watch [`DeviceClient::lifecycle_events`] or the
    /// hub's connection states. Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`HubError::Config`] listing every problem (no credential, a bad registration id, an
    /// empty id scope, a payload that is not JSON).
    pub fn start(mut self) -> Result<DeviceClient, HubError> {
        if let Some(error) = self.config_errors() {
            return Err(HubError::Config(error));
        }
        let mut registration = RegistrationConfig::new(&self.registration_id).timing(self.timing);
        if let Some(payload) = &self.payload {
            // Checked by `config_errors`.
            registration = registration.payload_json(payload).unwrap_or_else(|_| {
                RegistrationConfig::new(&self.registration_id).timing(self.timing)
            });
        }
        let slots = (0..self.credentials.len())
            .filter_map(|i| u8::try_from(i).ok().map(CredentialSlot))
            .collect();
        let config = DeviceConfig::new(registration, self.session.clone())
            .credentials(slots)
            .hub_attempts(self.hub_attempts)
            .hub_unreachable_for(self.hub_unreachable_for)
            .max_assignment_age(self.max_assignment_age)
            .recovery(self.recovery)
            .renewal(self.renewal);
        let loaded = match self.store.load() {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(%error, "the stored assignment could not be read");
                None
            }
        };
        // The model id reaches DPS in the registration payload's `modelId` when the
        // application puts it there; the hub's user name carries it below.
        let dps =
            DpsConnectInfo::new(&self.id_scope, &self.registration_id).client_version(USER_AGENT);
        let connector = DeviceConnector::new(
            Arc::clone(&self.transport),
            self.credentials.clone(),
            dps,
            self.dps_endpoint.clone(),
            Arc::clone(&self.hub_endpoint),
            self.model_id.clone(),
            self.tls.clone(),
            self.session.keep_alive,
            self.connect_timeout,
        );
        let device = Device::new(
            config,
            self.clock.now(),
            self.clock.unix_now(),
            loaded,
            self.entropy.seed(),
        );
        let (outlets, receivers) = streams(self.stream_capacity);
        let hub = HubApp::new(outlets).manual_completion(self.manual_completion);
        let store = std::mem::replace(&mut self.store, Box::new(NoStore));
        let app = DeviceApp::new(hub, store);
        let first_events = app.lifecycle.subscribe();
        let shared = Arc::new(DeviceShared::new(device, app, Arc::clone(&self.clock)));
        let span = tracing::info_span!(
            "device",
            registration_id = %self.registration_id,
            id_scope = %self.id_scope,
            transport = self.transport.name(),
        );
        let task = tokio::spawn(dps_runtime::run(Arc::clone(&shared), connector).instrument(span));
        let handle = Arc::new(Handle {
            receivers: Mutex::new(receivers),
            task: Mutex::new(Some(task)),
        });
        #[cfg(feature = "file-upload")]
        let upload = {
            let weak = Arc::downgrade(&shared);
            let credentials = self.credentials.clone();
            let tls = self.tls.clone();
            Arc::new(move || {
                // The current assignment and credential; none yet: an empty host, which the
                // uploader refuses as a configuration error.
                let (hub, device_id, slot) = weak
                    .upgrade()
                    .and_then(|shared| {
                        let inner = shared.lock();
                        let record = inner.machine.record()?;
                        let slot = match inner.machine.target() {
                            Some(dps_core::device::Target::Hub { credential, .. }) => credential.0,
                            _ => 0,
                        };
                        Some((record.assigned_hub.clone(), record.device_id.clone(), slot))
                    })
                    .unwrap_or_default();
                // `start` refused an empty credential list.
                let credential = credentials
                    .get(usize::from(slot))
                    .unwrap_or(&credentials[0]);
                crate::upload::FileUploader::builder_shared(
                    &hub,
                    &device_id,
                    Arc::clone(credential),
                )
                .tls(tls.clone())
            }) as crate::client::UploadSettings
        };
        let client = HubClient::from_parts(
            Arc::clone(&shared) as Arc<dyn crate::host::Core>,
            handle,
            Arc::from(self.registration_id.as_str()),
            None,
            #[cfg(feature = "file-upload")]
            upload,
        );
        Ok(DeviceClient {
            shared,
            hub: client,
            first_events: Arc::new(Mutex::new(Some(first_events))),
        })
    }
}
