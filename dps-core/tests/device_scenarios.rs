//! Deterministic scenarios for the device lifecycle: a scripted DPS and hub, the virtual clock
//! of the shared harness, and assertions on every DPS request and hub connect, and when.

use std::time::Duration;

mod harness;

use dps_core::Timestamp;
use dps_core::device::{
    AssignmentRecord, CertificateRenewal, CredentialSlot, Device, DeviceConfig, DeviceStopReason,
    Event, Issuer, LifecycleEvent, RecoveryBackoff, RenewError, ReprovisionReason, Source,
    StoreAction, Target,
};
use dps_core::dps::registration::{RegistrationConfig, Timing};
use dps_core::dps::topic::ResponseTopic;
use dps_core::hub::Message;
use dps_core::hub::session::{Features, SessionConfig};
use dps_core::mqtt::{ConnectFailure, IncomingPublish, Machine as _, Transmit};
use dps_core::query::Params;
use dps_core::retry::JitterSource;
use harness::{Inputs as _, UNIX0};

const HUB_A: &str = "hub-a.azure-devices.net";
const HUB_B: &str = "hub-b.azure-devices.net";
const X509: CredentialSlot = CredentialSlot(0);
const PRIMARY: CredentialSlot = CredentialSlot(1);
const SECONDARY: CredentialSlot = CredentialSlot(2);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_duration(secs(s))
}

