//! Per-hub fault knobs for the device lifecycle paths (#12): a hub that refuses CONNECT with a
//! chosen CONNACK code, a hub that is unreachable for a while, and the certificate renewal
//! knobs of its credentials topic (not offered, the delay between the 202 and the 200).
//!
//! Everything is off by default. Set them with
//! [`Emulator::set_hub_faults`](crate::Emulator::set_hub_faults) or
//! `PUT /emulator/hubs/{hub}/faults`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::net::ConnectReturnCode;
use crate::rest::ServiceFailure;

/// The fault knobs of one hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HubFaults {
    /// Refuse device CONNECTs with a CONNACK return code, before any credential is checked.
    pub refuse_connect: Option<RefuseConnect>,
    /// Be unreachable for this many milliseconds from when the faults are set: the hub's live
    /// connections are closed and each new one is closed after its CONNECT without a CONNACK
    /// (the device sees its connection drop, as when the hub's network is gone). Read back, it
    /// is the time still left (absent once over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable_for_ms: Option<u64>,
    /// Do not offer certificate renewal over `$iothub/credentials`: requests are answered 404
    /// (errorCode 404000, `credentialError` `CertificateIssuanceNotEnabled`), so the device
    /// renews by provisioning again (service-behaviour.md §1.16).
    pub credentials_topic_disabled: bool,
    /// Milliseconds between the `202` and the `200` of a certificate request (default 0); a
    /// second request without `replace` in between gets 409004.
    pub credentials_delay_ms: u64,
}

/// Refuse CONNECT with `return_code`, `count` times (always when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefuseConnect {
    /// The CONNACK return code, 1 to 5 (MQTT 3.1.1 §3.2.2.3; service-behaviour.md "CONNACK
    /// codes": 3 server unavailable is retried, 5 not authorized means deleted, disabled or
    /// bad credentials).
    pub return_code: u8,
    /// How many CONNECTs are refused; `None`: every one until the faults change. Read back,
    /// what is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// What to do with a hub CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectVerdict {
    /// Proceed with authentication.
    Pass,
    /// Answer CONNACK with this code.
    Refuse(ConnectReturnCode),
    /// Close without a CONNACK.
    Unreachable,
}

/// The live state of one hub's faults.
#[derive(Debug, Clone, Default)]
struct HubFaultState {
    faults: HubFaults,
    unreachable_until: Option<Instant>,
}

/// The fault knobs of every hub, by lower-case hub name.
#[derive(Debug, Default)]
pub(crate) struct HubFaultTable {
    hubs: Mutex<HashMap<String, HubFaultState>>,
}

impl HubFaultTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HubFaultState>> {
        // The critical sections never panic halfway; a poisoned table is still consistent.
        self.hubs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces a hub's faults (counters restart); whether it is now unreachable.
    pub(crate) fn set(&self, hub: &str, faults: HubFaults) -> Result<bool, ServiceFailure> {
        if let Some(refuse) = faults.refuse_connect {
            return_code(refuse.return_code)?;
        }
        let unreachable_until = faults
            .unreachable_for_ms
            .filter(|&ms| ms > 0)
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        self.lock().insert(
            hub.to_ascii_lowercase(),
            HubFaultState {
                faults,
                unreachable_until,
            },
        );
        Ok(unreachable_until.is_some())
    }

    /// A hub's faults as they stand (the unreachable time is what is left).
    pub(crate) fn get(&self, hub: &str) -> HubFaults {
        let hubs = self.lock();
        let Some(state) = hubs.get(&hub.to_ascii_lowercase()) else {
            return HubFaults::default();
        };
        let mut faults = state.faults.clone();
        faults.unreachable_for_ms = state
            .unreachable_until
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
            .map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        faults
    }

    /// Decides a CONNECT to `hub`, counting a refusal down.
    pub(crate) fn connect_verdict(&self, hub: &str) -> ConnectVerdict {
        let mut hubs = self.lock();
        let Some(state) = hubs.get_mut(&hub.to_ascii_lowercase()) else {
            return ConnectVerdict::Pass;
        };
        if state
            .unreachable_until
            .is_some_and(|until| Instant::now() < until)
        {
            return ConnectVerdict::Unreachable;
        }
        let Some(refuse) = &mut state.faults.refuse_connect else {
            return ConnectVerdict::Pass;
        };
        let code = return_code(refuse.return_code).unwrap_or(ConnectReturnCode::ServiceUnavailable);
        match &mut refuse.count {
            None => ConnectVerdict::Refuse(code),
            Some(0) => ConnectVerdict::Pass,
            Some(left) => {
                *left -= 1;
                ConnectVerdict::Refuse(code)
            }
        }
    }

