//! The scripted world of the device lifecycle scenarios: a DPS and hubs that answer as the
//! test says, the virtual clock of the shared harness, and a record of every DPS request, hub
//! connect, lifecycle event and store action, with its instant.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use std::time::Duration;

pub use crate::harness::{Inputs as _, UNIX0};
pub use dps_core::Timestamp;
pub use dps_core::device::{
    AssignmentRecord, CertificateRenewal, CredentialSlot, Device, DeviceConfig, DeviceStopReason,
    Event, Issuer, LifecycleEvent, RecoveryBackoff, RenewError, ReprovisionReason, Source,
    StoreAction, Target,
};
pub use dps_core::dps::registration::{RegistrationConfig, Timing};
pub use dps_core::dps::topic::ResponseTopic;
pub use dps_core::hub::Message;
pub use dps_core::hub::session::{Features, SessionConfig};
pub use dps_core::mqtt::{ConnectFailure, IncomingPublish, Machine as _, Transmit};
pub use dps_core::query::Params;
pub use dps_core::retry::JitterSource;

pub const HUB_A: &str = "hub-a.azure-devices.net";
pub const HUB_B: &str = "hub-b.azure-devices.net";
pub const X509: CredentialSlot = CredentialSlot(0);
pub const PRIMARY: CredentialSlot = CredentialSlot(1);
pub const SECONDARY: CredentialSlot = CredentialSlot(2);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn at(s: u64) -> Timestamp {
    Timestamp::from_duration(secs(s))
}

/// What the scripted DPS answers to a register request.
#[derive(Debug, Clone)]
pub enum Dps {
    Assign(&'static str),
    Disabled,
    Unauthorized,
    /// 429 with this retry-after, in seconds.
    Throttled(u32),
}

pub fn dps_body(answer: &Dps, csr: bool) -> (u16, String) {
    match answer {
        Dps::Throttled(_) => (
            429,
            r#"{"errorCode":429001,"trackingId":"t","message":"m","timestampUtc":"2024-01-01T00:00:00.0000000Z"}"#.into(),
        ),
        Dps::Assign(hub) => {
            // A CSR gets a chain back (service-behaviour §1.16).
            let issued = if csr {
                r#","issuedCertificateChain":["ZHBz"]"#
            } else {
                ""
            };
            (
                200,
                format!(
                    r#"{{"operationId":"op","status":"assigned","registrationState":{{"registrationId":"dev-1","assignedHub":"{hub}","deviceId":"dev-1","status":"assigned","substatus":"initialAssignment"{issued}}}}}"#
                ),
            )
        }
        Dps::Disabled => (
            200,
            r#"{"operationId":"op","status":"disabled","registrationState":{"registrationId":"dev-1","status":"disabled"}}"#.into(),
        ),
        Dps::Unauthorized => (
            401,
            r#"{"errorCode":401002,"trackingId":"t","message":"m","timestampUtc":"2024-01-01T00:00:00.0000000Z"}"#.into(),
        ),
    }
}

/// A DPS register request or a hub connect, as the world saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    DpsRegister {
        at: Timestamp,
        credential: CredentialSlot,
    },
    HubConnect {
        at: Timestamp,
        hub: String,
        credential: CredentialSlot,
    },
}

pub type DpsScript = Box<dyn FnMut(usize, CredentialSlot) -> Dps>;
pub type HubScript = Box<dyn FnMut(Timestamp, &str, CredentialSlot) -> Result<(), ConnectFailure>>;

pub struct World {
    pub device: Device,
    pub now: Timestamp,
    pub dps: DpsScript,
    pub hub: HubScript,
    pub seen: Vec<Seen>,
    pub lifecycle: Vec<(Timestamp, LifecycleEvent)>,
    pub store: Vec<StoreAction>,
    pub target: Option<Target>,
    /// Publishes to the hub: instant, topic, payload.
    pub hub_publishes: Vec<(Timestamp, String, String)>,
    /// The filters of every SUBSCRIBE.
    pub subscribes: Vec<Vec<String>>,
    /// The bodies of the DPS register requests.
    pub dps_bodies: Vec<String>,
    /// Whether the hub acknowledges telemetry.
    pub hub_acks: bool,
    /// The hub session's events, as the device forwarded them.
    pub hub_events: Vec<dps_core::hub::Event>,
}

pub fn config() -> DeviceConfig {
    DeviceConfig::new(
        RegistrationConfig::new("dev-1").timing(
            Timing::default()
                .request_timeout(secs(10))
                .deadline(secs(600)),
        ),
        SessionConfig::device("placeholder").features(Features::NONE),
    )
    .credentials(vec![X509, PRIMARY, SECONDARY])
    .hub_attempts(3)
}

pub fn assign(hub: &'static str) -> DpsScript {
    Box::new(move |_, _| Dps::Assign(hub))
}

pub fn hub_ok() -> HubScript {
    Box::new(|_, _, _| Ok(()))
}

pub fn cached(hub: &str, age: u64) -> Option<AssignmentRecord> {
    Some(AssignmentRecord::new(hub, "dev-1", UNIX0 - age))
}