/// What the scripted DPS answers to a register request.
#[derive(Debug, Clone)]
enum Dps {
    Assign(&'static str),
    Disabled,
    Unauthorized,
    /// 429 with this retry-after, in seconds.
    Throttled(u32),
}

fn dps_body(answer: &Dps) -> (u16, String) {
    match answer {
        Dps::Throttled(_) => (
            429,
            r#"{"errorCode":429001,"trackingId":"t","message":"m","timestampUtc":"2024-01-01T00:00:00.0000000Z"}"#.into(),
        ),
        Dps::Assign(hub) => (
            200,
            format!(
                r#"{{"operationId":"op","status":"assigned","registrationState":{{"registrationId":"dev-1","assignedHub":"{hub}","deviceId":"dev-1","status":"assigned","substatus":"initialAssignment"}}}}"#
            ),
        ),
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
enum Seen {
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

type DpsScript = Box<dyn FnMut(usize, CredentialSlot) -> Dps>;
type HubScript = Box<dyn FnMut(Timestamp, &str, CredentialSlot) -> Result<(), ConnectFailure>>;

struct World {
    device: Device,
    now: Timestamp,
    dps: DpsScript,
    hub: HubScript,
    seen: Vec<Seen>,
    lifecycle: Vec<(Timestamp, LifecycleEvent)>,
    store: Vec<StoreAction>,
    target: Option<Target>,
    /// Publishes to the hub: instant, topic, payload.
    hub_publishes: Vec<(Timestamp, String, String)>,
    /// The filters of every SUBSCRIBE.
    subscribes: Vec<Vec<String>>,
    /// The bodies of the DPS register requests.
    dps_bodies: Vec<String>,
    /// Whether the hub acknowledges telemetry.
    hub_acks: bool,
    /// The hub session's events, as the device forwarded them.
    hub_events: Vec<dps_core::hub::Event>,
}

fn config() -> DeviceConfig {
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

fn assign(hub: &'static str) -> DpsScript {
    Box::new(move |_, _| Dps::Assign(hub))
}

fn hub_ok() -> HubScript {
    Box::new(|_, _, _| Ok(()))
}

fn cached(hub: &str, age: u64) -> Option<AssignmentRecord> {
    Some(AssignmentRecord::new(hub, "dev-1", UNIX0 - age))
}

impl World {
    fn new(
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

    fn drain(&mut self) {
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

    fn perform(&mut self, t: Transmit) {
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
                self.dps_bodies
                    .push(String::from_utf8(payload.to_vec()).expect("text"));
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
                let (status, body) = dps_body(&answer);
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
    fn run_until(&mut self, until: Timestamp) {
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

    fn dps_requests(&self) -> Vec<(Timestamp, CredentialSlot)> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::DpsRegister { at, credential } => Some((*at, *credential)),
                Seen::HubConnect { .. } => None,
            })
            .collect()
    }

    fn hub_connects(&self) -> Vec<(Timestamp, String, CredentialSlot)> {
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

    fn events(&self) -> Vec<LifecycleEvent> {
        self.lifecycle.iter().map(|(_, e)| e.clone()).collect()
    }

    fn reprovisions(&self) -> Vec<(Timestamp, ReprovisionReason, Duration)> {
        self.lifecycle
            .iter()
            .filter_map(|(t, e)| match e {
                LifecycleEvent::Reprovisioning { reason, delay, .. } => Some((*t, *reason, *delay)),
                _ => None,
            })
            .collect()
    }
}

fn provisioned(source: Source, hub: &str) -> LifecycleEvent {
    LifecycleEvent::Provisioned {
        source,
        hub: hub.into(),
        device_id: "dev-1".into(),
    }
}

#[test]
fn no_cache_provisions_once_then_saves_and_connects() {
    let mut w = World::new(config(), None, assign(HUB_A), hub_ok());
    w.run_until(at(3600));
    assert_eq!(w.dps_requests(), [(at(0), X509)]);
    assert_eq!(w.hub_connects(), [(at(0), HUB_A.to_string(), X509)]);
    assert_eq!(
        w.events(),
        [
            LifecycleEvent::Reprovisioning {
                reason: ReprovisionReason::NoCache,
                delay: Duration::ZERO,
                attempt: 1
            },
            provisioned(Source::Dps, HUB_A),
            LifecycleEvent::Connected { credential: X509 },
        ]
    );
    let [StoreAction::Save(record)] = w.store.as_slice() else {
        panic!("one save expected: {:?}", w.store)
    };
    assert_eq!(record.assigned_hub, HUB_A);
    assert_eq!(record.provisioned_at, UNIX0);
    // What was saved reads back as the same record.
    assert_eq!(
        AssignmentRecord::from_json(&record.to_json()).as_ref(),
        Ok(record)
    );
}

#[test]
fn a_valid_cache_connects_with_no_dps_call() {
    let mut w = World::new(config(), cached(HUB_A, 60), assign(HUB_B), hub_ok());
    w.run_until(at(24 * 3600));
    assert!(w.dps_requests().is_empty());
    assert_eq!(w.hub_connects(), [(at(0), HUB_A.to_string(), X509)]);
    assert_eq!(
        w.events(),
        [
            provisioned(Source::Cache, HUB_A),
            LifecycleEvent::Connected { credential: X509 }
        ]
    );
    assert!(w.store.is_empty(), "nothing to save on a cached start");
}

/// The device was deleted from (or moved away from) its cached hub: the hub refuses every
/// credential, the cache is cleared, and DPS assigns the (new) hub.
#[test]
fn a_moved_device_reprovisions_once_to_its_new_hub() {
    let hub: HubScript = Box::new(|_, hub, _| {
        if hub == HUB_A {
            Err(ConnectFailure::Refused { code: 5 })
        } else {
            Ok(())
        }
    });
    let mut w = World::new(config(), cached(HUB_A, 60), assign(HUB_B), hub);
    w.run_until(at(3600));
    assert_eq!(
        w.hub_connects(),
        [
            (at(0), HUB_A.to_string(), X509),
            (at(0), HUB_A.to_string(), PRIMARY),
            (at(0), HUB_A.to_string(), SECONDARY),
            (at(0), HUB_B.to_string(), X509),
        ]
    );
    assert_eq!(w.dps_requests(), [(at(0), X509)], "exactly one DPS request");
    assert_eq!(
        w.reprovisions(),
        [(
            at(0),
            ReprovisionReason::HubRefused { code: 5 },
            Duration::ZERO
        )]
    );
    assert!(
        matches!(w.store.as_slice(), [StoreAction::Clear, StoreAction::Save(r)] if r.assigned_hub == HUB_B)
    );
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::Connected { credential: X509 })
    );
}

/// Deleted: the hub refuses the cached identity once; DPS re-creates the device on the same
/// hub (the enrollment's reprovisioning policy), which then accepts it.
#[test]
fn a_deleted_device_reprovisions_to_the_same_hub() {
    let mut attempts = 0;
    let hub: HubScript = Box::new(move |_, _, _| {
        attempts += 1;
        if attempts == 1 {
            Err(ConnectFailure::Refused { code: 4 })
        } else {
            Ok(())
        }
    });
    let config = config().credentials(vec![PRIMARY]);
    let mut w = World::new(config, cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(3600));
    assert_eq!(w.dps_requests(), [(at(0), PRIMARY)]);
    assert_eq!(
        w.hub_connects(),
        [
            (at(0), HUB_A.to_string(), PRIMARY),
            (at(0), HUB_A.to_string(), PRIMARY)
        ]
    );
    assert_eq!(
        w.reprovisions(),
        [(
            at(0),
            ReprovisionReason::HubRefused { code: 4 },
            Duration::ZERO
        )]
    );
    assert!(matches!(
        w.store.as_slice(),
        [StoreAction::Clear, StoreAction::Save(_)]
    ));
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::Connected {
            credential: PRIMARY
        })
    );
}

#[test]
fn close_stops_with_a_disconnect_and_a_reason() {
    let mut w = World::new(config(), cached(HUB_A, 60), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device.close(at(10));
    assert_eq!(w.device.poll_transmit(), Some(Transmit::Disconnect));
    w.drain();
    assert!(w.device.is_finished());
    assert_eq!(w.device.poll_timeout(), None);
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::Stopped(DeviceStopReason::Closed))
    );
}

/// A disabled device: DPS assigns the hub again and the hub still refuses: reported, no loop.
#[test]
fn a_disabled_device_is_reported_not_retried() {
    let hub: HubScript = Box::new(|_, _, _| Err(ConnectFailure::Refused { code: 5 }));
    let mut w = World::new(config(), cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(30 * 24 * 3600));
    assert!(w.device.is_finished());
    assert_eq!(w.dps_requests().len(), 1, "one re-provisioning, no loop");
    assert_eq!(w.hub_connects().len(), 6, "three credentials, twice");
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::Stopped(DeviceStopReason::DeviceDisabled {
            code: 5
        }))
    );
}

