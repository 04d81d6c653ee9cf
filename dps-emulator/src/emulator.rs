//! The emulator as one object: start it, read its endpoints, manage it, stop it.

// The knobs of the device lifecycle paths (#12).
mod ack_faults;
mod blob_containers;
mod data_dir;
mod lifecycle;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use serde::Serialize;

use crate::certificates::CaIssuer;
use crate::config::EmulatorConfig;
use crate::dps::device::faults::Faults;
use crate::dps::device::registrar::{CertificateIssuer, Registrar};
use crate::dps::device::runtime::DpsRuntime;
use crate::dps::service::{api::ServiceApi, enrollments};
use crate::hub::runtime::HubRuntime;
use crate::hub::service::api::HubServiceApi;
use crate::hub::{
    DeviceIdentity, DeviceTwin, FileUploadApi, FileUploadNotification, HubEvent, MethodInvocation,
    MethodResult, ModuleIdentity,
};
use crate::model::{
    CloudToDeviceMessage, DeviceRegistrationState, EnrollmentGroup, HubDevice, IndividualEnrollment,
};
use crate::net::{
    ConnectRequest, ConnectReturnCode, HttpHandler, HttpRequest, HttpResponse, MqttHandler,
    MqttSession, Outbox, ServerOptions, Servers,
};
use crate::rest::ServiceFailure;
use crate::store::{Store, StoreData, StoreError};
use crate::tls::{TlsError, TlsMaterial};

/// The store (a redb database); `state.json`, the snapshot of earlier versions, is migrated.
pub(crate) use data_dir::prepare_data_dir;
use data_dir::service_key;

const STORE_FILE: &str = "state.redb";
const LEGACY_STORE_FILE: &str = "state.json";
const SERVICE_KEY_FILE: &str = "service-key";

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// Creating or loading the CA and server certificate failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The state file could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service key could not be read, created or decoded.
    #[error("service key: {0}")]
    ServiceKey(String),
    /// Binding a listener failed.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The data directory could not be read or tidied.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file is missing from a data directory that already holds the emulator's
    /// keys: starting empty would silently forget every enrollment and device.
    #[error(
        "{store} is missing but {found} exists: the data directory lost its state; restore \
         the file, or start from an empty data directory"
    )]
    StoreMissing {
        /// The missing state file.
        store: PathBuf,
        /// A key file of an earlier run found next to it.
        found: PathBuf,
    },
    /// A preloaded enrollment was refused.
    #[error("preloaded enrollment refused: {0}")]
    Preload(ServiceFailure),
    /// The file upload storage settings are not usable.
    #[error("file upload storage: {0}")]
    FileUpload(String),
}

/// What a client needs to reach the emulator; also the `dps-emulator` ready line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmulatorInfo {
    /// The DPS endpoint host name (also the default hub).
    pub hostname: String,
    /// `host:port` of MQTT over TLS.
    pub mqtt_endpoint: String,
    /// `host:port` of HTTPS (REST APIs and MQTT over WebSocket).
    pub https_endpoint: String,
    /// `wss://` URL of MQTT over WebSocket.
    pub websocket_url: String,
    /// The DPS id scope.
    pub id_scope: String,
    /// Path of the CA certificate to trust.
    pub ca_file: PathBuf,
    /// The hubs DPS assigns devices to.
    pub linked_hubs: Vec<String>,
    /// Connection string of the DPS service API (`provisioningserviceowner`).
    pub dps_connection_string: String,
    /// Connection string of the IoT Hub service API (`iothubowner`).
    pub hub_connection_string: String,
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] stops accepting connections
/// when the runtime shuts down; call `shutdown` to close them and flush the state now.
pub struct Emulator {
    info: EmulatorInfo,
    tls: Arc<TlsMaterial>,
    store: Store,
    dps: Arc<DpsRuntime>,
    hub: Arc<HubRuntime>,
    issuer: Arc<CaIssuer>,
    files: Arc<FileUploadApi>,
    servers: Servers,
    mqtt_addr: SocketAddr,
    https_addr: SocketAddr,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("mqtt_addr", &self.mqtt_addr)
            .field("https_addr", &self.https_addr)
            .field("id_scope", &self.info.id_scope)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts an emulator: loads or creates its CA, state and service key, preloads the
    /// configured enrollments, and listens.
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        prepare_data_dir(&config.data_dir)?;
        // One server certificate for DPS and every linked hub (#15 item 2).
        let tls = Arc::new(TlsMaterial::load_or_create_covering(
            &config.data_dir,
            &config.hostname,
            &config.hubs(),
        )?);
        let store = Store::open(config.data_dir.join(STORE_FILE))?;
        // Jobs a previous run left half done are failed, not resumed (#15).
        store.mutate(crate::hub::jobs::fail_interrupted);
        let service_key = service_key(&config)?;
        let key = dps_auth::SymmetricKey::from_base64(&service_key)
            .map_err(|e| EmulatorError::ServiceKey(e.to_string()))?;

