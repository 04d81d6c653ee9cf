//! Certificate renewal over the hub (hub-device-protocol.md, "Hub certificate renewal";
//! api-version `2025-08-01-preview`): the device subscribes `$iothub/credentials/res/#` and
//! publishes `{"id","csr"[,"replace"]}` to `$iothub/credentials/POST/issueCertificate/?$rid=`;
//! the hub answers `202` (`{"correlationId","operationExpires"}`), then, after the configured
//! delay, `200` with the issued chain (a JSON array of base64 DER certificates, leaf first).
//!
//! Rules the hub applies here:
//! - one request per device at a time: another one without `replace` (`"*"` or the active
//!   request's `$rid`) gets `409` with errorCode 409004, a `retryAfter` and the active
//!   request's id in `info.requestId`;
//! - a CSR longer than 8 KB (base64 text) gets `413` with errorCode 413001 (MessageTooLarge,
//!   service-behaviour.md §3.3);
//! - a body that is not a request, an `id` that is not the connected device, or a module: `400`
//!   errorCode 400004; a CSR that does not decode or whose CN is not the device id: `400`
//!   errorCode 400040;
//! - a hub that does not offer the topic (a fault knob, or a connection with an older
//!   api-version): `404` errorCode 404000, so the device renews by provisioning again
//!   (service-behaviour.md §1.16).
//!
//! The issued certificate comes from the emulator's CA with the configured lifetime, and the
//! identity is switched to trust that CA, so the device connects with it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dps_core::device::{MAX_CSR_LEN, REQUEST_ALREADY_ACTIVE};
use dps_core::hub::{
    CREDENTIALS_API_VERSION, CertificateAccepted, CredentialErrorBody, CredentialErrorInfo,
    CredentialResponseTopic, IssueCertificateRequest, IssuedCertificates, REPLACE_ANY,
};
use tokio::task::JoinHandle;

use crate::certificates::{IssueError, issued_authentication};
use crate::hub::live::IdentityKey;
use crate::hub::runtime::HubRuntime;
use crate::store::StoreData;
use crate::util::{ids, time};

/// How long after its `202` a request's operation expires when no `200` came.
const OPERATION_TTL: Duration = Duration::from_secs(300);

/// A certificate request between its `202` and its `200`.
struct Active {
    /// The request's `$rid`, as received.
    rid: String,
    correlation_id: String,
    /// When the `200` is due.
    due: Instant,
    operation_expires: String,
    /// Sends the `200`; aborted when a `replace` supersedes the request.
    task: JoinHandle<()>,
    /// Tells this request from a later one of the same identity.
    seq: u64,
}

/// The certificate requests in progress, one per identity at most.
#[derive(Default)]
pub(crate) struct CredentialRequests {
    active: Mutex<HashMap<IdentityKey, Active>>,
    next_seq: Mutex<u64>,
}

impl CredentialRequests {
    fn lock(&self) -> MutexGuard<'_, HashMap<IdentityKey, Active>> {
        // The critical sections never panic halfway; a poisoned table is still consistent.
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_seq(&self) -> u64 {
        let mut seq = self.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
        *seq += 1;
        *seq
    }

    /// Forgets request `seq` of `key` once answered (not a later one).
    fn finish(&self, key: &IdentityKey, seq: u64) {
        let mut active = self.lock();
        if active.get(key).is_some_and(|a| a.seq == seq) {
            active.remove(key);
        }
    }
}

/// Whether a hub username's api-version offers the credentials topic (the date part at least
/// that of [`CREDENTIALS_API_VERSION`]).
pub(crate) fn offers_credentials(username: &str) -> bool {
    let version = username
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("api-version="))
        .unwrap_or_default();
    matches!((api_date(version), api_date(CREDENTIALS_API_VERSION)), (Some(v), Some(min)) if v >= min)
}

/// The `YYYY-MM-DD` part of an api-version, which orders versions; `None` when it has none.
fn api_date(version: &str) -> Option<&str> {
    version.get(..10).filter(|d| {
        d.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
    })
}