#[test]
fn a_disabled_enrollment_stops_and_clears_the_cache() {
    let dps: DpsScript = Box::new(|_, _| Dps::Disabled);
    let mut w = World::new(config(), None, dps, hub_ok());
    w.run_until(at(30 * 24 * 3600));
    assert_eq!(w.dps_requests(), [(at(0), X509)]);
    assert_eq!(w.store, [StoreAction::Clear]);
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::Stopped(
            DeviceStopReason::EnrollmentDisabled
        ))
    );
}

/// The hub is down: after `hub_attempts` (3) failed attempts on the session's own backoff, the
/// device provisions again; DPS assigns the same hub, which is back by then.
#[test]
fn hub_down_for_n_attempts_reprovisions_then_reconnects() {
    let hub: HubScript = Box::new(|now, _, _| {
        if now < at(60) {
            Err(ConnectFailure::Network)
        } else {
            Ok(())
        }
    });
    let mut w = World::new(config(), cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(3600));
    let connects: Vec<Timestamp> = w.hub_connects().iter().map(|c| c.0).collect();
    // Three attempts on the cached hub, on the session's own backoff (1 s base, jittered).
    assert_eq!(connects.len(), 7, "{connects:?}");
    let first_down = connects[2];
    assert!(first_down < at(10), "{first_down:?}");
    // Then at once: one DPS request, three more attempts on the (same) assigned hub, then a
    // second re-provisioning after exactly the floor (5 min), and the hub is back.
    let second_down = connects[5];
    assert_eq!(
        w.reprovisions(),
        [
            (
                first_down,
                ReprovisionReason::HubUnreachable { attempts: 3 },
                Duration::ZERO
            ),
            (
                second_down,
                ReprovisionReason::HubUnreachable { attempts: 3 },
                secs(300)
            ),
        ]
    );
    assert_eq!(connects[3], first_down);
    assert_eq!(
        w.dps_requests(),
        [(first_down, X509), (second_down + secs(300), X509)]
    );
    assert_eq!(connects[6], second_down + secs(300));
    assert_eq!(
        w.lifecycle.last(),
        Some(&(connects[6], LifecycleEvent::Connected { credential: X509 }))
    );
}

/// The hub is down for longer than the configured duration (with more attempts allowed).
#[test]
fn hub_down_for_a_duration_reprovisions() {
    let hub: HubScript = Box::new(|now, _, _| {
        if now < at(600) {
            Err(ConnectFailure::Network)
        } else {
            Ok(())
        }
    });
    let config = config()
        .hub_attempts(1000)
        .hub_unreachable_for(Some(secs(120)));
    let mut w = World::new(config, cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(3600));
    let r = w.reprovisions();
    assert!(!r.is_empty());
    let (t, reason, _) = r[0];
    let ReprovisionReason::HubUnreachableFor { duration } = reason else {
        panic!("{reason:?}")
    };
    assert!(duration >= secs(120), "{duration:?}");
    // Reported at the first failed attempt at or past the limit, within one backoff step
    // (the session's backoff caps at 60 s plus jitter).
    assert!(t >= at(120) && t <= at(120 + 61 + 15), "{t:?}");
    assert_eq!(w.dps_requests()[0].0, t);
}

