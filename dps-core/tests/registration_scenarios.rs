//! Deterministic scenarios for the registration state machine: a scripted DPS service and a
//! virtual clock that jumps straight to each `poll_timeout`. Every test asserts which requests go
//! out, and when.

use std::time::Duration;

mod harness;

use dps_core::Timestamp;
use dps_core::dps::registration::{
    ConnectFailure, Event, IgnoreReason, Outcome, Registration, RegistrationConfig,
    RegistrationError, RequestKind, RetryReason, Timing, Transmit,
};
use dps_core::dps::topic::ResponseTopic;
use dps_core::dps::{ErrorCode, Substatus};
use dps_core::mqtt::{Connected, IncomingPublish, Machine as _};
use dps_core::query::Params;
use harness::{Harness, Inputs as _};

const HUB: &str = "contoso.azure-devices.net";
const OPID: &str = "4.d0a671905ea5b2c8.42d78160-4c78-479e-8be7-61d5e55dac0d";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_duration(secs(s))
}

/// A request as the service saw it.
#[derive(Debug, Clone)]
struct Request {
    at: Timestamp,
    kind: RequestKind,
    rid: String,
    operation_id: Option<String>,
    payload: Vec<u8>,
}

/// What the scripted service does with one request.
#[derive(Debug, Clone)]
enum Reply {
    /// Answer on `res/{status}/?$rid={rid}[&retry-after=..]` with `body`.
    Answer {
        status: u16,
        retry_after: Option<u32>,
        body: String,
    },
    /// Answer on an arbitrary topic.
    Raw { topic: String, body: String },
    /// Drop the connection.
    Disconnect,
}

