//! Registration requests and operation-status polls: enrollment lookup, allocation,
//! reprovisioning, certificate issuance, and the operation table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;

use dps_core::dps::{
    CSR_API_VERSION, DeviceRegistrationResult, ErrorCode, RegistrationOperationStatus,
    RegistrationRequest, RegistrationStatus, SymmetricKeyRegistrationResult,
    X509RegistrationResult,
};

use super::allocation;
use super::auth::{DpsIdentity, EnrollmentRef, Proof};
use super::placement::{hub_authentication, upsert_device};
use super::reply::Reply;
use super::webhook;
use crate::model::{
    AllocationPolicy, DeviceRegistrationState, EnrollmentSettings, ProvisioningStatus,
};
use crate::store::{Store, StoreData};
use crate::util::x509;
use crate::util::{ids, time};

/// Signs device CSRs for certificate issuance.
pub(crate) trait CertificateIssuer: Send + Sync {
    /// Signs a DER PKCS#10 request; returns the chain, leaf first, as DER.
    fn issue(&self, csr_der: &[u8]) -> Result<Vec<Vec<u8>>, String>;
}

/// A registration operation, kept in memory while devices poll it.
#[derive(Debug, Clone)]
struct Operation {
    registration_id: String,
    polls_left: u32,
    result: RegistrationOperationStatus,
}

/// How many finished operations are kept for late polls. A registration's new operation
/// replaces its old one, so this bounds memory only against many distinct devices.
const MAX_OPERATIONS: usize = 100_000;

/// The DPS device runtime: turns requests into replies.
pub(crate) struct Registrar {
    pub(crate) store: Store,
    pub(crate) linked_hubs: Vec<String>,
    pub(crate) issuer: Arc<dyn CertificateIssuer>,
    operations: Mutex<HashMap<String, Operation>>,
}

/// What the device sent in its registration request.
struct Request {
    payload: Option<serde_json::Value>,
    csr: Option<String>,
}

impl Registrar {
    pub(crate) fn new(
        store: Store,
        linked_hubs: Vec<String>,
        issuer: Arc<dyn CertificateIssuer>,
    ) -> Self {
        Self {
            store,
            linked_hubs,
            issuer,
            operations: Mutex::new(HashMap::new()),
        }
    }

    /// Handles `iotdps-register`. `retry_after` and `polls` come from the behaviour knobs.
    pub(crate) async fn register(
        &self,
        identity: &DpsIdentity,
        body: &[u8],
        retry_after: u32,
        polls: u32,
    ) -> Reply {
        let request = match parse_request(identity, body) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        let Some(enrollment) = identity.enrollment.as_ref() else {
            return Reply::error(
                401,
                401_002,
                "Unauthorized: no enrollment matches this device.",
                None,
            );
        };
        let Some((settings, full)) = self.store.read(|data| lookup(data, enrollment)) else {
            return Reply::error(
                401,
                401_002,
                "Unauthorized: the enrollment no longer exists.",
                None,
            );
        };

        let result = if settings.provisioning_status == ProvisioningStatus::Disabled {
            self.record(identity, RegistrationStatus::Disabled, None)
                .await;
            return Reply::json(
                200,
                None,
                &RegistrationOperationStatus {
                    operation_id: String::new(),
                    status: RegistrationStatus::Disabled,
                    registration_state: Some(DeviceRegistrationResult {
                        registration_id: Some(identity.registration_id.clone()),
                        status: Some(RegistrationStatus::Disabled),
                        ..DeviceRegistrationResult::default()
                    }),
                },
            );
        } else {
            self.assign(identity, enrollment, &settings, &full, request)
                .await
        };

        let result = match result {
            Ok(result) => result,
            Err(reply) => return reply,
        };
        let operation_id = result.operation_id.clone();
        let registration_id = identity.registration_id.to_ascii_lowercase();
        {
            let mut operations = self.lock();
            // One live operation per device: a new registration supersedes the previous one.
            operations.retain(|_, op| op.registration_id != registration_id);
            if operations.len() >= MAX_OPERATIONS {
                operations.clear();
            }
            operations.insert(
                operation_id.clone(),
                Operation {
                    registration_id,
                    polls_left: polls,
                    result: result.clone(),
                },
            );
        }
        if polls == 0 {
            return Reply::json(200, None, &result);
        }
        Reply::json(
            202,
            Some(retry_after),
            &json!({ "operationId": operation_id, "status": "assigning" }),
        )
    }