#[test]
fn a_cache_older_than_the_max_age_provisions_at_start() {
    let config = config().max_assignment_age(Some(secs(7 * 86_400)));
    let mut w = World::new(config, cached(HUB_A, 8 * 86_400), assign(HUB_A), hub_ok());
    w.run_until(at(60));
    assert_eq!(w.dps_requests(), [(at(0), X509)]);
    assert_eq!(
        w.reprovisions(),
        [(at(0), ReprovisionReason::AssignmentTooOld, Duration::ZERO)]
    );
}

#[test]
fn an_assignment_ageing_while_connected_reprovisions_on_time() {
    let config = config().max_assignment_age(Some(secs(7 * 86_400)));
    // Six days old at start: one day to go.
    let mut w = World::new(config, cached(HUB_A, 6 * 86_400), assign(HUB_A), hub_ok());
    w.run_until(at(86_400 - 1));
    assert!(w.dps_requests().is_empty());
    w.run_until(at(86_400 + 10));
    assert_eq!(w.dps_requests(), [(at(86_400), X509)]);
    assert_eq!(
        w.reprovisions(),
        [(
            at(86_400),
            ReprovisionReason::AssignmentTooOld,
            Duration::ZERO
        )]
    );
    // The fresh assignment restarts the age: nothing more for the next six days.
    w.run_until(at(86_400 + 6 * 86_400));
    assert_eq!(w.dps_requests().len(), 1);
}

#[test]
fn the_application_asks_to_reprovision() {
    let mut w = World::new(config(), cached(HUB_A, 60), assign(HUB_B), hub_ok());
    w.run_until(at(100));
    w.device.reprovision(at(100));
    w.run_until(at(200));
    assert_eq!(w.dps_requests(), [(at(100), X509)]);
    assert_eq!(
        w.reprovisions(),
        [(at(100), ReprovisionReason::Requested, Duration::ZERO)]
    );
    assert_eq!(
        w.hub_connects().last().map(|c| c.1.clone()),
        Some(HUB_B.into())
    );
}

/// The enrollment's primary key was regenerated: DPS refuses it and the hub refuses it; the
/// secondary key carries the device, and the event says so.
#[test]
fn key_rotation_is_survived_with_the_secondary_key() {
    let config = config().credentials(vec![PRIMARY, SECONDARY]);
    let hub: HubScript = Box::new(|_, _, c| {
        if c == PRIMARY {
            Err(ConnectFailure::Refused { code: 5 })
        } else {
            Ok(())
        }
    });
    let mut w = World::new(config.clone(), cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(600));
    assert!(
        w.dps_requests().is_empty(),
        "the secondary key needs no DPS call"
    );
    assert_eq!(
        w.events()[1..],
        [
            LifecycleEvent::CredentialSwitched {
                from: PRIMARY,
                to: SECONDARY
            },
            LifecycleEvent::Connected {
                credential: SECONDARY
            }
        ]
    );

    // Without a cache: DPS refuses the primary key (401) and accepts the secondary.
    let dps: DpsScript = Box::new(|_, c| {
        if c == PRIMARY {
            Dps::Unauthorized
        } else {
            Dps::Assign(HUB_A)
        }
    });
    let hub: HubScript = Box::new(|_, _, c| {
        if c == PRIMARY {
            Err(ConnectFailure::Refused { code: 5 })
        } else {
            Ok(())
        }
    });
    let mut w = World::new(config, None, dps, hub);
    w.run_until(at(600));
    assert_eq!(w.dps_requests(), [(at(0), PRIMARY), (at(0), SECONDARY)]);
    assert!(w.events().contains(&LifecycleEvent::CredentialSwitched {
        from: PRIMARY,
        to: SECONDARY
    }));
}

#[test]
fn dps_refusing_every_credential_stops() {
    let dps: DpsScript = Box::new(|_, _| Dps::Unauthorized);
    let mut w = World::new(config(), None, dps, hub_ok());
    w.run_until(at(3600));
    assert_eq!(
        w.dps_requests(),
        [(at(0), X509), (at(0), PRIMARY), (at(0), SECONDARY)]
    );
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::Stopped(
            DeviceStopReason::CredentialsRefused
        ))
    );
}