    /// The credentials topic knobs of `hub`: (offered, delay between 202 and 200).
    pub(crate) fn credentials(&self, hub: &str) -> (bool, Duration) {
        let hubs = self.lock();
        hubs.get(&hub.to_ascii_lowercase())
            .map_or((true, Duration::ZERO), |state| {
                (
                    !state.faults.credentials_topic_disabled,
                    Duration::from_millis(state.faults.credentials_delay_ms),
                )
            })
    }
}

/// The CONNACK return code `code` stands for; 400 for 0 (acceptance is no refusal) and codes
/// MQTT 3.1.1 does not define.
fn return_code(code: u8) -> Result<ConnectReturnCode, ServiceFailure> {
    Ok(match code {
        1 => ConnectReturnCode::RefusedProtocolVersion,
        2 => ConnectReturnCode::BadClientId,
        3 => ConnectReturnCode::ServiceUnavailable,
        4 => ConnectReturnCode::BadUserNamePassword,
        5 => ConnectReturnCode::NotAuthorized,
        _ => {
            return Err(ServiceFailure::bad_request(format!(
                "refuseConnect.returnCode must be 1 to 5 (MQTT 3.1.1 CONNACK refusals), got {code}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_count_down_and_codes_are_checked() {
        let table = HubFaultTable::default();
        assert_eq!(table.connect_verdict("h"), ConnectVerdict::Pass);
        let refuse = |return_code, count| HubFaults {
            refuse_connect: Some(RefuseConnect { return_code, count }),
            ..HubFaults::default()
        };
        assert!(table.set("H", refuse(0, None)).is_err());
        assert!(table.set("H", refuse(6, None)).is_err());
        table.set("H", refuse(3, Some(2))).unwrap();
        let refused = ConnectVerdict::Refuse(ConnectReturnCode::ServiceUnavailable);
        assert_eq!(table.connect_verdict("h"), refused);
        assert_eq!(table.get("h").refuse_connect.unwrap().count, Some(1));
        assert_eq!(table.connect_verdict("h"), refused);
        assert_eq!(table.connect_verdict("h"), ConnectVerdict::Pass);
        table.set("h", refuse(5, None)).unwrap();
        for _ in 0..3 {
            assert_eq!(
                table.connect_verdict("h"),
                ConnectVerdict::Refuse(ConnectReturnCode::NotAuthorized)
            );
        }
    }

    #[test]
    fn unreachable_for_a_while() {
        let table = HubFaultTable::default();
        let down = HubFaults {
            unreachable_for_ms: Some(60_000),
            ..HubFaults::default()
        };
        assert!(table.set("h", down).unwrap());
        assert_eq!(table.connect_verdict("h"), ConnectVerdict::Unreachable);
        assert_eq!(table.connect_verdict("other"), ConnectVerdict::Pass);
        assert!(
            table
                .get("h")
                .unreachable_for_ms
                .is_some_and(|ms| ms <= 60_000)
        );
        assert!(!table.set("h", HubFaults::default()).unwrap());
        assert_eq!(table.connect_verdict("h"), ConnectVerdict::Pass);
        assert_eq!(table.get("h").unreachable_for_ms, None);
        assert_eq!(table.credentials("h"), (true, Duration::ZERO));
    }

    #[test]
    fn json_shape() {
        let faults: HubFaults = serde_json::from_str(
            r#"{"refuseConnect":{"returnCode":5,"count":1},"unreachableForMs":10,
                "credentialsTopicDisabled":true,"credentialsDelayMs":250}"#,
        )
        .unwrap();
        assert_eq!(faults.refuse_connect.unwrap().return_code, 5);
        assert!(faults.credentials_topic_disabled);
        assert!(serde_json::from_str::<HubFaults>(r#"{"bogus":1}"#).is_err());
    }
}