    /// Handles `iotdps-get-operationstatus`.
    pub(crate) fn poll(
        &self,
        identity: &DpsIdentity,
        operation_id: &str,
        retry_after: u32,
    ) -> Reply {
        let mut operations = self.lock();
        let Some(op) = operations.get_mut(operation_id).filter(|op| {
            op.registration_id
                .eq_ignore_ascii_case(&identity.registration_id)
        }) else {
            return Reply::error(404, 404_201, "Operation not found.", None);
        };
        if op.polls_left > 1 {
            op.polls_left -= 1;
            return Reply::json(
                202,
                Some(retry_after),
                &json!({
                    "operationId": operation_id,
                    "status": "assigning",
                    "registrationState": { "registrationId": identity.registration_id, "status": "assigning" },
                }),
            );
        }
        op.polls_left = 0;
        let status = if op.result.status == RegistrationStatus::Assigning {
            202
        } else {
            200
        };
        Reply::json(status, None, &op.result)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Operation>> {
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Chooses the hub, issues the certificate, records the device; the operation's result.
    async fn assign(
        &self,
        identity: &DpsIdentity,
        enrollment: &EnrollmentRef,
        settings: &EnrollmentSettings,
        full: &serde_json::Value,
        request: Request,
    ) -> Result<RegistrationOperationStatus, Reply> {
        let operation_id = ids::operation_id();
        let registration_id = identity.registration_id.clone();
        let lower = registration_id.to_ascii_lowercase();
        let device_id = self.store.read(|data| match enrollment {
            EnrollmentRef::Individual(id) => {
                data.enrollments.get(id).and_then(|e| e.device_id.clone())
            }
            EnrollmentRef::Group(_) => None,
        });
        // Registration ids are case-insensitive but device ids are not: a device that registers
        // again with another case keeps the device id it got the first time.
        let previous_device_id = self.store.read(|data| {
            data.registrations
                .get(&lower)
                .and_then(|p| p.device_id.clone())
        });
        let device_id = device_id
            .or(previous_device_id)
            .unwrap_or_else(|| registration_id.clone());
        let previous = self
            .store
            .read(|data| data.registrations.get(&lower).cloned());

        // Allocation.
        let mut initial_twin = settings.initial_twin.clone();
        let mut returned_payload = None;
        // A device moved to another hub (#12) goes there, whatever the allocation policy; the
        // reprovision policy still decides whether it moves (service-behaviour.md §1.12).
        let moved_to = self.store.read(|data| data.moved_to.get(&lower).cloned());
        let chosen = if moved_to.is_some() {
            moved_to
        } else if settings.allocation_policy == Some(AllocationPolicy::Custom) {
            match self
                .custom_allocation(
                    identity,
                    enrollment,
                    settings,
                    full,
                    &request,
                    previous.as_ref(),
                )
                .await
            {
                Ok(response) => {
                    if response.initial_twin.is_some() {
                        initial_twin = response.initial_twin;
                    }
                    returned_payload = response.payload;
                    response.iot_hub_host_name
                }
                Err(failure) => {
                    return Ok(self
                        .failed(identity, operation_id, 400_207, &failure.0)
                        .await);
                }
            }
        } else {
            allocation::choose(settings, &self.linked_hubs, &registration_id)
        };
        let Some(chosen) =
            chosen.filter(|h| self.linked_hubs.iter().any(|l| l.eq_ignore_ascii_case(h)))
        else {
            return Ok(self
                .failed(
                    identity,
                    operation_id,
                    400_208,
                    "No linked IoT hub is available for this enrollment.",
                )
                .await);
        };

        // Certificate issuance.
        let issued = match request.csr.as_deref() {
            Some(csr) => Some(self.issue(&registration_id, csr)?),
            None => None,
        };

        let policy = settings.reprovision_policy.unwrap_or_default();
        // An issued certificate is what the device connects to its hub with: the hub trusts
        // the issuing CA (service-behaviour.md §1.16).
        let auth = if issued.is_some() {
            crate::certificates::issued_authentication()
        } else {
            hub_authentication(identity, settings, &registration_id)
        };
        let now = time::now_utc();
        // Durable before acknowledged: the device is told "assigned" only once the record
        // and the hub device are on disk, or a crash could leave it assigned to a hub that
        // does not know it (#11).
        let (placement, state) = self
            .store
            .mutate_durable(|data| {
                let previous_assignment = previous
                    .as_ref()
                    .and_then(|p| Some((p.assigned_hub.as_deref()?, p.substatus.as_ref()?)));
                let known_to_hub = data
                    .hub_devices
                    .contains_key(&StoreData::hub_device_key(&chosen, &device_id));
                let placement =
                    allocation::place(chosen.clone(), previous_assignment, policy, known_to_hub);
                upsert_device(
                    data,
                    &placement,
                    &device_id,
                    &registration_id,
                    auth,
                    initial_twin.as_ref(),
                    &now,
                );
                let state = DeviceRegistrationState {
                    registration_id: registration_id.clone(),
                    created_date_time_utc: Some(
                        previous
                            .as_ref()
                            .and_then(|p| p.created_date_time_utc.clone())
                            .unwrap_or_else(|| now.clone()),
                    ),
                    assigned_hub: Some(placement.hub.clone()),
                    device_id: Some(device_id.clone()),
                    status: RegistrationStatus::Assigned,
                    substatus: Some(placement.substatus.clone()),
                    error_code: None,
                    error_message: None,
                    last_updated_date_time_utc: Some(now.clone()),
                    etag: Some(ids::etag()),
                    payload: returned_payload.clone(),
                };
                data.registrations.insert(lower.clone(), state.clone());
                (placement, state)
            })
            .await;
        tracing::info!(
            registration_id = %registration_id,
            hub = %placement.hub,
            device_id = %device_id,
            substatus = %placement.substatus,
            "device assigned"
        );

        let payload = returned_payload
            .as_ref()
            .and_then(|p| serde_json::value::to_raw_value(p).ok());
        Ok(RegistrationOperationStatus {
            operation_id,
            status: RegistrationStatus::Assigned,
            registration_state: Some(DeviceRegistrationResult {
                registration_id: Some(registration_id),
                created_date_time_utc: state.created_date_time_utc,
                assigned_hub: state.assigned_hub,
                device_id: state.device_id,
                status: Some(RegistrationStatus::Assigned),
                substatus: state.substatus,
                last_updated_date_time_utc: state.last_updated_date_time_utc,
                etag: state.etag,
                payload,
                issued_certificate_chain: issued,
                x509: x509_result(identity, enrollment),
                symmetric_key: symmetric_key_result(identity, enrollment),
                ..DeviceRegistrationResult::default()
            }),
        })
    }

    async fn custom_allocation(
        &self,
        identity: &DpsIdentity,
        enrollment: &EnrollmentRef,
        settings: &EnrollmentSettings,
        full: &serde_json::Value,
        request: &Request,
        previous: Option<&DeviceRegistrationState>,
    ) -> Result<webhook::AllocationResponse, webhook::WebhookFailure> {
        let Some(definition) = settings.custom_allocation_definition.as_ref() else {
            return Err(webhook::WebhookFailure(
                "Custom allocation failed: the enrollment has no webhook".into(),
            ));
        };
        let mut context = json!({ "registrationId": identity.registration_id });
        if let Some(previous) = previous {
            context["currentIotHubHostName"] = json!(previous.assigned_hub);
            context["currentDeviceId"] = json!(previous.device_id);
        }
        match &identity.proof {
            Some(Proof::X509 { chain, .. }) => {
                context["x509"] = json!({
                    "certificateInfo": chain.first().and_then(|c| x509::certificate_info(c)),
                });
            }
            _ => context["symmetricKey"] = json!({}),
        }
        if let Some(payload) = &request.payload {
            context["payload"] = payload.clone();
        }
        let key = match enrollment {
            EnrollmentRef::Individual(_) => "individualEnrollment",
            EnrollmentRef::Group(_) => "enrollmentGroup",
        };
        let body = json!({
            key: full,
            "deviceRuntimeContext": context,
            "linkedHubs": allocation::candidates(settings, &self.linked_hubs),
        });
        webhook::call(&definition.webhook_url, &body).await
    }

    fn issue(&self, registration_id: &str, csr: &str) -> Result<Vec<String>, Reply> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(csr.trim())
            .map_err(|_| Reply::error(400, 400_004, "The CSR is not valid base64.", None))?;
        let chain = self
            .issuer
            .issue(&der)
            .map_err(|e| Reply::error(400, 400_004, &format!("The CSR was rejected: {e}"), None))?;
        let cn = chain.first().and_then(|leaf| x509::common_name(leaf));
        if !cn.is_some_and(|cn| cn.eq_ignore_ascii_case(registration_id)) {
            return Err(Reply::error(
                400,
                400_004,
                "The CSR's common name must equal the registration id.",
                None,
            ));
        }
        Ok(chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .collect())
    }

    async fn failed(
        &self,
        identity: &DpsIdentity,
        operation_id: String,
        code: u32,
        message: &str,
    ) -> RegistrationOperationStatus {
        let now = time::now_utc();
        self.record(identity, RegistrationStatus::Failed, Some((code, message)))
            .await;
        RegistrationOperationStatus {
            operation_id,
            status: RegistrationStatus::Failed,
            registration_state: Some(DeviceRegistrationResult {
                registration_id: Some(identity.registration_id.clone()),
                created_date_time_utc: Some(now.clone()),
                status: Some(RegistrationStatus::Failed),
                error_code: Some(ErrorCode(code)),
                error_message: Some(message.to_owned()),
                last_updated_date_time_utc: Some(now),
                etag: Some(ids::etag()),
                ..DeviceRegistrationResult::default()
            }),
        }
    }

    /// Records a registration that did not end in an assignment, on disk before the device
    /// is told.
    async fn record(
        &self,
        identity: &DpsIdentity,
        status: RegistrationStatus,
        error: Option<(u32, &str)>,
    ) {
        let now = time::now_utc();
        let lower = identity.registration_id.to_ascii_lowercase();
        self.store
            .mutate_durable(|data| {
                let previous = data.registrations.get(&lower);
                let state = DeviceRegistrationState {
                    registration_id: identity.registration_id.clone(),
                    created_date_time_utc: previous
                        .and_then(|p| p.created_date_time_utc.clone())
                        .or_else(|| Some(now.clone())),
                    assigned_hub: previous.and_then(|p| p.assigned_hub.clone()),
                    device_id: previous.and_then(|p| p.device_id.clone()),
                    status,
                    substatus: previous.and_then(|p| p.substatus.clone()),
                    error_code: error.map(|(c, _)| ErrorCode(c)),
                    error_message: error.map(|(_, m)| m.to_owned()),
                    last_updated_date_time_utc: Some(now.clone()),
                    etag: Some(ids::etag()),
                    payload: None,
                };
                data.registrations.insert(lower, state);
            })
            .await;
    }
}

fn parse_request(identity: &DpsIdentity, body: &[u8]) -> Result<Request, Reply> {
    // Python polls with " " and C# registers with an empty body: both mean "no fields".
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Request {
            payload: None,
            csr: None,
        });
    }
    let request: RegistrationRequest = serde_json::from_slice(body).map_err(|e| {
        Reply::error(
            400,
            400_004,
            &format!("The request body is not valid: {e}"),
            None,
        )
    })?;
    if let Some(id) = &request.registration_id {
        if !id.eq_ignore_ascii_case(&identity.registration_id) {
            return Err(Reply::error(
                400,
                400_004,
                "The registration id in the body differs from the one in CONNECT.",
                None,
            ));
        }
    }
    if request.csr.is_some() && api_date(&identity.api_version) < api_date(CSR_API_VERSION) {
        return Err(Reply::error(
            400,
            400_004,
            "Certificate signing requests need api-version 2025-07-01-preview or later.",
            None,
        ));
    }
    let payload = request
        .payload
        .as_deref()
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    Ok(Request {
        payload,
        csr: request.csr,
    })
}