/// Repeated recoveries without a hub connection back off exponentially between the floor and
/// the ceiling; a successful hub connection resets the count.
#[test]
fn recovery_backoff_grows_between_floor_and_ceiling_and_resets_on_connect() {
    let floor = secs(300);
    let ceiling = secs(3600);
    let backoff = RecoveryBackoff::new(floor, ceiling);
    for seed in 0..200 {
        let mut j = JitterSource::new(seed);
        assert_eq!(backoff.delay(1, &mut j), Duration::ZERO);
        for attempt in 2..30 {
            let d = backoff.delay(attempt, &mut j);
            let nominal = (floor * (1 << (attempt - 2).min(10))).min(ceiling);
            assert!(d >= floor && d <= ceiling, "{attempt}: {d:?}");
            assert!(
                d <= nominal && d >= nominal - nominal / 4,
                "{attempt}: {d:?}"
            );
        }
    }

    // The hub is down for good after the first assignment: each recovery waits longer.
    let hub: HubScript = Box::new(|_, _, _| Err(ConnectFailure::Network));
    let config = config().recovery(backoff);
    let mut w = World::new(config, cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(6 * 3600));
    let delays: Vec<Duration> = w.reprovisions().iter().map(|r| r.2).collect();
    assert_eq!(delays[0], Duration::ZERO);
    assert!(delays.len() >= 5, "{delays:?}");
    for (i, d) in delays.iter().enumerate().skip(1) {
        let nominal = (floor * (1 << (i - 1).min(10))).min(ceiling);
        assert!(*d <= nominal && *d >= nominal - nominal / 4, "{i}: {d:?}");
    }
    // Each DPS request happens exactly `delay` after its re-provisioning was decided.
    let reqs = w.dps_requests();
    for (r, (t, _, d)) in reqs.iter().zip(w.reprovisions()) {
        assert_eq!(r.0, t + d);
    }

    // A connection in between resets the count: the next recovery is immediate again.
    let small = RecoveryBackoff::new(secs(10), secs(100));
    let hub: HubScript = Box::new(move |now, _, _| {
        if now >= at(1000) && now < at(1200) {
            Ok(())
        } else {
            Err(ConnectFailure::Network)
        }
    });
    let mut w = World::new(config_with(small), cached(HUB_A, 60), assign(HUB_A), hub);
    w.run_until(at(1500));
    let before = w.reprovisions();
    assert!(before.len() >= 5, "{before:?}");
    assert!(
        before
            .iter()
            .skip(1)
            .all(|r| r.2 >= secs(10) && r.2 <= secs(100))
    );
    assert!(
        w.events()
            .contains(&LifecycleEvent::Connected { credential: X509 })
    );
    w.device.disconnected(at(1500));
    w.run_until(at(1600));
    let after: Vec<_> = w
        .lifecycle
        .iter()
        .filter(|(t, _)| *t >= at(1500))
        .filter_map(|(_, e)| match e {
            LifecycleEvent::Reprovisioning { delay, attempt, .. } => Some((*delay, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(after.first(), Some(&(Duration::ZERO, 1)), "{after:?}");
}

fn config_with(backoff: RecoveryBackoff) -> DeviceConfig {
    config().recovery(backoff)
}

const CSR: &str = "TUlJQ1NSZmFrZQ==";

fn renewing(over_hub: bool) -> DeviceConfig {
    config().renewal(Some(CertificateRenewal::default().over_hub(over_hub)))
}

fn credentials_reply(w: &mut World, status: u16, rid: &str, body: &str) {
    let topic = format!("$iothub/credentials/res/{status}/?$rid={rid}");
    w.device.handle_publish(
        w.now,
        IncomingPublish::new(topic, body.as_bytes().to_vec(), Some(9)),
    );
    w.drain();
}

fn issue_requests(w: &World) -> Vec<(Timestamp, String, String)> {
    w.hub_publishes
        .iter()
        .filter(|p| {
            p.1.starts_with("$iothub/credentials/POST/issueCertificate/")
        })
        .cloned()
        .collect()
}

/// Renewal is asked for at 80 % of the lifetime less up to 5 %, and not before.
#[test]
fn renewal_is_due_at_the_configured_share_of_the_lifetime() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(1));
    // A 100-day certificate issued at the origin.
    w.device
        .certificate_validity(w.now, UNIX0, UNIX0 + 100 * 86_400);
    w.run_until(at(75 * 86_400 - 1));
    assert!(!w.events().contains(&LifecycleEvent::CsrNeeded));
    w.run_until(at(80 * 86_400));
    let due: Vec<Timestamp> = w
        .lifecycle
        .iter()
        .filter(|(_, e)| *e == LifecycleEvent::CsrNeeded)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(due.len(), 1, "{due:?}");
    assert!(due[0] >= at(75 * 86_400) && due[0] <= at(80 * 86_400));
    assert!(w.dps_requests().is_empty());
}

/// Over the hub: the credentials filter is in the SUBSCRIBE, the request carries the CSR,
/// 202 then 200 saves the chain, and DPS is never asked.
#[test]
fn renewal_over_the_hub_saves_the_new_chain_with_no_dps_call() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    assert!(w.subscribes[0].contains(&"$iothub/credentials/res/#".to_string()));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    let requests = issue_requests(&w);
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0, at(10));
    assert_eq!(
        requests[0].2,
        format!(r#"{{"id":"dev-1","csr":"{CSR}","replace":"*"}}"#)
    );
    credentials_reply(
        &mut w,
        202,
        "1",
        r#"{"correlationId":"c","operationExpires":"x"}"#,
    );
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, LifecycleEvent::CertificateRenewed { .. }))
    );
    credentials_reply(&mut w, 200, "1", r#"["bGVhZg==","aW50ZXJt"]"#);
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::CertificateRenewed { via: Issuer::Hub })
    );
    let Some(StoreAction::Save(record)) = w.store.last() else {
        panic!("a save: {:?}", w.store)
    };
    assert_eq!(record.issued_certificate_chain, ["bGVhZg==", "aW50ZXJt"]);
    assert!(w.dps_requests().is_empty());
}