/// An error answer: status and its body.
struct Refusal {
    status: u16,
    /// Boxed: the error path stays small on the success path's stack.
    body: Box<CredentialErrorBody>,
}

fn refusal(status: u16, code: u32, credential_error: &str, message: &str) -> Refusal {
    let mut info = CredentialErrorInfo::default();
    info.credential_error = Some(credential_error.to_owned());
    info.credential_message = Some(message.to_owned());
    let mut body = CredentialErrorBody::default();
    body.error_code = code;
    body.message = message.to_owned();
    body.tracking_id = ids::tracking_id();
    body.timestamp_utc = time::now_utc();
    body.info = Some(info);
    Refusal {
        status,
        body: Box::new(body),
    }
}

impl HubRuntime {
    /// Handles a publish on `$iothub/credentials/POST/issueCertificate/?$rid={rid}` from
    /// `key`; `offered` says whether its connection's api-version knows the topic.
    pub(crate) fn credentials_request(
        self: &Arc<Self>,
        key: &IdentityKey,
        offered: bool,
        rid: &str,
        payload: &[u8],
    ) {
        match self.accept_credentials_request(key, offered, rid, payload) {
            Ok(()) => {}
            Err(refused) => {
                tracing::info!(identity = %key, status = refused.status, code = refused.body.error_code, "certificate request refused");
                let body = serde_json::to_vec(&refused.body).unwrap_or_default();
                self.send_credentials(key, refused.status, rid, body);
            }
        }
    }