impl World {
    pub fn new(
        config: DeviceConfig,
        loaded: Option<AssignmentRecord>,
        dps: DpsScript,
        hub: HubScript,
    ) -> Self {
        let device = Device::new(config, Timestamp::ZERO, UNIX0, loaded, 7);
        let mut w = Self {
            device,
            now: Timestamp::ZERO,
            dps,
            hub,
            seen: Vec::new(),
            lifecycle: Vec::new(),
            store: Vec::new(),
            target: None,
            hub_publishes: Vec::new(),
            subscribes: Vec::new(),
            dps_bodies: Vec::new(),
            hub_acks: true,
            hub_events: Vec::new(),
        };
        w.drain();
        w
    }

    pub fn drain(&mut self) {
        loop {
            while let Some(e) = self.device.poll_event() {
                match e {
                    Event::Lifecycle(l) => self.lifecycle.push((self.now, l)),
                    Event::Hub(h) => self.hub_events.push(h),
                    _ => {}
                }
            }
            while let Some(s) = self.device.poll_store() {
                self.store.push(s);
            }
            let Some(t) = self.device.poll_transmit() else {
                return;
            };
            self.perform(t);
        }
    }

    pub fn perform(&mut self, t: Transmit) {
        match t {
            Transmit::Connect { .. } => {
                let target = self.device.target().expect("a target for every connect");
                self.target = Some(target.clone());
                let result = match &target {
                    Target::Dps { credential } => {
                        // Connecting to DPS always works here; the answer is on the register.
                        let _ = credential;
                        Ok(())
                    }
                    Target::Hub {
                        hub, credential, ..
                    } => {
                        self.seen.push(Seen::HubConnect {
                            at: self.now,
                            hub: hub.clone(),
                            credential: *credential,
                        });
                        (self.hub)(self.now, hub, *credential)
                    }
                    other => panic!("unexpected target {other:?}"),
                };
                match result {
                    Ok(()) => self.device.connected(self.now),
                    Err(f) => self.device.handle_connect_failed(self.now, f),
                }
            }
            Transmit::Subscribe { filters } => {
                self.subscribes.push(filters);
                self.device.subscribed(self.now);
            }
            Transmit::Publish {
                id, topic, payload, ..
            } => {
                let Some(Target::Dps { credential }) = self.target.clone() else {
                    let body = String::from_utf8(payload.to_vec()).expect("text");
                    self.hub_publishes.push((self.now, topic, body));
                    if self.hub_acks {
                        self.device.handle_puback(self.now, id);
                    }
                    return;
                };
                let body = String::from_utf8(payload.to_vec()).expect("text");
                let csr = body.contains(r#""csr""#);
                self.dps_bodies.push(body);
                let (path, query) = topic.split_once('?').expect("a query");
                assert_eq!(path, "$dps/registrations/PUT/iotdps-register/");
                let rid = Params::new(query)
                    .get("$rid")
                    .flatten()
                    .expect("rid")
                    .to_string();
                let n = self
                    .seen
                    .iter()
                    .filter(|s| matches!(s, Seen::DpsRegister { .. }))
                    .count();
                self.seen.push(Seen::DpsRegister {
                    at: self.now,
                    credential,
                });
                let answer = (self.dps)(n, credential);
                let (status, body) = dps_body(&answer, csr);
                let retry_after = match answer {
                    Dps::Throttled(after) => Some(after),
                    _ => None,
                };
                let topic = ResponseTopic {
                    status,
                    rid: &rid,
                    retry_after,
                }
                .to_string();
                self.device.publish(self.now, &topic, body.as_bytes());
            }
            Transmit::Ack { .. } | Transmit::Disconnect => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Runs the clock up to `until` (inclusive).
    pub fn run_until(&mut self, until: Timestamp) {
        for _ in 0..100_000 {
            self.drain();
            if self.device.is_finished() {
                return;
            }
            match self.device.poll_timeout() {
                Some(next) if next <= until => {
                    assert!(next >= self.now, "timeout in the past");
                    self.now = next;
                    self.device.handle_timeout(self.now);
                }
                _ => {
                    self.now = self.now.max(until);
                    return;
                }
            }
        }
        panic!("no quiescence");
    }

    pub fn dps_requests(&self) -> Vec<(Timestamp, CredentialSlot)> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::DpsRegister { at, credential } => Some((*at, *credential)),
                Seen::HubConnect { .. } => None,
            })
            .collect()
    }

    pub fn hub_connects(&self) -> Vec<(Timestamp, String, CredentialSlot)> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::HubConnect {
                    at,
                    hub,
                    credential,
                } => Some((*at, hub.clone(), *credential)),
                Seen::DpsRegister { .. } => None,
            })
            .collect()
    }

    pub fn events(&self) -> Vec<LifecycleEvent> {
        self.lifecycle.iter().map(|(_, e)| e.clone()).collect()
    }

    pub fn reprovisions(&self) -> Vec<(Timestamp, ReprovisionReason, Duration)> {
        self.lifecycle
            .iter()
            .filter_map(|(t, e)| match e {
                LifecycleEvent::Reprovisioning { reason, delay, .. } => Some((*t, *reason, *delay)),
                _ => None,
            })
            .collect()
    }
}

pub fn provisioned(source: Source, hub: &str) -> LifecycleEvent {
    LifecycleEvent::Provisioned {
        source,
        hub: hub.into(),
        device_id: "dev-1".into(),
    }
}

pub fn config_with(backoff: RecoveryBackoff) -> DeviceConfig {
    config().recovery(backoff)
}