/// The `YYYY-MM-DD` part of an api-version, which orders versions.
/// `None` for versions that do not start with a date: they are treated as too old for
/// features gated on a version.
fn api_date(version: &str) -> Option<&str> {
    let date = version.get(..10)?;
    let digits = date.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    digits.then_some(date)
}

/// The enrollment's settings and its full JSON (for the custom allocation webhook).
fn lookup(
    data: &StoreData,
    enrollment: &EnrollmentRef,
) -> Option<(EnrollmentSettings, serde_json::Value)> {
    match enrollment {
        EnrollmentRef::Individual(id) => data.enrollments.get(id).map(|e| {
            (
                e.settings.clone(),
                serde_json::to_value(e).unwrap_or_default(),
            )
        }),
        EnrollmentRef::Group(id) => data.groups.get(id).map(|g| {
            (
                g.settings.clone(),
                serde_json::to_value(g).unwrap_or_default(),
            )
        }),
    }
}

fn x509_result(
    identity: &DpsIdentity,
    enrollment: &EnrollmentRef,
) -> Option<X509RegistrationResult> {
    let Some(Proof::X509 { chain, matched }) = &identity.proof else {
        return None;
    };
    Some(X509RegistrationResult {
        certificate_info: chain.first().and_then(|c| x509::certificate_info(c)),
        enrollment_group_id: match enrollment {
            EnrollmentRef::Group(id) => Some(id.clone()),
            EnrollmentRef::Individual(_) => None,
        },
        signing_certificate_info: match enrollment {
            EnrollmentRef::Group(_) => x509::certificate_info(matched),
            EnrollmentRef::Individual(_) => None,
        },
    })
}