        for enrollment in config.file.enrollments.iter().cloned() {
            enrollments::put_enrollment(&store, enrollment, None)
                .await
                .map_err(EmulatorError::Preload)?;
        }
        for group in config.file.enrollment_groups.iter().cloned() {
            enrollments::put_group(&store, group, None)
                .await
                .map_err(EmulatorError::Preload)?;
        }

        let hubs = config.hubs();
        let issuer = Arc::new(CaIssuer::new(
            Arc::clone(&tls),
            std::time::Duration::from_secs(config.file.behaviour.certificate_lifetime_seconds),
        ));
        let registrar = Registrar::new(
            store.clone(),
            hubs.clone(),
            Arc::clone(&issuer) as Arc<dyn CertificateIssuer>,
        );
        let dps = Arc::new(DpsRuntime::new(
            config.id_scope.clone(),
            registrar,
            &config.file.behaviour,
        ));
        let hub = HubRuntime::new(
            store.clone(),
            hubs.clone(),
            vec![tls.ca_certificate().clone()],
        );
        hub.set_issuer(Arc::clone(&issuer));
        let hub_api = Arc::new(HubServiceApi {
            runtime: Arc::clone(&hub),
            hostname: config.hostname.clone(),
            key: key.clone(),
        });
        // File upload (#14): the built-in blob endpoint, or the configured external account.
        let files = Arc::new(crate::hub::files_api(
            &config,
            &key,
            &hub,
            tls.ca_certificate(),
        )?);
        let service = Arc::new(ServiceApi {
            store: store.clone(),
            hostname: config.hostname.clone(),
            key,
            dps: Arc::clone(&dps),
            hub: Arc::clone(&hub),
            issuer: Arc::clone(&issuer),
        });

        let mut options = ServerOptions::new(
            tls.server_config(),
            Arc::new(MqttRouter {
                dps: Arc::clone(&dps),
                hub: Arc::clone(&hub),
            }),
            Arc::new(HttpRouter {
                service,
                hub_api,
                files: Arc::clone(&files),
            }),
        );
        options.bind = config.bind;
        options.mqtt_port = config.mqtt_port;
        options.https_port = config.https_port;
        let limits = &config.file.behaviour.limits;
        let seconds = std::time::Duration::from_secs;
        options.max_connections = limits.max_connections;
        options.max_unauthenticated_connections = limits.max_unauthenticated_connections;
        options.http_header_timeout = seconds(limits.http_header_timeout_seconds);
        options.http_body_timeout = seconds(limits.http_body_timeout_seconds);
        options.http_write_timeout = seconds(limits.write_timeout_seconds);
        options.mqtt_write_timeout = seconds(limits.write_timeout_seconds);
        options.mqtt_max_connect_packet_size = limits.max_connect_packet_size;
        options.mqtt_idle_timeout = seconds(limits.idle_timeout_seconds);
        let servers = Servers::start(options).await?;
        let (mqtt_addr, https_addr) = (servers.mqtt_addr(), servers.https_addr());

