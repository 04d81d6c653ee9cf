//! Direct methods: the service's invocation and the device's answer, matched by request id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::hub::live::IdentityKey;
use crate::rest::ServiceFailure;

/// The service's default `responseTimeoutInSeconds`.
const DEFAULT_RESPONSE_TIMEOUT: u64 = 30;
/// The longest response or connect timeout the service accepts, in seconds.
const MAX_TIMEOUT: u64 = 300;
/// The largest method payload, serialized (128 KB).
pub(crate) const MAX_PAYLOAD_SIZE: usize = 128 * 1024;

/// A direct method call (the body of `POST /twins/{id}/methods`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodInvocation {
    /// The method name.
    pub method_name: String,
    /// The JSON payload sent to the device (`null` when absent).
    #[serde(default)]
    pub payload: Value,
    /// How long to wait for the device's answer once the request is sent (default 30 s,
    /// at most 300; the service's minimum of 5 s is not enforced so tests can be quick).
    #[serde(default = "default_response_timeout")]
    pub response_timeout_in_seconds: u64,
    /// How long to wait for the device to come online first (default 0: fail at once).
    #[serde(default)]
    pub connect_timeout_in_seconds: u64,
}

fn default_response_timeout() -> u64 {
    DEFAULT_RESPONSE_TIMEOUT
}

impl MethodInvocation {
    /// A call of `method_name` with a `null` payload and the default timeouts.
    pub fn new(method_name: impl Into<String>) -> Self {
        Self {
            method_name: method_name.into(),
            payload: Value::Null,
            response_timeout_in_seconds: DEFAULT_RESPONSE_TIMEOUT,
            connect_timeout_in_seconds: 0,
        }
    }

    /// Sets the payload.
    #[must_use]
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the response timeout, in seconds.
    #[must_use]
    pub fn response_timeout(mut self, seconds: u64) -> Self {
        self.response_timeout_in_seconds = seconds;
        self
    }

    /// Sets the connect timeout, in seconds.
    #[must_use]
    pub fn connect_timeout(mut self, seconds: u64) -> Self {
        self.connect_timeout_in_seconds = seconds;
        self
    }

    /// Checks the call; the response and connect timeouts.
    pub(crate) fn validate(&self) -> Result<(Duration, Duration), ServiceFailure> {
        if self.method_name.is_empty() || self.method_name.len() > 128 {
            return Err(ServiceFailure::bad_request(
                "methodName must be 1 to 128 characters",
            ));
        }
        if self.response_timeout_in_seconds == 0
            || self.response_timeout_in_seconds > MAX_TIMEOUT
            || self.connect_timeout_in_seconds > MAX_TIMEOUT
        {
            return Err(ServiceFailure::bad_request(format!(
                "responseTimeoutInSeconds must be 1 to {MAX_TIMEOUT} and \
                 connectTimeoutInSeconds 0 to {MAX_TIMEOUT}"
            )));
        }
        let size = serde_json::to_vec(&self.payload).map_or(usize::MAX, |v| v.len());
        if size > MAX_PAYLOAD_SIZE {
            return Err(ServiceFailure::new(
                413,
                413_001,
                format!("the method payload is {size} bytes, over {MAX_PAYLOAD_SIZE}"),
            ));
        }
        Ok((
            Duration::from_secs(self.response_timeout_in_seconds),
            Duration::from_secs(self.connect_timeout_in_seconds),
        ))
    }
}

/// The device's answer (the body of a 200 to `POST /twins/{id}/methods`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    /// The status the device answered with.
    pub status: i32,
    /// The device's JSON payload (`null` when it sent none; a string when it was not JSON).
    pub payload: Value,
}

/// Calls sent to devices and not yet answered, by request id.
#[derive(Debug, Default)]
pub(crate) struct PendingMethods {
    next: AtomicU64,
    pending: Mutex<HashMap<String, (IdentityKey, oneshot::Sender<MethodResult>)>>,
}

impl PendingMethods {
    fn lock(
        &self,
    ) -> MutexGuard<'_, HashMap<String, (IdentityKey, oneshot::Sender<MethodResult>)>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh request id for a call to `key`, and where its answer will arrive.
    pub(crate) fn register(&self, key: &IdentityKey) -> (String, oneshot::Receiver<MethodResult>) {
        let rid = format!("{:x}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = oneshot::channel();
        self.lock().insert(rid.clone(), (key.clone(), tx));
        (rid, rx)
    }

    /// Delivers a device's answer; false if no call of that identity has this id (answered
    /// already, timed out, or never sent).
    pub(crate) fn complete(&self, key: &IdentityKey, rid: &str, result: MethodResult) -> bool {
        let mut pending = self.lock();
        if pending.get(rid).is_none_or(|(k, _)| k != key) {
            return false;
        }
        match pending.remove(rid) {
            Some((_, tx)) => tx.send(result).is_ok(),
            None => false,
        }
    }

    /// Forgets a call (timed out).
    pub(crate) fn cancel(&self, rid: &str) {
        self.lock().remove(rid);
    }
}

/// Parses a device's answer payload: JSON, or text kept as a string, or `null` when empty.
pub(crate) fn answer_payload(payload: &[u8]) -> Value {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}