/// 409004: a request is already active; the request is sent again after its retry-after.
#[test]
fn renewal_over_the_hub_waits_out_409004() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    credentials_reply(
        &mut w,
        409,
        "1",
        r#"{"errorCode":409004,"message":"active","trackingId":"t","timestampUtc":"x","retryAfter":5}"#,
    );
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::RenewalDeferred { retry_in: secs(5) })
    );
    w.run_until(at(14));
    assert_eq!(issue_requests(&w).len(), 1);
    w.run_until(at(15));
    let requests = issue_requests(&w);
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.0, r.1.clone()))
            .collect::<Vec<_>>(),
        [
            (
                at(10),
                "$iothub/credentials/POST/issueCertificate/?$rid=1".to_string()
            ),
            (
                at(15),
                "$iothub/credentials/POST/issueCertificate/?$rid=2".to_string()
            ),
        ]
    );
    // A late answer for the first request is ignored; the second one's counts.
    credentials_reply(&mut w, 200, "1", r#"["b2xk"]"#);
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, LifecycleEvent::CertificateRenewed { .. }))
    );
    credentials_reply(&mut w, 200, "2", r#"["bmV3"]"#);
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::CertificateRenewed { via: Issuer::Hub })
    );
}

#[test]
fn a_csr_over_8_kb_is_refused_before_anything_is_sent() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    let big = "A".repeat(8 * 1024 + 1);
    assert_eq!(
        w.device.renew_with_csr(w.now, big),
        Err(RenewError::CsrTooLarge { len: 8 * 1024 + 1 })
    );
    w.drain();
    assert!(issue_requests(&w).is_empty());
}

/// Where the hub does not issue, the device provisions again with the CSR and DPS's chain is
/// saved.
#[test]
fn renewal_by_reprovisioning_carries_the_csr_to_dps() {
    let mut w = World::new(renewing(false), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    assert!(w.subscribes.is_empty(), "{:?}", w.subscribes);
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.run_until(at(20));
    assert_eq!(w.dps_requests(), [(at(10), X509)]);
    assert!(
        w.dps_bodies[0].contains(&format!(r#""csr":"{CSR}""#)),
        "{}",
        w.dps_bodies[0]
    );
    assert_eq!(
        w.reprovisions(),
        [(
            at(10),
            ReprovisionReason::CertificateRenewal,
            Duration::ZERO
        )]
    );
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Dps })
    );
    assert!(issue_requests(&w).is_empty());
}