fn assigning(retry_after: Option<u32>) -> Reply {
    Reply::Answer {
        status: 202,
        retry_after,
        body: format!(r#"{{"operationId":"{OPID}","status":"assigning"}}"#),
    }
}

fn assigned() -> Reply {
    Reply::Answer {
        status: 200,
        retry_after: None,
        body: format!(
            r#"{{"operationId":"{OPID}","status":"assigned","registrationState":{{"registrationId":"dev-1","assignedHub":"{HUB}","deviceId":"dev-1","status":"assigned","substatus":"initialAssignment","payload":{{"k": "v"}}}}}}"#
        ),
    }
}

fn error(status: u16, retry_after: Option<u32>) -> Reply {
    Reply::Answer {
        status,
        retry_after,
        body: format!(
            r#"{{"errorCode":{status}001,"trackingId":"t-{status}","message":"m","timestampUtc":"2024-01-01T00:00:00.0000000Z"}}"#
        ),
    }
}

fn fast_timing() -> Timing {
    Timing::default()
        .request_timeout(secs(10))
        .deadline(secs(600))
}

/// Runs a registration against `service` until it finishes (or 10,000 steps, which fails).
struct Sim {
    reg: Registration,
    now: Timestamp,
    connected: bool,
    connects: Vec<Timestamp>,
    requests: Vec<Request>,
    events: Vec<(Timestamp, Event)>,
    transmits: Vec<(Timestamp, Transmit)>,
}

impl Sim {
    fn new(timing: Timing) -> Self {
        Self::with_config(RegistrationConfig::new("dev-1").timing(timing), 42)
    }

    fn with_config(config: RegistrationConfig, seed: u64) -> Self {
        Self {
            reg: Registration::new(config, Timestamp::ZERO, seed),
            now: Timestamp::ZERO,
            connected: false,
            connects: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
            transmits: Vec::new(),
        }
    }

    /// `service(request, index)` answers each request; `on_connect(n)` decides each CONNECT.
    fn run(
        mut self,
        mut service: impl FnMut(&Request, usize) -> Vec<Reply>,
        mut on_connect: impl FnMut(usize) -> Result<(), ConnectFailure>,
    ) -> (Self, Outcome) {
        for _ in 0..10_000 {
            self.collect_events();
            if let Some(outcome) = self.outcome() {
                self.drain_transmits(&mut service, &mut on_connect);
                return (self, outcome);
            }
            if self.drain_transmits(&mut service, &mut on_connect) {
                continue;
            }
            let next = self
                .reg
                .poll_timeout()
                .expect("an unfinished registration has a timeout");
            assert!(
                next >= self.now,
                "timeout {next:?} is in the past (now {:?})",
                self.now
            );
            self.now = next;
            self.reg.handle_timeout(self.now);
        }
        panic!("registration did not finish");
    }

    fn outcome(&self) -> Option<Outcome> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Finished(outcome) => Some(outcome.clone()),
            _ => None,
        })
    }

    fn collect_events(&mut self) {
        while let Some(event) = self.reg.poll_event() {
            self.events.push((self.now, event));
        }
    }

    /// Performs pending transmits; true when anything happened.
    fn drain_transmits(
        &mut self,
        service: &mut impl FnMut(&Request, usize) -> Vec<Reply>,
        on_connect: &mut impl FnMut(usize) -> Result<(), ConnectFailure>,
    ) -> bool {
        let mut any = false;
        while let Some(t) = self.reg.poll_transmit() {
            any = true;
            self.transmits.push((self.now, t.clone()));
            match t {
                Transmit::Connect { clean_session } => {
                    assert!(clean_session, "DPS connects with a clean session");
                    self.connects.push(self.now);
                    match on_connect(self.connects.len() - 1) {
                        Ok(()) => {
                            self.connected = true;
                            self.reg.connected(self.now);
                        }
                        Err(failure) => self.reg.handle_connect_failed(self.now, failure),
                    }
                }
                Transmit::Subscribe { filters } => {
                    assert_eq!(filters, ["$dps/registrations/res/#"]);
                    self.reg.subscribed(self.now);
                }
                Transmit::Publish { topic, payload, .. } => {
                    assert!(self.connected, "publish while disconnected");
                    let request = parse_request(self.now, &topic, payload.to_vec());
                    self.requests.push(request.clone());
                    for reply in service(&request, self.requests.len() - 1) {
                        self.deliver(&request, reply);
                    }
                }
                Transmit::Disconnect => self.connected = false,
                other => panic!("unexpected {other:?}"),
            }
            self.collect_events();
        }
        any
    }

    fn deliver(&mut self, request: &Request, reply: Reply) {
        match reply {
            Reply::Answer {
                status,
                retry_after,
                body,
            } => {
                let topic = ResponseTopic {
                    status,
                    rid: &request.rid,
                    retry_after,
                }
                .to_string();
                self.reg.publish(self.now, &topic, body.as_bytes());
            }
            Reply::Raw { topic, body } => self.reg.publish(self.now, &topic, body.as_bytes()),
            Reply::Disconnect => {
                self.connected = false;
                self.reg.disconnected(self.now);
            }
        }
    }

    fn request_times(&self) -> Vec<Timestamp> {
        self.requests.iter().map(|r| r.at).collect()
    }

    fn kinds(&self) -> Vec<RequestKind> {
        self.requests.iter().map(|r| r.kind).collect()
    }

    fn ignored(&self) -> Vec<IgnoreReason> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Ignored { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

fn parse_request(at: Timestamp, topic: &str, payload: Vec<u8>) -> Request {
    let (path, query) = topic.split_once('?').expect("request topics carry a query");
    let kind = match path {
        "$dps/registrations/PUT/iotdps-register/" => RequestKind::Register,
        "$dps/registrations/GET/iotdps-get-operationstatus/" => RequestKind::Poll,
        other => panic!("unexpected publish topic {other}"),
    };
    let params = Params::new(query);
    Request {
        at,
        kind,
        rid: params
            .clone()
            .get("$rid")
            .flatten()
            .expect("rid")
            .to_string(),
        operation_id: params.get("operationId").flatten().map(str::to_string),
        payload,
    }
}

fn always_connect(_: usize) -> Result<(), ConnectFailure> {
    Ok(())
}

// ---- the happy path and retry-after -----------------------------------------------------------

#[test]
fn register_then_poll_honours_first_retry_after() {
    let sim = Sim::new(fast_timing());
    let (sim, outcome) = sim.run(
        |_, i| {
            vec![if i == 0 {
                assigning(Some(3))
            } else {
                assigned()
            }]
        },
        always_connect,
    );
    let assignment = outcome.unwrap();
    assert_eq!(assignment.assigned_hub(), HUB);
    assert_eq!(assignment.device_id(), "dev-1");
    assert_eq!(assignment.substatus(), Some(&Substatus::InitialAssignment));
    assert_eq!(assignment.payload().unwrap().get(), r#"{"k": "v"}"#);
    assert_eq!(sim.request_times(), [at(0), at(3)]);
    assert_eq!(sim.kinds(), [RequestKind::Register, RequestKind::Poll]);
    assert_eq!(sim.requests[0].payload, br#"{"registrationId":"dev-1"}"#);
    assert_eq!(sim.requests[1].operation_id.as_deref(), Some(OPID));
    assert!(sim.requests[1].payload.is_empty());
    assert_ne!(sim.requests[0].rid, sim.requests[1].rid);
    // The session ends with DISCONNECT.
    assert_eq!(sim.transmits.last().unwrap().1, Transmit::Disconnect);
    assert_eq!(sim.connects, [at(0)]);
}

#[test]
fn retry_after_is_clamped_and_defaulted() {
    // 0 → floor (1 s); missing → default (2 s); 3600 → ceiling (60 s).
    let script = [
        assigning(Some(0)),
        assigning(None),
        assigning(Some(3600)),
        assigned(),
    ];
    let (sim, outcome) =
        Sim::new(fast_timing()).run(|_, i| vec![script[i].clone()], always_connect);
    assert!(outcome.is_ok());
    assert_eq!(sim.request_times(), [at(0), at(1), at(3), at(63)]);
    let waits: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Assigning { retry_in, .. } => Some(*retry_in),
            _ => None,
        })
        .collect();
    assert_eq!(waits, [secs(1), secs(2), secs(60)]);
}

#[test]
fn custom_floor_and_ceiling() {
    let timing = fast_timing()
        .retry_after_floor(secs(5))
        .retry_after_ceiling(secs(7));
    let script = [assigning(Some(1)), assigning(Some(100)), assigned()];
    let (sim, _) = Sim::new(timing).run(|_, i| vec![script[i].clone()], always_connect);
    assert_eq!(sim.request_times(), [at(0), at(5), at(12)]);
}

// ---- throttling and server errors -------------------------------------------------------------

#[test]
fn throttling_storm_respects_retry_after_and_backs_off() {
    let timing = fast_timing().max_jitter(Duration::from_millis(500));
    let (sim, outcome) = Sim::new(timing).run(
        |_, i| {
            vec![if i < 6 {
                error(429, Some(5))
            } else {
                assigned()
            }]
        },
        always_connect,
    );
    assert!(outcome.is_ok());
    assert_eq!(
        sim.requests.len(),
        7,
        "one request per permitted slot, no storm"
    );
    let times = sim.request_times();
    for (n, pair) in times.windows(2).enumerate() {
        let gap = pair[1].saturating_duration_since(pair[0]);
        let backoff = secs(1 << n); // 1, 2, 4, 8, 16, 32 s
        let floor = backoff.max(secs(5));
        assert!(
            gap >= floor,
            "gap {n} = {gap:?}, expected at least {floor:?}"
        );
        assert!(
            gap <= floor + Duration::from_millis(500),
            "gap {n} = {gap:?}, expected at most {floor:?} + jitter"
        );
    }
    // Every retry is reported with its reason and attempt number.
    let attempts: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Retrying {
                reason: RetryReason::Throttled { status: 429 },
                attempt,
                ..
            } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn every_5xx_is_retried_and_polling_resumes_with_the_same_operation() {
    let script = [
        assigning(Some(1)),
        error(500, None),
        error(502, None),
        error(503, Some(2)),
        error(504, None),
        assigned(),
    ];
    let (sim, outcome) = Sim::new(fast_timing().max_jitter(Duration::ZERO))
        .run(|_, i| vec![script[i].clone()], always_connect);
    assert!(outcome.is_ok());
    assert_eq!(
        sim.kinds(),
        [
            RequestKind::Register,
            RequestKind::Poll,
            RequestKind::Poll,
            RequestKind::Poll,
            RequestKind::Poll,
            RequestKind::Poll
        ]
    );
    assert!(
        sim.requests[1..]
            .iter()
            .all(|r| r.operation_id.as_deref() == Some(OPID))
    );
    // Backoff 1, 2, then max(4, retry-after 2) = 4, then 8.
    assert_eq!(
        sim.request_times(),
        [at(0), at(1), at(2), at(4), at(8), at(16)]
    );
}

#[test]
fn success_resets_the_backoff() {
    let script = [
        error(503, None),
        error(503, None),
        assigning(Some(1)),
        error(503, None),
        assigned(),
    ];
    let (sim, _) = Sim::new(fast_timing().max_jitter(Duration::ZERO))
        .run(|_, i| vec![script[i].clone()], always_connect);
    // 1 s, 2 s backoff; then assigning (1 s); then the first failure after success waits 1 s again.
    assert_eq!(sim.request_times(), [at(0), at(1), at(3), at(4), at(5)]);
}

#[test]
fn throttled_past_the_deadline_ends_early() {
    let timing = fast_timing().deadline(secs(30)).max_jitter(Duration::ZERO);
    let (sim, outcome) = Sim::new(timing).run(|_, _| vec![error(429, Some(20))], always_connect);
    assert_eq!(
        outcome.unwrap_err(),
        RegistrationError::Throttled {
            status: 429,
            retry_after: Some(secs(20))
        }
    );
    // t=0 and t=20; the next slot (t=40) is past the deadline, so it gives up at t=20.
    assert_eq!(sim.request_times(), [at(0), at(20)]);
    assert_eq!(sim.events.last().unwrap().0, at(20));
}

// ---- terminal answers -------------------------------------------------------------------------

#[test]
fn terminal_statuses_are_typed() {
    let failed = Reply::Answer {
        status: 200,
        retry_after: None,
        body: format!(
            r#"{{"operationId":"{OPID}","status":"failed","registrationState":{{"registrationId":"dev-1","status":"failed","errorCode":400207,"errorMessage":"Custom allocation failed with status code: 400","lastUpdatedDateTimeUtc":"2020-04-10T05:24:22.4718526Z"}}}}"#
        ),
    };
    let (_, outcome) = Sim::new(fast_timing()).run(|_, _| vec![failed.clone()], always_connect);
    assert_eq!(
        outcome.unwrap_err(),
        RegistrationError::Failed {
            error_code: Some(ErrorCode(400207)),
            message: Some("Custom allocation failed with status code: 400".into()),
            tracking_id: None,
            timestamp: Some("2020-04-10T05:24:22.4718526Z".into()),
        }
    );

    for (status, expect_disabled) in [("disabled", true), ("unassigned", false)] {
        let reply = Reply::Answer {
            status: 200,
            retry_after: None,
            body: format!(
                r#"{{"operationId":"","status":"{status}","registrationState":{{"registrationId":"dev-1","status":"{status}"}}}}"#
            ),
        };
        let (sim, outcome) =
            Sim::new(fast_timing()).run(|_, _| vec![reply.clone()], always_connect);
        let err = outcome.unwrap_err();
        assert_eq!(
            matches!(err, RegistrationError::Disabled { .. }),
            expect_disabled,
            "{err:?}"
        );
        assert_eq!(
            matches!(err, RegistrationError::Unassigned { .. }),
            !expect_disabled,
            "{err:?}"
        );
        assert_eq!(sim.requests.len(), 1, "a terminal answer is not retried");
    }
}

#[test]
fn unauthorized_and_bad_requests_are_not_retried() {
    for (status, unauthorized) in [
        (401, true),
        (403, true),
        (400, false),
        (404, false),
        (412, false),
    ] {
        let (sim, outcome) =
            Sim::new(fast_timing()).run(|_, _| vec![error(status, None)], always_connect);
        match outcome.unwrap_err() {
            RegistrationError::Unauthorized { status: s, error } => {
                assert!(unauthorized);
                assert_eq!(s, status);
                assert_eq!(
                    error.unwrap().tracking_id.as_deref(),
                    Some(format!("t-{status}").as_str())
                );
            }
            RegistrationError::Rejected { status: s, .. } => {
                assert!(!unauthorized);
                assert_eq!(s, status);
            }
            other => panic!("{status}: unexpected {other:?}"),
        }
        assert_eq!(sim.requests.len(), 1);
    }
}

#[test]
fn connack_refusals() {
    for (code, unauthorized) in [(4u8, true), (5, true), (1, false), (2, false)] {
        let (sim, outcome) = Sim::new(fast_timing()).run(
            |_, _| vec![assigned()],
            |_| Err(ConnectFailure::Refused { code }),
        );
        let err = outcome.unwrap_err();
        if unauthorized {
            assert_eq!(
                err,
                RegistrationError::Unauthorized {
                    status: u16::from(code),
                    error: None
                }
            );
        } else {
            assert_eq!(err, RegistrationError::ConnectionRefused { code });
        }
        assert_eq!(sim.connects.len(), 1, "CONNACK {code} is not retried");
        assert!(sim.requests.is_empty());
    }
}

#[test]
fn server_unavailable_and_network_failures_reconnect_with_backoff() {
    let timing = fast_timing()
        .max_jitter(Duration::ZERO)
        .max_connect_failures(Some(4));
    let (sim, outcome) = Sim::new(timing).run(
        |_, _| vec![assigned()],
        |n| match n {
            0 => Err(ConnectFailure::Refused { code: 3 }),
            1 | 2 => Err(ConnectFailure::Network),
            _ => Ok(()),
        },
    );
    assert!(outcome.is_ok());
    assert_eq!(sim.connects, [at(0), at(1), at(3), at(7)]);
    assert_eq!(sim.request_times(), [at(7)]);
}

#[test]
fn an_unreachable_endpoint_ends_after_the_bound_not_at_the_deadline() {
    // The default bound: three attempts in a row, at 0, 1 and 3 s (backoff 1 s, doubled).
    let timing = fast_timing().max_jitter(Duration::ZERO);
    let (sim, outcome) = Sim::new(timing).run(|_, _| vec![], |_| Err(ConnectFailure::Network));
    let error = outcome.unwrap_err();
    assert_eq!(
        error,
        RegistrationError::Unreachable {
            attempts: 3,
            last: ConnectFailure::Network
        }
    );
    assert_eq!(
        error.to_string(),
        "the service could not be reached: 3 connection attempts in a row failed \
         (the last: the connection attempt failed on the network)"
    );
    assert_eq!(sim.connects, [at(0), at(1), at(3)]);
    assert_eq!(
        sim.events.last().unwrap().0,
        at(3),
        "ends at the third failure"
    );
    assert!(sim.requests.is_empty());

    // A configured bound, counting "server unavailable" refusals too.
    let timing = fast_timing()
        .max_jitter(Duration::ZERO)
        .max_connect_failures(Some(5));
    let (sim, outcome) = Sim::new(timing).run(
        |_, _| vec![],
        |n| {
            Err(if n % 2 == 0 {
                ConnectFailure::Network
            } else {
                ConnectFailure::Refused { code: 3 }
            })
        },
    );
    assert_eq!(
        outcome.unwrap_err(),
        RegistrationError::Unreachable {
            attempts: 5,
            last: ConnectFailure::Network
        }
    );
    assert_eq!(sim.connects, [at(0), at(1), at(3), at(7), at(15)]);
}

#[test]
fn a_successful_connect_restarts_the_count() {
    // Two failures, a connection whose subscription is refused, two more failures, then
    // success: never three in a row.
    let timing = fast_timing().max_jitter(Duration::ZERO);
    let mut reg = Registration::new(RegistrationConfig::new("dev-1").timing(timing), at(0), 1);
    let mut now = at(0);
    let mut connects = 0;
    let mut subscribed = false;
    for _ in 0..100 {
        while let Some(t) = reg.poll_transmit() {
            match t {
                Transmit::Connect { .. } => {
                    connects += 1;
                    if connects == 3 || connects == 6 {
                        reg.connected(now);
                    } else {
                        reg.handle_connect_failed(now, ConnectFailure::Network);
                    }
                }
                Transmit::Subscribe { .. } if connects == 3 => {
                    reg.handle_subscribed(now, false);
                }
                Transmit::Subscribe { .. } => {
                    subscribed = true;
                    reg.subscribed(now);
                }
                _ => {}
            }
        }
        while let Some(event) = reg.poll_event() {
            assert!(
                !matches!(event, Event::Finished(_)),
                "never three failures in a row: {event:?}"
            );
        }
        if subscribed {
            break;
        }
        now = reg.poll_timeout().expect("a timeout");
        reg.handle_timeout(now);
    }
    assert!(subscribed, "connected at the sixth attempt");
    assert_eq!(connects, 6);
}

#[test]
fn without_a_bound_connect_failures_retry_until_the_deadline() {
    let timing = fast_timing()
        .deadline(secs(60))
        .max_jitter(Duration::ZERO)
        .max_connect_failures(None);
    let (sim, outcome) = Sim::new(timing).run(|_, _| vec![], |_| Err(ConnectFailure::Network));
    assert_eq!(
        outcome.unwrap_err(),
        RegistrationError::Timeout {
            last_problem: Some(RetryReason::ConnectFailed(ConnectFailure::Network))
        }
    );
    assert_eq!(sim.connects, [at(0), at(1), at(3), at(7), at(15), at(31)]);
}

// ---- lost, duplicate, stale and strange responses ---------------------------------------------

#[test]
fn lost_response_times_out_and_a_late_answer_is_not_trusted() {
    let timing = fast_timing().max_jitter(Duration::ZERO);
    let mut first_rid = String::new();
    let (sim, outcome) = Sim::new(timing).run(
        |req, i| match i {
            0 => {
                first_rid = req.rid.clone();
                vec![] // lost
            }
            1 => vec![
                // The late answer to the first request arrives now: it says "disabled", which
                // must not be believed.
                Reply::Raw {
                    topic: format!("$dps/registrations/res/200/?$rid={first_rid}"),
                    body: r#"{"operationId":"","status":"disabled"}"#.into(),
                },
                assigning(Some(1)),
            ],
            _ => vec![assigned()],
        },
        always_connect,
    );
    assert!(outcome.is_ok());
    // Timeout at 10 s, backoff 1 s, then poll after 1 s.
    assert_eq!(sim.request_times(), [at(0), at(11), at(12)]);
    assert_eq!(
        sim.kinds(),
        [
            RequestKind::Register,
            RequestKind::Register,
            RequestKind::Poll
        ]
    );
    assert_ne!(
        sim.requests[0].rid, sim.requests[1].rid,
        "a new $rid for the retry"
    );
    assert_eq!(sim.ignored(), [IgnoreReason::StaleRid]);
    assert!(sim.events.iter().any(|(t, e)| *t == at(10)
        && matches!(
            e,
            Event::Retrying {
                reason: RetryReason::RequestTimeout,
                attempt: 1,
                ..
            }
        )));
}

#[test]
fn duplicate_responses_are_ignored() {
    let (sim, outcome) = Sim::new(fast_timing()).run(
        |_, i| match i {
            0 => vec![assigning(Some(2)), assigning(Some(2)), error(500, None)],
            _ => vec![assigned(), assigned()],
        },
        always_connect,
    );
    assert!(outcome.is_ok());
    assert_eq!(sim.request_times(), [at(0), at(2)]);
    assert_eq!(
        sim.ignored(),
        [
            IgnoreReason::StaleRid,
            IgnoreReason::StaleRid,
            IgnoreReason::Finished
        ]
    );
}

#[test]
fn unknown_rids_and_foreign_topics_are_ignored() {
    let (sim, outcome) = Sim::new(fast_timing()).run(
        |_, i| match i {
            0 => vec![
                Reply::Raw {
                    topic: "$dps/registrations/res/200/?$rid=999".into(),
                    body: "{}".into(),
                },
                Reply::Raw {
                    topic: "$dps/registrations/res/200/?$rid=not-ours".into(),
                    body: "{}".into(),
                },
                Reply::Raw {
                    topic: "$iothub/twin/res/200/?$rid=1".into(),
                    body: "{}".into(),
                },
                Reply::Raw {
                    topic: "$dps/registrations/res/20x/?$rid=1".into(),
                    body: "{}".into(),
                },
                assigned(),
            ],
            _ => unreachable!(),
        },
        always_connect,
    );
    assert!(outcome.is_ok());
    let ignored = sim.ignored();
    assert_eq!(ignored.len(), 4);
    assert_eq!(ignored[0], IgnoreReason::UnknownRid);
    assert_eq!(ignored[1], IgnoreReason::UnknownRid);
    assert_eq!(ignored[2], IgnoreReason::NotDps);
    assert!(matches!(ignored[3], IgnoreReason::MalformedTopic(_)));
}

#[test]
fn malformed_json_is_retried() {
    let malformed = Reply::Answer {
        status: 202,
        retry_after: Some(1),
        body: "{\"operationId\":".into(),
    };
    let (sim, outcome) = Sim::new(fast_timing().max_jitter(Duration::ZERO)).run(
        |_, i| {
            vec![if i == 0 {
                malformed.clone()
            } else {
                assigned()
            }]
        },
        always_connect,
    );
    assert!(outcome.is_ok());
    // max(backoff 1 s, retry-after 1 s).
    assert_eq!(sim.request_times(), [at(0), at(1)]);
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::Retrying {
            reason: RetryReason::InvalidResponse(_),
            ..
        }
    )));
}