fn symmetric_key_result(
    identity: &DpsIdentity,
    enrollment: &EnrollmentRef,
) -> Option<SymmetricKeyRegistrationResult> {
    let Some(Proof::Sas) = &identity.proof else {
        return None;
    };
    Some(SymmetricKeyRegistrationResult {
        enrollment_group_id: match enrollment {
            EnrollmentRef::Group(id) => Some(id.clone()),
            EnrollmentRef::Individual(_) => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoIssuer;

    impl CertificateIssuer for NoIssuer {
        fn issue(&self, _csr_der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
            Err("no CA in this test".into())
        }
    }

    /// #11: "assigned" is answered only once the registration record and the hub device are
    /// on disk, so a crash right after the answer cannot take the assignment back. On a
    /// single-threaded runtime the write-behind flusher cannot run between the change and the
    /// answer unless the registrar waits for it.
    #[tokio::test(flavor = "current_thread")]
    async fn assignment_is_on_disk_before_it_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.redb")).unwrap();
        let enrollment: crate::model::IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": "dev-1",
            "attestation": { "type": "symmetricKey", "symmetricKey": {
                "primaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "secondaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } }
        }))
        .unwrap();
        store
            .mutate_durable(|data| data.enrollments.insert("dev-1".into(), enrollment))
            .await;
        let registrar = Registrar::new(store.clone(), vec!["hub-a".into()], Arc::new(NoIssuer));
        let identity = DpsIdentity {
            registration_id: "dev-1".into(),
            api_version: "2021-06-01".into(),
            enrollment: Some(EnrollmentRef::Individual("dev-1".into())),
            proof: Some(Proof::Sas),
        };

        let reply = registrar
            .register(&identity, br#"{"registrationId":"dev-1"}"#, 3, 0)
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );

        let state = store.committed();
        assert_eq!(
            state["registrations"]["dev-1"]["status"], "assigned",
            "{state}"
        );
        assert!(state["hub_devices"].get("hub-a/dev-1").is_some(), "{state}");
    }

    /// A refusal told to the device (here: a disabled enrollment) is on disk too.
    #[tokio::test(flavor = "current_thread")]
    async fn disabled_answer_is_on_disk_before_it_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state.redb")).unwrap();
        let enrollment: crate::model::IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": "dev-2",
            "provisioningStatus": "disabled",
            "attestation": { "type": "symmetricKey", "symmetricKey": {
                "primaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                "secondaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } }
        }))
        .unwrap();
        store
            .mutate_durable(|data| data.enrollments.insert("dev-2".into(), enrollment))
            .await;
        let registrar = Registrar::new(store.clone(), vec!["hub-a".into()], Arc::new(NoIssuer));
        let identity = DpsIdentity {
            registration_id: "dev-2".into(),
            api_version: "2021-06-01".into(),
            enrollment: Some(EnrollmentRef::Individual("dev-2".into())),
            proof: Some(Proof::Sas),
        };
        let reply = registrar
            .register(&identity, br#"{"registrationId":"dev-2"}"#, 3, 0)
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            store.committed()["registrations"]["dev-2"]["status"],
            "disabled"
        );
    }
}