/// A hub that answers the credentials request with an error other than 409004 does not issue:
/// DPS does, with the same CSR.
#[test]
fn a_hub_refusing_to_issue_falls_back_to_dps() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    credentials_reply(&mut w, 400, "1", r#"{"errorCode":400004,"message":"no"}"#);
    w.run_until(at(20));
    assert_eq!(w.dps_requests(), [(at(10), X509)]);
    assert!(w.dps_bodies[0].contains(CSR));
    assert!(
        w.events()
            .contains(&LifecycleEvent::CertificateRenewed { via: Issuer::Dps })
    );
}

/// DPS keeps throttling past the registration's deadline: the next re-provisioning waits the
/// larger of the recovery backoff and DPS's retry-after.
#[test]
fn a_larger_dps_retry_after_wins_over_the_recovery_backoff() {
    let dps: DpsScript = Box::new(|n, _| {
        if n < 10 {
            Dps::Throttled(2000)
        } else {
            Dps::Assign(HUB_A)
        }
    });
    let mut w = World::new(config(), None, dps, hub_ok());
    w.run_until(at(4 * 3600));
    // The registration honours DPS's own answers as before: every 60 s (its retry-after
    // ceiling) until its 600 s deadline; the device then waits the full retry-after (2000 s,
    // larger than the 300 s recovery floor) before asking again.
    assert_eq!(
        w.reprovisions(),
        [
            (at(0), ReprovisionReason::NoCache, Duration::ZERO),
            (at(600), ReprovisionReason::ProvisioningFailed, secs(2000)),
        ]
    );
    let expected: Vec<(Timestamp, CredentialSlot)> = (0..10)
        .map(|i| (at(60 * i), X509))
        .chain([(at(2600), X509)])
        .collect();
    assert_eq!(w.dps_requests(), expected);
    assert_eq!(
        w.lifecycle.last(),
        Some(&(at(2600), LifecycleEvent::Connected { credential: X509 }))
    );
}

/// Telemetry sent through the session reaches the wire through the device machine.
#[test]
fn telemetry_goes_through_the_device() {
    let mut w = World::new(config(), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(5));
    let id = w
        .device
        .hub()
        .expect("a hub session")
        .send_telemetry(w.now, Message::new(&b"21.5"[..]))
        .expect("queued");
    // No input since the send: draining the device collects what the session produced.
    w.drain();
    assert_eq!(w.hub_publishes.len(), 1);
    assert_eq!(w.hub_publishes[0].1, "devices/dev-1/messages/events/");
    assert_eq!(w.hub_publishes[0].2, "21.5");
    assert!(id.get() > 0);
}