#[test]
fn missing_operation_id_and_unknown_operation_restart_from_register() {
    let no_id = Reply::Answer {
        status: 202,
        retry_after: Some(1),
        body: r#"{"operationId":"","status":"assigning"}"#.into(),
    };
    let script = [
        assigning(Some(1)),
        error(404, None),
        no_id,
        assigning(Some(1)),
        assigned(),
    ];
    let (sim, outcome) = Sim::new(fast_timing().max_jitter(Duration::ZERO))
        .run(|_, i| vec![script[i].clone()], always_connect);
    assert!(outcome.is_ok());
    assert_eq!(
        sim.kinds(),
        [
            RequestKind::Register,
            RequestKind::Poll,
            RequestKind::Register,
            RequestKind::Register,
            RequestKind::Poll
        ]
    );
}

// ---- connections ------------------------------------------------------------------------------

#[test]
fn dropped_connection_reconnects_and_resumes_polling() {
    let (sim, outcome) = Sim::new(fast_timing().max_jitter(Duration::ZERO)).run(
        |_, i| match i {
            0 => vec![assigning(Some(5))],
            1 => vec![Reply::Disconnect],
            _ => vec![assigned()],
        },
        always_connect,
    );
    assert!(outcome.is_ok());
    assert_eq!(sim.connects, [at(0), at(6)]);
    assert_eq!(sim.request_times(), [at(0), at(5), at(6)]);
    assert_eq!(
        sim.kinds(),
        [RequestKind::Register, RequestKind::Poll, RequestKind::Poll]
    );
}