    fn accept_credentials_request(
        self: &Arc<Self>,
        key: &IdentityKey,
        offered: bool,
        rid: &str,
        payload: &[u8],
    ) -> Result<(), Refusal> {
        let (hub_offers, delay) = self.faults.credentials(&key.hub);
        if !offered || !hub_offers {
            return Err(refusal(
                404,
                404_000,
                "CertificateIssuanceNotEnabled",
                "This hub does not issue certificates over $iothub/credentials (api-version 2025-08-01-preview); provision again with a CSR.",
            ));
        }
        let request: IssueCertificateRequest<'_> =
            serde_json::from_slice(payload).map_err(|e| {
                refusal(
                    400,
                    400_004,
                    "InvalidRequest",
                    &format!("The body is not a certificate request: {e}"),
                )
            })?;
        if key.module_id.is_some() || request.device_id() != key.device_id {
            return Err(refusal(
                400,
                400_004,
                "InvalidRequest",
                "The id must be the connected device's id (modules get no certificates).",
            ));
        }
        if request.csr().len() > MAX_CSR_LEN {
            return Err(refusal(
                413,
                413_001,
                "CsrTooLarge",
                &format!(
                    "The CSR is {} bytes; the hub accepts at most {MAX_CSR_LEN}.",
                    request.csr().len()
                ),
            ));
        }
        self.check_active(key, request.replaces())?;
        let issuer = self.issuer().ok_or_else(|| {
            refusal(
                503,
                503_000,
                "IssuerUnavailable",
                "The hub has no certificate authority.",
            )
        })?;
        let chain = issuer
            .issue_base64(&key.device_id, request.csr())
            .map_err(|e| {
                let why = match e {
                    IssueError::NotBase64 | IssueError::Rejected(_) => "FailedToDecodeCsr",
                    IssueError::WrongCommonName => "InvalidCsrSubject",
                };
                refusal(400, 400_040, why, &e.to_string())
            })?;

        let correlation_id = uuid::Uuid::new_v4().to_string();
        let expires_at = std::time::SystemTime::now() + delay + OPERATION_TTL;
        let operation_expires = crate::hub::runtime::format_time(expires_at);
        let seq = self.credential_requests.next_seq();
        let mut accepted = CertificateAccepted::default();
        accepted.correlation_id.clone_from(&correlation_id);
        accepted.operation_expires.clone_from(&operation_expires);
        // The 202 goes out before the task can send the 200.
        self.send_credentials(
            key,
            202,
            rid,
            serde_json::to_vec(&accepted).unwrap_or_default(),
        );
        let runtime = Arc::clone(self);
        let task_key = key.clone();
        let task_rid = rid.to_owned();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            runtime.complete_credentials(&task_key, &task_rid, seq, chain);
        });
        self.credential_requests.lock().insert(
            key.clone(),
            Active {
                rid: rid.to_owned(),
                correlation_id,
                due: Instant::now() + delay,
                operation_expires,
                task,
                seq,
            },
        );
        tracing::info!(identity = %key, rid, ?delay, "certificate request accepted");
        Ok(())
    }

    /// 409004 while a request is active, unless this one replaces it (`"*"` or its `$rid`).
    fn check_active(&self, key: &IdentityKey, replaces: Option<&str>) -> Result<(), Refusal> {
        let mut active = self.credential_requests.lock();
        let Some(current) = active.get(key) else {
            return Ok(());
        };
        if current.task.is_finished() {
            active.remove(key);
            return Ok(());
        }
        if replaces.is_some_and(|r| r == REPLACE_ANY || r == current.rid) {
            current.task.abort();
            active.remove(key);
            return Ok(());
        }
        let left = current.due.saturating_duration_since(Instant::now());
        let mut refused = refusal(
            409,
            REQUEST_ALREADY_ACTIVE,
            "RequestAlreadyActive",
            "A certificate request for this device is already active; retry later or replace it.",
        );
        // Whole seconds, rounded up: retrying earlier would only meet the same answer.
        refused.body.retry_after = Some(
            u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                .unwrap_or(u32::MAX)
                .max(1),
        );
        if let Some(info) = &mut refused.body.info {
            info.request_id = Some(current.rid.clone());
            info.correlation_id = Some(current.correlation_id.clone());
            info.operation_expires = Some(current.operation_expires.clone());
        }
        Err(refused)
    }

    /// Sends the `200` with the chain and makes the identity trust the issuing CA.
    fn complete_credentials(&self, key: &IdentityKey, rid: &str, seq: u64, chain: Vec<String>) {
        let updated = self.store.mutate(|data| {
            let store_key = StoreData::hub_device_key(&key.hub, &key.device_id);
            let Some(device) = data.hub_devices.get_mut(&store_key) else {
                return false;
            };
            device.authentication = issued_authentication();
            device.etag = ids::etag();
            true
        });
        self.credential_requests.finish(key, seq);
        if !updated {
            // Deleted meanwhile: nothing to issue for.
            tracing::info!(identity = %key, "certificate request dropped: the identity is gone");
            return;
        }
        let mut issued = IssuedCertificates::default();
        issued.certificates = chain;
        self.send_credentials(
            key,
            200,
            rid,
            serde_json::to_vec(&issued).unwrap_or_default(),
        );
        tracing::info!(identity = %key, rid, "certificate issued over the hub");
    }

    /// Publishes a credentials response to the identity's live connection, if it subscribed
    /// to `$iothub/credentials/res/#` (the hub answers only subscribed clients).
    fn send_credentials(&self, key: &IdentityKey, status: u16, rid: &str, body: Vec<u8>) {
        let topic = CredentialResponseTopic::new(status, rid).to_string();
        let sent = self.live.with(key, None, |conn| {
            conn.subscriptions
                .credentials
                .map(|qos| conn.outbox.publish(topic, body, qos).is_ok())
        });
        if sent.flatten() != Some(true) {
            tracing::info!(identity = %key, status, "credentials answer dropped: not connected or not subscribed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_that_offer_the_topic() {
        assert!(offers_credentials(
            "h/d/?api-version=2025-08-01-preview&DeviceClientType=x"
        ));
        assert!(offers_credentials(
            "h/d/?DeviceClientType=x&api-version=2026-01-01"
        ));
        for old in [
            "h/d/?api-version=2021-04-12",
            "h/d/?api-version=2025-07-31-preview",
            "h/d/?api-version=junk",
            "h/d/",
            "h/d",
        ] {
            assert!(!offers_credentials(old), "{old}");
        }
    }
}