/// The connection drops between 202 and 200: the request goes out again (replacing any active
/// one) as soon as the session is back, and that answer counts.
#[test]
fn a_renewal_interrupted_by_a_drop_is_sent_again_after_the_reconnect() {
    let mut w = World::new(renewing(true), cached(HUB_A, 0), assign(HUB_A), hub_ok());
    w.run_until(at(10));
    w.device
        .renew_with_csr(w.now, CSR.into())
        .expect("a valid CSR");
    w.drain();
    credentials_reply(
        &mut w,
        202,
        "1",
        r#"{"correlationId":"c","operationExpires":"x"}"#,
    );
    w.device.disconnected(w.now);
    w.run_until(at(100));
    let requests = issue_requests(&w);
    assert_eq!(requests.len(), 2, "{requests:?}");
    let reconnect = w.hub_connects()[1].0;
    assert_eq!(requests[1].0, reconnect);
    assert_eq!(
        requests[1].1,
        "$iothub/credentials/POST/issueCertificate/?$rid=2"
    );
    // The credentials filter went out again on the new connection.
    assert_eq!(
        w.subscribes
            .iter()
            .filter(|f| f.contains(&"$iothub/credentials/res/#".to_string()))
            .count(),
        2
    );
    credentials_reply(&mut w, 200, "2", r#"["bmV3"]"#);
    assert_eq!(
        w.events().last(),
        Some(&LifecycleEvent::CertificateRenewed { via: Issuer::Hub })
    );
    assert!(w.dps_requests().is_empty());
}

fn acked(w: &World) -> Vec<u64> {
    w.hub_events
        .iter()
        .filter_map(|e| match e {
            dps_core::hub::Event::TelemetryAcked { id } => Some(id.get()),
            _ => None,
        })
        .collect()
}

/// Telemetry sent while the device waits to provision is queued, then sent to the hub DPS
/// assigns, with the ids the application was given.
#[test]
fn telemetry_sent_while_provisioning_reaches_the_assigned_hub() {
    let dps: DpsScript = Box::new(|n, _| {
        if n == 0 {
            Dps::Throttled(60)
        } else {
            Dps::Assign(HUB_B)
        }
    });
    let mut w = World::new(config(), None, dps, hub_ok());
    w.run_until(at(1));
    assert!(w.device.hub().is_none(), "waiting out the retry-after");
    let first = w
        .device
        .send_telemetry(w.now, Message::new("one"))
        .expect("queued");
    let second = w
        .device
        .send_telemetry(w.now, Message::new("two"))
        .expect("queued");
    assert_eq!(w.device.pending_telemetry(), 2);
    w.run_until(at(3600));
    let bodies: Vec<&str> = w.hub_publishes.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(acked(&w), [first.get(), second.get()]);
    assert_eq!(w.device.pending_telemetry(), 0);
}

/// Telemetry the old hub never acknowledged goes on with the session on the new hub (no
/// telemetry lost across a re-provisioning), ids unchanged, nothing abandoned.
#[test]
fn unacknowledged_telemetry_moves_with_the_device_to_its_new_hub() {
    let mut w = World::new(config(), cached(HUB_A, 0), assign(HUB_B), hub_ok());
    w.run_until(at(5));
    w.hub_acks = false;
    let ids: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|body| {
            w.device
                .send_telemetry(w.now, Message::new(*body))
                .expect("queued")
                .get()
        })
        .collect();
    w.drain();
    assert_eq!(w.hub_publishes.len(), 3, "in flight on hub A");
    w.hub_acks = true;
    w.device.reprovision(w.now);
    w.run_until(at(3600));
    let on_b: Vec<&str> = w.hub_publishes[3..].iter().map(|p| p.2.as_str()).collect();
    assert_eq!(on_b, ["a", "b", "c"], "sent again on hub B, in order");
    assert_eq!(acked(&w), ids);
    assert!(
        !w.hub_events
            .iter()
            .any(|e| matches!(e, dps_core::hub::Event::TelemetryAbandoned { .. })),
        "nothing abandoned"
    );
    assert!(matches!(w.device.target(), Some(Target::Hub { hub, .. }) if hub == HUB_B));
}

/// A hub refusing the cached identity stops its session; the telemetry it held is kept
/// through the re-provisioning too.
#[test]
fn telemetry_survives_a_refused_hub_and_the_reprovisioning() {
    let refuse = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = std::rc::Rc::clone(&refuse);
    let hub: HubScript = Box::new(move |_, hub, _| {
        if hub == HUB_A && flag.get() {
            Err(ConnectFailure::Refused { code: 5 })
        } else {
            Ok(())
        }
    });
    let mut w = World::new(config(), cached(HUB_A, 0), assign(HUB_B), hub);
    w.run_until(at(5));
    w.hub_acks = false;
    let id = w
        .device
        .send_telemetry(w.now, Message::new("kept"))
        .expect("queued");
    w.drain();
    // The hub drops the connection and refuses the identity from now on (device moved).
    refuse.set(true);
    w.hub_acks = true;
    w.device
        .handle_disconnected(w.now, dps_core::mqtt::ConnectionLoss::ClosedByService);
    w.run_until(at(3600));
    assert_eq!(w.dps_requests().len(), 1);
    let last = w.hub_publishes.last().expect("sent on hub B");
    assert_eq!(last.2, "kept");
    assert_eq!(acked(&w), [id.get()]);
}

/// A device that stops for good abandons what it still holds, each message once.
#[test]
fn a_stopped_device_abandons_queued_telemetry() {
    let dps: DpsScript = Box::new(|_, _| Dps::Throttled(60));
    let mut w = World::new(config(), None, dps, hub_ok());
    w.run_until(at(1));
    let id = w
        .device
        .send_telemetry(w.now, Message::new("x"))
        .expect("queued");
    w.device.close(w.now);
    w.drain();
    let abandoned: Vec<u64> = w
        .hub_events
        .iter()
        .filter_map(|e| match e {
            dps_core::hub::Event::TelemetryAbandoned { id } => Some(id.get()),
            _ => None,
        })
        .collect();
    assert_eq!(abandoned, [id.get()]);
    assert!(w.device.send_telemetry(w.now, Message::new("y")).is_err());
}