#[test]
fn a_drop_while_waiting_still_honours_retry_after() {
    let mut sim = Sim::new(fast_timing().max_jitter(Duration::ZERO));
    // Drive by hand: connect, subscribe, register.
    assert_eq!(
        sim.reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
    sim.reg.connected(at(0));
    assert!(matches!(
        sim.reg.poll_transmit(),
        Some(Transmit::Subscribe { .. })
    ));
    sim.reg.subscribed(at(0));
    let Some(Transmit::Publish { topic, .. }) = sim.reg.poll_transmit() else {
        panic!()
    };
    assert!(topic.starts_with("$dps/registrations/PUT/iotdps-register/?$rid=1"));
    sim.reg.publish(
        at(0),
        "$dps/registrations/res/202/?$rid=1&retry-after=30",
        format!(r#"{{"operationId":"{OPID}","status":"assigning"}}"#).as_bytes(),
    );
    // The connection drops at t=2 and is back at t=3: the poll still waits for t=30.
    sim.reg.disconnected(at(2));
    assert_eq!(sim.reg.poll_timeout(), Some(at(3)));
    sim.reg.handle_timeout(at(3));
    assert_eq!(
        sim.reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
    sim.reg.connected(at(3));
    assert!(matches!(
        sim.reg.poll_transmit(),
        Some(Transmit::Subscribe { .. })
    ));
    sim.reg.subscribed(at(3));
    assert_eq!(sim.reg.poll_transmit(), None);
    assert_eq!(sim.reg.poll_timeout(), Some(at(30)));
    sim.reg.handle_timeout(at(30));
    let Some(Transmit::Publish { topic, .. }) = sim.reg.poll_transmit() else {
        panic!()
    };
    assert!(topic.starts_with("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&"));
}

#[test]
fn missing_suback_reconnects() {
    let mut reg = Registration::new(
        RegistrationConfig::new("d").timing(fast_timing().max_jitter(Duration::ZERO)),
        at(0),
        1,
    );
    assert_eq!(
        reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
    reg.connected(at(0));
    assert!(matches!(
        reg.poll_transmit(),
        Some(Transmit::Subscribe { .. })
    ));
    assert_eq!(reg.poll_timeout(), Some(at(10)));
    reg.handle_timeout(at(10));
    assert_eq!(reg.poll_transmit(), Some(Transmit::Disconnect));
    assert_eq!(reg.poll_timeout(), Some(at(11)));
    reg.handle_timeout(at(11));
    assert_eq!(
        reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
}

#[test]
fn silence_ends_in_a_timeout() {
    let timing = fast_timing().deadline(secs(60)).max_jitter(Duration::ZERO);
    let (sim, outcome) = Sim::new(timing).run(|_, _| vec![], always_connect);
    assert_eq!(
        outcome.unwrap_err(),
        RegistrationError::Timeout {
            last_problem: Some(RetryReason::RequestTimeout)
        }
    );
    // Sent at 0; timed out at 10 → retry at 11; timed out at 21 → retry at 23; timed out at 33 →
    // retry at 37; timed out at 47 → the next slot (55) is before the deadline, at 65 it is not.
    assert_eq!(sim.request_times(), [at(0), at(11), at(23), at(37), at(55)]);
    assert!(sim.events.last().unwrap().0 <= at(60));
}

#[test]
fn spurious_calls_are_harmless() {
    let mut reg = Registration::new(RegistrationConfig::new("d"), at(0), 1);
    // Reports that do not match the state are ignored.
    reg.subscribed(at(0));
    reg.handle_timeout(at(0));
    assert_eq!(
        reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
    assert_eq!(reg.poll_transmit(), None);
    reg.connected(at(0));
    reg.connected(at(0));
    assert!(matches!(
        reg.poll_transmit(),
        Some(Transmit::Subscribe { .. })
    ));
    assert_eq!(reg.poll_transmit(), None);
}

#[test]
fn same_seed_same_timeline() {
    let run = |seed| {
        let sim = Sim::with_config(RegistrationConfig::new("dev-1").timing(fast_timing()), seed);
        let (sim, _) = sim.run(
            |_, i| vec![if i < 5 { error(503, None) } else { assigned() }],
            always_connect,
        );
        sim.request_times()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8), "different seeds spread a fleet's retries");
}

#[test]
fn payload_and_csr_are_sent() {
    let config = RegistrationConfig::new("dev-1")
        .payload_json(r#"{"modelId":"dtmi:x;1"}"#)
        .unwrap()
        .csr("MIIB")
        .timing(fast_timing());
    let (sim, _) = Sim::with_config(config, 1).run(|_, _| vec![assigned()], always_connect);
    assert_eq!(
        sim.requests[0].payload,
        br#"{"registrationId":"dev-1","payload":{"modelId":"dtmi:x;1"},"csr":"MIIB"}"#
    );
}

// ---- arbitrary input --------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Input {
    Connected,
    ConnectFailed(u8),
    Subscribed,
    Disconnected,
    Publish(String, Vec<u8>),
    Respond(u16, Option<u32>, u8),
    Advance(u64),
}

fn input() -> impl proptest::strategy::Strategy<Value = Input> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Input::Connected),
        any::<u8>().prop_map(Input::ConnectFailed),
        Just(Input::Subscribed),
        Just(Input::Disconnected),
        (".{0,60}", proptest::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(t, p)| Input::Publish(t, p)),
        (100u16..600, proptest::option::of(0u32..100), 0u8..6)
            .prop_map(|(s, r, b)| Input::Respond(s, r, b)),
        (0u64..120_000).prop_map(Input::Advance),
    ]
}

proptest::proptest! {
    #[test]
    fn arbitrary_inputs_never_panic_and_time_moves_forward(inputs in proptest::collection::vec(input(), 0..60), seed: u64) {
        let timing = Timing::default().deadline(secs(120));
        let mut reg = Registration::new(RegistrationConfig::new("d").timing(timing), at(0), seed);
        let mut now = at(0);
        let bodies = [
            format!(r#"{{"operationId":"{OPID}","status":"assigning"}}"#),
            assigned_body(),
            r#"{"errorCode":429001}"#.to_string(),
            "not json".to_string(),
            r#"{"operationId":"","status":"disabled"}"#.to_string(),
            r#"{"operationId":"x","status":"assigned"}"#.to_string(),
        ];
        let mut last_rid = 0u64;
        for input in inputs {
            match input {
                Input::Connected => reg.connected(now),
                Input::ConnectFailed(code) => reg.handle_connect_failed(now, if code == 0 { ConnectFailure::Network } else { ConnectFailure::Refused { code } }),
                Input::Subscribed => reg.subscribed(now),
                Input::Disconnected => reg.disconnected(now),
                Input::Publish(topic, payload) => reg.publish(now, &topic, &payload),
                Input::Respond(status, retry_after, body) => {
                    let topic = ResponseTopic { status, rid: &last_rid.to_string(), retry_after }.to_string();
                    reg.publish(now, &topic, bodies[usize::from(body)].as_bytes());
                }
                Input::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    reg.handle_timeout(now);
                }
            }
            while let Some(t) = reg.poll_transmit() {
                if let Transmit::Publish { topic, .. } = t {
                    let q = topic.split_once('?').unwrap().1;
                    last_rid = Params::new(q).get("$rid").flatten().unwrap().parse().unwrap();
                }
            }
            while reg.poll_event().is_some() {}
            if let Some(t) = reg.poll_timeout() {
                proptest::prop_assert!(t <= at(120), "nothing is scheduled past the deadline");
            } else {
                proptest::prop_assert!(reg.is_finished());
            }
        }
        // However it went, the deadline ends it.
        reg.handle_timeout(at(121));
        proptest::prop_assert!(reg.is_finished());
        proptest::prop_assert_eq!(reg.poll_timeout(), None);
    }
}

fn assigned_body() -> String {
    format!(
        r#"{{"operationId":"{OPID}","status":"assigned","registrationState":{{"assignedHub":"{HUB}","deviceId":"d"}}}}"#
    )
}

// ---- the shared contract ---------------------------------------------------------------------

#[test]
fn responses_are_acknowledged_at_once_and_the_outcome_is_the_last_event() {
    let config = RegistrationConfig::new("dev-1").timing(fast_timing());
    let mut h = Harness::new(Registration::new(config, Timestamp::ZERO, 1));
    h.connect(false, None);
    assert_eq!(h.take_subscribe().unwrap(), ["$dps/registrations/res/#"]);
    h.subscribed(true);
    let (id, topic, _) = h.take_publishes().pop().expect("the register request");
    h.ack(id);
    let rid = topic.split("$rid=").nth(1).unwrap().to_owned();
    let packet_id = h.message(
        &format!("$dps/registrations/res/202/?$rid={rid}&retry-after=2"),
        format!(r#"{{"operationId":"{OPID}","status":"assigning"}}"#).as_bytes(),
    );
    assert_eq!(h.take_acks(), [packet_id]);
    assert_eq!(h.step(), secs(2));
    let (_, topic, _) = h.take_publishes().pop().expect("the poll");
    let rid = topic
        .split("$rid=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let body = match assigned() {
        Reply::Answer { body, .. } => body,
        _ => unreachable!(),
    };
    let packet_id = h.message(
        &format!("$dps/registrations/res/200/?$rid={rid}"),
        body.as_bytes(),
    );
    assert_eq!(h.take_acks(), [packet_id]);
    assert!(matches!(h.events.last(), Some(Event::Finished(Ok(a))) if a.assigned_hub() == HUB));
    assert!(h.machine.is_finished());
    assert_eq!(h.machine.poll_timeout(), None);
    assert_eq!(h.take_transmits(), [Transmit::Disconnect]);
}

#[test]
fn a_refused_subscription_reconnects_and_an_unrecoverable_failure_ends_it() {
    let config = RegistrationConfig::new("d").timing(fast_timing().max_jitter(Duration::ZERO));
    let mut reg = Registration::new(config, at(0), 1);
    assert_eq!(
        reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
    reg.handle_connected(at(0), Connected::new(false, None, 0));
    assert!(matches!(
        reg.poll_transmit(),
        Some(Transmit::Subscribe { .. })
    ));
    reg.handle_subscribed(at(0), false);
    assert_eq!(reg.poll_transmit(), Some(Transmit::Disconnect));
    assert!(matches!(
        reg.poll_event(),
        Some(Event::Retrying {
            reason: RetryReason::SubscribeRefused,
            ..
        })
    ));
    assert_eq!(reg.poll_timeout(), Some(at(1)));
    reg.handle_timeout(at(1));
    assert_eq!(
        reg.poll_transmit(),
        Some(Transmit::Connect {
            clean_session: true
        })
    );
    reg.handle_connect_failed(at(1), ConnectFailure::Unrecoverable);
    assert_eq!(
        reg.poll_event(),
        Some(Event::Finished(Err(RegistrationError::Unrecoverable)))
    );
    // Time never goes backwards: an earlier `now` changes nothing.
    reg.handle_publish(at(0), IncomingPublish::new("x", "y", None));
    assert_eq!(reg.poll_timeout(), None);
}