        let host = &config.hostname;
        let https_host = if https_addr.port() == 443 {
            host.clone()
        } else {
            format!("{host}:{}", https_addr.port())
        };
        let info = EmulatorInfo {
            hostname: host.clone(),
            mqtt_endpoint: format!("{host}:{}", mqtt_addr.port()),
            https_endpoint: format!("{host}:{}", https_addr.port()),
            websocket_url: format!("wss://{host}:{}/$iothub/websocket", https_addr.port()),
            id_scope: config.id_scope.clone(),
            ca_file: tls.ca_path(),
            linked_hubs: hubs,
            dps_connection_string: format!(
                "HostName={https_host};SharedAccessKeyName=provisioningserviceowner;SharedAccessKey={service_key}"
            ),
            hub_connection_string: format!(
                "HostName={https_host};SharedAccessKeyName=iothubowner;SharedAccessKey={service_key}"
            ),
        };
        files.set_https_host(&https_host);
        tracing::info!(mqtt = %mqtt_addr, https = %https_addr, id_scope = %info.id_scope, "emulator ready");
        Ok(Self {
            info,
            tls,
            store,
            dps,
            hub,
            issuer,
            files,
            servers,
            mqtt_addr,
            https_addr,
        })
    }

    /// Endpoints, CA file, id scope and connection strings.
    pub fn info(&self) -> &EmulatorInfo {
        &self.info
    }

    /// The bound MQTT-over-TLS address.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        self.tls.ca_pem()
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> &rustls_pki_types::CertificateDer<'static> {
        self.tls.ca_certificate()
    }

    /// The id scope.
    pub fn id_scope(&self) -> &str {
        &self.info.id_scope
    }

    /// Creates or replaces an individual enrollment (as `PUT /enrollments/{id}`).
    pub async fn put_enrollment(
        &self,
        enrollment: IndividualEnrollment,
        if_match: Option<&str>,
    ) -> Result<IndividualEnrollment, ServiceFailure> {
        enrollments::put_enrollment(&self.store, enrollment, if_match).await
    }

    /// Reads an individual enrollment, keys included.
    pub fn enrollment(
        &self,
        registration_id: &str,
    ) -> Result<IndividualEnrollment, ServiceFailure> {
        enrollments::get_enrollment(&self.store, registration_id)
    }

    /// Deletes an individual enrollment.
    pub async fn delete_enrollment(
        &self,
        registration_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        enrollments::delete(
            &self.store,
            enrollments::Kind::Individual,
            registration_id,
            if_match,
        )
        .await
    }

    /// Creates or replaces an enrollment group.
    pub async fn put_enrollment_group(
        &self,
        group: EnrollmentGroup,
        if_match: Option<&str>,
    ) -> Result<EnrollmentGroup, ServiceFailure> {
        enrollments::put_group(&self.store, group, if_match).await
    }

    /// Reads an enrollment group, keys included.
    pub fn enrollment_group(&self, group_id: &str) -> Result<EnrollmentGroup, ServiceFailure> {
        enrollments::get_group(&self.store, group_id)
    }

    /// Deletes an enrollment group.
    pub async fn delete_enrollment_group(
        &self,
        group_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        enrollments::delete(&self.store, enrollments::Kind::Group, group_id, if_match).await
    }

    /// A device's registration record.
    pub fn registration(
        &self,
        registration_id: &str,
    ) -> Result<DeviceRegistrationState, ServiceFailure> {
        enrollments::get_registration(&self.store, registration_id)
    }

    /// Deletes a registration record.
    pub async fn delete_registration(&self, registration_id: &str) -> Result<(), ServiceFailure> {
        enrollments::delete_registration(&self.store, registration_id, None).await
    }

    /// A device identity in one of the emulated hubs.
    pub fn hub_device(&self, hub: &str, device_id: &str) -> Option<HubDevice> {
        self.store.read(|data| {
            data.hub_devices
                .get(&StoreData::hub_device_key(hub, device_id))
                .cloned()
        })
    }

    /// Every device identity in the emulated hubs.
    pub fn hub_devices(&self) -> Vec<HubDevice> {
        self.store
            .read(|data| data.hub_devices.values().cloned().collect())
    }

    /// Replaces the injected faults (counters restart).
    pub fn set_faults(&self, faults: Faults) {
        self.dps.set_faults(faults);
    }

    /// The injected faults, with their counters as they stand.
    pub fn faults(&self) -> Faults {
        self.dps.faults()
    }

    /// How many DPS device requests (register and operation-status publishes on the documented
    /// topics) `registration_id` has sent since the emulator started, including those answered
    /// with injected faults or closed on. Registration ids are case-insensitive.
    pub fn device_requests(&self, registration_id: &str) -> u32 {
        self.dps.device_requests(registration_id)
    }

    /// Replaces the `retry-after` of 202 answers and the number of polls before assignment.
    pub fn set_timing(&self, retry_after_seconds: u32, polls_before_assignment: u32) {
        self.dps
            .set_timing(retry_after_seconds, polls_before_assignment);
    }

    /// The hub the service API and the admin API address by default: the first linked hub
    /// (the host name, unless hubs are configured).
    pub fn default_hub(&self) -> &str {
        self.hub.default_hub()
    }

    /// Creates a device identity in `hub` (as `PUT /devices/{id}` without `If-Match`): keys
    /// are generated when omitted; 409001 if it exists.
    pub async fn create_device(
        &self,
        hub: &str,
        device: DeviceIdentity,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        let id = device.device_id.clone();
        self.hub.put_device(hub, &id, device, None).await
    }

    /// Updates an existing device identity (status, status reason, authentication,
    /// capabilities). With `if_match`, 412 unless it is the identity's etag (or `*`).
    pub async fn update_device(
        &self,
        hub: &str,
        device: DeviceIdentity,
        if_match: Option<&str>,
    ) -> Result<DeviceIdentity, ServiceFailure> {
        let id = device.device_id.clone();
        self.hub.device(hub, &id)?;
        self.hub
            .put_device(hub, &id, device, Some(if_match.unwrap_or("*")))
            .await
    }

    /// A device identity, with its live connection state.
    pub fn device(&self, hub: &str, device_id: &str) -> Result<DeviceIdentity, ServiceFailure> {
        self.hub.device(hub, device_id)
    }

    /// The device identities of `hub` (at most 1000, as the service lists them).
    pub fn devices(&self, hub: &str) -> Result<Vec<DeviceIdentity>, ServiceFailure> {
        self.hub.devices(hub, usize::MAX)
    }

    /// Deletes a device identity (its modules, twin and queued messages too) and closes its
    /// connections. With `if_match`, 412 unless it is the identity's etag (or `*`).
    pub async fn delete_device(
        &self,
        hub: &str,
        device_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        self.hub.delete_device(hub, device_id, if_match).await
    }

    /// Creates a module identity on a device; keys are generated when omitted.
    pub async fn create_module(
        &self,
        hub: &str,
        device_id: &str,
        module: ModuleIdentity,
    ) -> Result<ModuleIdentity, ServiceFailure> {
        let id = module.module_id.clone();
        self.hub.put_module(hub, device_id, &id, module, None).await
    }

    /// A module identity.
    pub fn module(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
    ) -> Result<ModuleIdentity, ServiceFailure> {
        self.hub.module(hub, device_id, module_id)
    }

    /// Deletes a module identity and closes its connection.
    pub async fn delete_module(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceFailure> {
        self.hub
            .delete_module(hub, device_id, module_id, if_match)
            .await
    }

    /// A device twin, as `GET /twins/{id}` shows it.
    pub fn twin(&self, hub: &str, device_id: &str) -> Result<DeviceTwin, ServiceFailure> {
        self.hub.twin(hub, device_id, None)
    }

    /// A module twin.
    pub fn module_twin(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
    ) -> Result<DeviceTwin, ServiceFailure> {
        self.hub.twin(hub, device_id, Some(module_id))
    }

    /// Updates a device twin as `PATCH /twins/{id}` does: `patch` is
    /// `{"tags": {..}, "properties": {"desired": {..}}}` (either part optional; `null` members
    /// delete). A desired change is pushed to the device if connected and subscribed. With
    /// `if_match`, 412 unless it is the twin's etag (or `*`).
    pub async fn update_twin(
        &self,
        hub: &str,
        device_id: &str,
        patch: serde_json::Value,
        if_match: Option<&str>,
    ) -> Result<DeviceTwin, ServiceFailure> {
        self.hub
            .update_twin(hub, device_id, None, &patch, if_match, false)
            .await
    }

    /// Merges `desired` into a device twin's desired properties (see
    /// [`Emulator::update_twin`]).
    pub async fn patch_desired(
        &self,
        hub: &str,
        device_id: &str,
        desired: serde_json::Value,
    ) -> Result<DeviceTwin, ServiceFailure> {
        let patch = serde_json::json!({ "properties": { "desired": desired } });
        self.update_twin(hub, device_id, patch, None).await
    }

    /// Updates a module twin (see [`Emulator::update_twin`]).
    pub async fn update_module_twin(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        patch: serde_json::Value,
        if_match: Option<&str>,
    ) -> Result<DeviceTwin, ServiceFailure> {
        self.hub
            .update_twin(hub, device_id, Some(module_id), &patch, if_match, false)
            .await
    }

    /// Invokes a direct method on a device and waits for its answer: 404103 DeviceNotOnline
    /// if it is not connected and subscribed within the connect timeout, 504101
    /// GatewayTimeout if it does not answer within the response timeout.
    pub async fn invoke_method(
        &self,
        hub: &str,
        device_id: &str,
        invocation: MethodInvocation,
    ) -> Result<MethodResult, ServiceFailure> {
        self.hub
            .invoke_method(hub, device_id, None, &invocation)
            .await
    }

    /// Invokes a direct method on a module (see [`Emulator::invoke_method`]).
    pub async fn invoke_module_method(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        invocation: MethodInvocation,
    ) -> Result<MethodResult, ServiceFailure> {
        self.hub
            .invoke_method(hub, device_id, Some(module_id), &invocation)
            .await
    }

    /// Queues a cloud-to-device message (at most 50 per device, 403004 beyond) and delivers it
    /// at once if the device is connected and subscribed, else when it next subscribes. The
    /// message stays queued until the device acknowledges it. Returns the message id.
    pub async fn send_c2d(
        &self,
        hub: &str,
        device_id: &str,
        message: CloudToDeviceMessage,
    ) -> Result<String, ServiceFailure> {
        self.hub.send_c2d(hub, device_id, message).await
    }

    /// Sends a message to a module's input (what an IoT Edge route would do); the module must
    /// be connected and subscribed to its inputs (else 404103). Returns the message id.
    pub fn send_to_module_input(
        &self,
        hub: &str,
        device_id: &str,
        module_id: &str,
        input: &str,
        message: CloudToDeviceMessage,
    ) -> Result<String, ServiceFailure> {
        self.hub
            .send_to_input(hub, device_id, module_id, input, message)
    }

    /// The events of `hub` (telemetry and lifecycle notifications) numbered after `since`,
    /// oldest first. The feed keeps the last [`hub::EVENT_FEED_CAPACITY`](crate::hub::EVENT_FEED_CAPACITY)
    /// events of all hubs, in memory.
    pub fn hub_events(&self, hub: &str, since: u64) -> Vec<HubEvent> {
        self.hub.read_events(hub, since, usize::MAX).0
    }

    /// The file upload notifications of `hub` numbered after `since` on the events feed (the
    /// uploads devices reported as successful), oldest first.
    pub fn file_upload_notifications(&self, hub: &str, since: u64) -> Vec<FileUploadNotification> {
        self.hub_events(hub, since)
            .iter()
            .filter(|e| e.kind == crate::hub::HubEventKind::FileUpload)
            .filter_map(|e| serde_json::from_slice(&e.body).ok())
            .collect()
    }

    /// A blob of the built-in blob endpoint (`None` when it does not exist, or when uploads go
    /// to an external account).
    pub fn blob(&self, container: &str, blob_name: &str) -> Option<Vec<u8>> {
        let api = self.files.builtin()?;
        api.store
            .get(container, blob_name)
            .map(|b| b.content.to_vec())
    }

    /// A blob of the storage linked to the hub (the built-in endpoint or the external account
    /// such as Azurite); `None` when it does not exist.
    ///
    /// # Errors
    /// A 500 [`ServiceFailure`] when the external account cannot be read.
    pub async fn download_blob(
        &self,
        container: &str,
        blob_name: &str,
    ) -> Result<Option<Vec<u8>>, ServiceFailure> {
        self.files.download(container, blob_name).await
    }

    /// How many file uploads a device has in progress (requested, not yet notified, SAS not
    /// expired).
    pub fn active_file_uploads(&self, hub: &str, device_id: &str) -> usize {
        self.files.active(hub, device_id)
    }

    /// Stops listening, closes every connection and writes the state.
    pub async fn shutdown(self) {
        self.servers.shutdown().await;
        self.store.close().await;
    }
}

