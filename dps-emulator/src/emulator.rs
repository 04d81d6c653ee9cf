//! The emulator as one object: start it, read its endpoints, manage it, stop it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use serde::Serialize;

use crate::config::EmulatorConfig;
use crate::dps::faults::Faults;
use crate::dps::registrar::{CertificateIssuer, Registrar};
use crate::dps::runtime::DpsRuntime;
use crate::model::{DeviceRegistrationState, EnrollmentGroup, HubDevice, IndividualEnrollment};
use crate::net::{
    ConnectRequest, ConnectReturnCode, HttpHandler, HttpRequest, HttpResponse, MqttHandler,
    MqttSession, Outbox, ServerOptions, Servers,
};
use crate::service::{ServiceFailure, enrollments, rest::ServiceApi};
use crate::state::{Store, StoreData, StoreError};
use crate::tls::{TlsError, TlsMaterial};

const STORE_FILE: &str = "state.json";
const SERVICE_KEY_FILE: &str = "service-key";
/// Validity of certificates issued for CSRs.
const ISSUED_CERT_DAYS: u32 = 365;

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
    /// A preloaded enrollment was refused.
    #[error("preloaded enrollment refused: {0}")]
    Preload(ServiceFailure),
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
        let tls = Arc::new(TlsMaterial::load_or_create(
            &config.data_dir,
            &config.hostname,
        )?);
        let store = Store::open(config.data_dir.join(STORE_FILE))?;
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
        let issuer: Arc<dyn CertificateIssuer> = Arc::new(CaIssuer(Arc::clone(&tls)));
        let registrar = Registrar::new(store.clone(), hubs.clone(), issuer);
        let dps = Arc::new(DpsRuntime::new(
            config.id_scope.clone(),
            registrar,
            &config.file.behaviour,
        ));
        let service = Arc::new(ServiceApi {
            store: store.clone(),
            hostname: config.hostname.clone(),
            key,
            dps: Arc::clone(&dps),
        });

        let mut options = ServerOptions::new(
            tls.server_config(),
            Arc::new(MqttRouter {
                dps: Arc::clone(&dps),
            }),
            Arc::new(HttpRouter { service }),
        );
        options.bind = config.bind;
        options.mqtt_port = config.mqtt_port;
        options.https_port = config.https_port;
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
        tracing::info!(mqtt = %mqtt_addr, https = %https_addr, id_scope = %info.id_scope, "emulator ready");
        Ok(Self {
            info,
            tls,
            store,
            dps,
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

    /// Stops listening, closes every connection and writes the state.
    pub async fn shutdown(self) {
        self.servers.shutdown().await;
        self.store.flush().await;
    }
}

/// Reads the service key from the config or the data dir, creating and saving one if needed.
fn service_key(config: &EmulatorConfig) -> Result<String, EmulatorError> {
    if let Some(key) = &config.service_key {
        return Ok(key.clone());
    }
    let path = config.data_dir.join(SERVICE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = crate::util::ids::service_key();
            crate::persist::write_atomic(&path, key.as_bytes()).map_err(|e| {
                EmulatorError::ServiceKey(format!("cannot save {}: {e}", path.display()))
            })?;
            Ok(key)
        }
        Err(e) => Err(EmulatorError::ServiceKey(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

struct CaIssuer(Arc<TlsMaterial>);

impl CertificateIssuer for CaIssuer {
    fn issue(&self, csr_der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let leaf = self
            .0
            .sign_csr(csr_der, ISSUED_CERT_DAYS)
            .map_err(|e| e.to_string())?;
        Ok(vec![leaf.to_vec(), self.0.ca_certificate().to_vec()])
    }
}

/// Sends each MQTT connection to DPS or to the hub by its username.
struct MqttRouter {
    dps: Arc<DpsRuntime>,
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
        tracing::warn!(client_id = %request.client_id, "IoT Hub device connections are not served yet");
        Err(ConnectReturnCode::NotAuthorized)
    }
}

/// Sends each REST request to the DPS or hub service API by its path.
struct HttpRouter {
    service: Arc<ServiceApi>,
}

#[async_trait]
impl HttpHandler for HttpRouter {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        if ServiceApi::serves(&request.path) {
            return self.service.handle(request).await;
        }
        HttpResponse::json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "errorCode": 404_000, "message": format!("{} not found", request.path) }),
        )
    }
}