/// Sends each MQTT connection to DPS or to the hub by its username.
struct MqttRouter {
    dps: Arc<DpsRuntime>,
    hub: Arc<HubRuntime>,
}

#[async_trait]
impl MqttHandler for MqttRouter {
    async fn connect(
        &self,
        request: ConnectRequest,
        outbox: Outbox,
    ) -> Result<Box<dyn MqttSession>, ConnectReturnCode> {
        let username = request.username.as_deref().unwrap_or_default();
        if DpsRuntime::is_dps_username(username) {
            return self.dps.connect(&request, outbox);
        }
        // Everything else is a hub username (`{hub}/{device}[/{module}]/?api-version=..`).
        self.hub.connect(&request, outbox)
    }
}

/// Sends each REST request to the DPS or hub service API by its path.
struct HttpRouter {
    service: Arc<ServiceApi>,
    hub_api: Arc<HubServiceApi>,
    files: Arc<FileUploadApi>,
}

#[async_trait]
impl HttpHandler for HttpRouter {
    fn authorize(&self, request: &HttpRequest) -> Result<(), Box<HttpResponse>> {
        let result = if FileUploadApi::serves(request) {
            // File upload (#14): the device's own credentials, as for CONNECT.
            self.files.authorize(request)
        } else if self
            .files
            .builtin()
            .is_some_and(|b| b.serves(&request.path))
        {
            // The blob SAS is in the query string; checked with the request.
            Ok(())
        } else if HubServiceApi::serves(&request.path) {
            self.hub_api.authorize(request).map(drop)
        } else if ServiceApi::serves(&request.path) {
            self.service.authorize(request)
        } else {
            // No API here: answered at once, the body is never read.
            return Err(Box::new(not_found(&request.path)));
        };
        result.map_err(|failure| Box::new(failure.to_response()))
    }

    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        // File upload (#14): the devices' upload endpoints share `/devices` with the service
        // API, and the built-in blob endpoint lives under `/{account}/`.
        if FileUploadApi::serves(&request) {
            return self.files.handle(request).await;
        }
        if let Some(blob) = self.files.builtin().filter(|b| b.serves(&request.path)) {
            return blob.handle(&request);
        }
        // Hub paths first: `/emulator/hubs/..` is the hub's, the rest of `/emulator` DPS's.
        if HubServiceApi::serves(&request.path) {
            return self.hub_api.handle(request).await;
        }
        if ServiceApi::serves(&request.path) {
            return self.service.handle(request).await;
        }
        not_found(&request.path)
    }
}

fn not_found(path: &str) -> HttpResponse {
    HttpResponse::json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "errorCode": 404_000, "message": format!("{path} not found") }),
    )
}
