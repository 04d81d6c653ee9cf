//! Deterministic scenarios for the hub session core: a virtual clock, a scripted hub, and
//! assertions on exactly what goes out and what the application hears.

use std::collections::BTreeMap;
use std::time::Duration;

mod harness;

use dps_core::Timestamp;
use dps_core::hub::{
    Backoff, ConnectionState, DisconnectReason, Event, Features, Heartbeat, HubSession,
    IgnoreReason, Message, MessageId, Renewal, SendError, SessionConfig, StopReason, TwinError,
};
use dps_core::mqtt::{
    ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine as _, PublishId, Transmit,
};
use serde_json::json;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

type Harness = harness::Harness<HubSession>;

/// What the hub scenarios add to the shared harness.
trait HubHarness {
    fn hub(config: SessionConfig) -> Self;
    fn with_seed(config: SessionConfig, seed: u64) -> Self;
    fn connect_up(&mut self, session_present: bool, token_lifetime: Option<u64>);
    fn send(&mut self, message: Message) -> Result<MessageId, SendError>;
    fn states(&self) -> Vec<ConnectionState>;
    fn answer_twin_get(&mut self, body: &serde_json::Value);
}

impl HubHarness for Harness {
    fn hub(config: SessionConfig) -> Self {
        Self::with_seed(config, 7)
    }

    fn with_seed(config: SessionConfig, seed: u64) -> Self {
        Self::new(HubSession::new(config, Timestamp::ZERO, seed))
    }

    /// Connects and, if asked to, grants the subscription.
    fn connect_up(&mut self, session_present: bool, token_lifetime: Option<u64>) {
        self.connect(session_present, token_lifetime);
        if self.take_subscribe().is_some() {
            self.subscribed(true);
        }
        assert!(self.machine.is_connected());
    }

    fn send(&mut self, message: Message) -> Result<MessageId, SendError> {
        let r = self.machine.send_telemetry(self.now, message);
        self.drain();
        r
    }

    fn states(&self) -> Vec<ConnectionState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ConnectionState(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// Answers the pending twin GET (`$iothub/twin/GET/?$rid=N`) with `body`.
    fn answer_twin_get(&mut self, body: &serde_json::Value) {
        let publishes = self.take_publishes();
        let (id, topic, _) = publishes
            .iter()
            .find(|(_, t, _)| t.starts_with("$iothub/twin/GET/"))
            .expect("a twin GET")
            .clone();
        for (other, _, _) in publishes.iter().filter(|(i, _, _)| *i != id) {
            self.ack(*other);
        }
        self.ack(id);
        let rid = topic.split("$rid=").nth(1).unwrap().to_owned();
        self.message(
            &format!("$iothub/twin/res/200/?$rid={rid}"),
            body.to_string().as_bytes(),
        );
    }
}

fn telemetry_only(device: &str) -> SessionConfig {
    SessionConfig::device(device).features(Features::NONE)
}

fn acked(events: &[Event]) -> Vec<MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TelemetryAcked { id } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn first_connect_subscribes_every_feature_in_one_subscribe() {
    let mut h = Harness::hub(SessionConfig::device("dev-1"));
    assert_eq!(
        h.take_transmits(),
        vec![Transmit::Connect {
            clean_session: false
        }]
    );
    h.transmits.push(Transmit::Connect {
        clean_session: false,
    });
    h.connect(true, None); // even with a session: the first connect always subscribes
    assert_eq!(
        h.take_subscribe().unwrap(),
        vec![
            "devices/dev-1/messages/devicebound/#",
            "$iothub/twin/res/#",
            "$iothub/twin/PATCH/properties/desired/#",
            "$iothub/methods/POST/#",
        ]
    );
    assert!(!h.machine.is_connected());
    h.machine.handle_subscribed(h.now, true);
    h.drain();
    assert_eq!(h.states(), vec![ConnectionState::Connected]);

    let module = Harness::hub(SessionConfig::module("dev-1", "filter"));
    assert_eq!(
        module.machine.subscriptions(),
        [
            "devices/dev-1/modules/filter/inputs/#",
            "$iothub/twin/res/#",
            "$iothub/twin/PATCH/properties/desired/#",
            "$iothub/methods/POST/#",
        ]
    );
    let quiet = Harness::hub(telemetry_only("d"));
    assert!(quiet.machine.subscriptions().is_empty());
}

#[test]
fn resubscribes_only_when_the_session_is_not_present() {
    let mut h = Harness::hub(SessionConfig::device("d").resync_twin(false));
    h.connect(false, None);
    assert!(h.take_subscribe().is_some());
    h.machine.handle_subscribed(h.now, true);
    h.drain();

    // Reconnect with the session kept: no SUBSCRIBE.
    h.disconnect(ConnectionLoss::Network);
    h.step();
    h.connect(true, None);
    assert_eq!(h.take_subscribe(), None);
    assert!(h.machine.is_connected());

    // Reconnect without a session: SUBSCRIBE again, not connected until SUBACK.
    h.disconnect(ConnectionLoss::ClosedByService);
    h.step();
    h.connect(false, None);
    assert!(h.take_subscribe().is_some());
    assert!(!h.machine.is_connected());
    h.machine.handle_subscribed(h.now, true);
    h.drain();
    assert!(h.machine.is_connected());
}

#[test]
fn subscribe_timeout_drops_the_connection_and_retries() {
    let mut h = Harness::hub(SessionConfig::device("d").subscribe_timeout(secs(10)));
    h.connect(false, None);
    assert!(h.take_subscribe().is_some());
    assert_eq!(h.step(), secs(10));
    assert_eq!(h.take_transmits(), vec![Transmit::Disconnect]);
    assert!(matches!(
        h.states().last(),
        Some(ConnectionState::Disconnected {
            reason: DisconnectReason::SubscribeFailed,
            attempt: 1,
            ..
        })
    ));
    h.step();
    assert_eq!(
        h.take_transmits(),
        vec![Transmit::Connect {
            clean_session: false
        }]
    );
}

#[test]
fn twin_is_read_again_after_every_connect_and_the_gap_reported() {
    let mut h = Harness::hub(SessionConfig::device("d"));
    h.connect_up(false, None);
    h.answer_twin_get(&json!({"desired": {"fan": 1, "$version": 3}, "reported": {"$version": 1}}));
    let resync = h.take_events().into_iter().find_map(|e| match e {
        Event::TwinResync { twin, missed } => Some((twin, missed)),
        _ => None,
    });
    let (twin, missed) = resync.expect("a resync");
    assert_eq!((twin.desired_version(), missed), (Some(3), None));

    // The twin response was consumed by the session and acknowledged at once.
    assert_eq!(h.take_acks().len(), 1);
    let packet_id = h.message(
        "$iothub/twin/PATCH/properties/desired/?$version=4",
        br#"{"fan": 2, "$version": 4}"#,
    );
    let events = h.take_events();
    let [
        Event::DesiredPatch {
            version: 4,
            body,
            delivery: Some(delivery),
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*body, json!({"fan": 2, "$version": 4}));
    // Acknowledged only once the application accepts it.
    assert_eq!(delivery.packet_id(), packet_id);
    assert!(h.take_acks().is_empty());
    h.machine.accept(h.now, *delivery);
    h.drain();
    assert_eq!(h.take_acks(), [packet_id]);

    // Offline while the operator changes the twin three times.
    h.disconnect(ConnectionLoss::Network);
    h.step();
    h.connect(true, None);
    h.answer_twin_get(&json!({"desired": {"fan": 5, "$version": 7}, "reported": {"$version": 1}}));
    let missed = h.take_events().into_iter().find_map(|e| match e {
        Event::TwinResync { missed, .. } => missed,
        _ => None,
    });
    assert_eq!(missed, Some(3));

    // Reconnect with nothing missed.
    h.disconnect(ConnectionLoss::Network);
    h.step();
    h.connect(true, None);
    h.answer_twin_get(&json!({"desired": {"$version": 7}, "reported": {}}));
    assert!(h.take_events().contains(&Event::TwinResync {
        twin: dps_core::hub::Twin {
            desired: json!({"$version": 7}),
            reported: json!({})
        },
        missed: Some(0)
    }));
}

#[test]
fn a_failed_resync_is_retried_with_backoff() {
    let mut h = Harness::hub(SessionConfig::device("d"));
    h.connect_up(false, None);
    let (id, topic, _) = h.take_publishes().remove(0);
    h.ack(id);
    let rid = topic.split("$rid=").nth(1).unwrap().to_owned();
    h.message(&format!("$iothub/twin/res/429/?$rid={rid}"), b"");
    assert!(h.take_publishes().is_empty());
    let waited = h.step();
    assert!(waited >= secs(1) && waited <= secs(2), "{waited:?}");
    let retry = h.take_publishes();
    assert_eq!(retry.len(), 1);
    assert!(retry[0].1.starts_with("$iothub/twin/GET/?$rid="));
}

#[test]
fn in_flight_window_is_bounded() {
    let mut h = Harness::hub(telemetry_only("d"));
    for i in 0..40 {
        h.send(Message::new(format!("m{i}"))).unwrap();
    }
    assert!(
        h.take_publishes().is_empty(),
        "nothing goes out before CONNACK"
    );
    h.connect_up(false, None);
    let first = h.take_publishes();
    assert_eq!(first.len(), 16);
    assert_eq!(&first[0].2[..], b"m0");
    h.ack(first[3].0);
    let next = h.take_publishes();
    assert_eq!(next.len(), 1);
    assert_eq!(&next[0].2[..], b"m16");
    assert_eq!(h.machine.telemetry_in_flight(), 16);

    let mut small = Harness::hub(telemetry_only("d").max_in_flight(2));
    small.connect_up(false, None);
    for _ in 0..5 {
        small.send(Message::new("x")).unwrap();
    }
    assert_eq!(small.take_publishes().len(), 2);
}

#[test]
fn messages_in_flight_at_a_drop_are_sent_again_and_none_is_lost() {
    let mut h = Harness::hub(telemetry_only("d"));
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            h.send(Message::new(format!("{i}")).message_id(format!("{i}")))
                .unwrap(),
        );
    }
    let mut delivered: BTreeMap<String, u32> = BTreeMap::new();
    let mut rounds = 0;
    while acked(&h.events).len() < 100 {
        rounds += 1;
        assert!(rounds < 100, "no progress");
        if !h.transmits.contains(&Transmit::Connect {
            clean_session: false,
        }) {
            h.step();
        }
        h.connect_up(false, None);
        // Ack half of what is in flight, then lose the connection.
        for _ in 0..3 {
            let publishes = h.take_publishes();
            for (n, (id, topic, payload)) in publishes.iter().enumerate() {
                *delivered
                    .entry(String::from_utf8(payload.to_vec()).unwrap())
                    .or_default() += 1;
                assert!(topic.starts_with("devices/d/messages/events/%24.mid="));
                if n % 2 == 0 {
                    h.ack(*id);
                }
            }
        }
        let leftovers = h.take_publishes();
        for (_, _, payload) in &leftovers {
            *delivered
                .entry(String::from_utf8(payload.to_vec()).unwrap())
                .or_default() += 1;
        }
        h.disconnect(ConnectionLoss::Network);
    }
    let mut got = acked(&h.events);
    got.sort();
    assert_eq!(got, ids, "each message acknowledged exactly once");
    assert_eq!(delivered.len(), 100, "every message reached the hub");
    assert!(delivered.values().any(|n| *n > 1), "some went twice");
    assert_eq!(h.machine.pending_telemetry(), 0);
}

#[test]
fn a_full_queue_refuses_at_once() {
    let mut h = Harness::hub(telemetry_only("d").queue_capacity(5).max_in_flight(2));
    for _ in 0..5 {
        h.send(Message::new("x")).unwrap();
    }
    assert_eq!(
        h.send(Message::new("y")),
        Err(SendError::QueueFull { capacity: 5 })
    );
    // In flight counts too: connecting does not make room, acknowledgements do.
    h.connect_up(false, None);
    let publishes = h.take_publishes();
    assert_eq!(publishes.len(), 2);
    assert!(matches!(
        h.send(Message::new("y")),
        Err(SendError::QueueFull { .. })
    ));
    h.ack(publishes[0].0);
    assert!(h.send(Message::new("y")).is_ok());
}

#[test]
fn queued_messages_expire_with_an_event() {
    let mut h = Harness::hub(telemetry_only("d").default_ttl(Some(secs(60))));
    let short = h.send(Message::new("a").expires_in(secs(10))).unwrap();
    let long = h.send(Message::new("b")).unwrap();
    // The hub is unreachable.
    h.take_transmits();
    h.machine
        .handle_connect_failed(h.now, ConnectFailure::Network);
    h.drain();
    h.advance(secs(10));
    assert!(h.events.contains(&Event::TelemetryExpired { id: short }));
    assert!(!h.events.contains(&Event::TelemetryExpired { id: long }));
    h.now = Timestamp::from_duration(secs(60));
    h.machine.handle_timeout(h.now);
    h.drain();
    assert!(h.events.contains(&Event::TelemetryExpired { id: long }));
    assert_eq!(h.machine.pending_telemetry(), 0);
}

#[test]
fn renewal_happens_at_70_to_80_percent_spread_across_seeds() {
    let mut at = Vec::new();
    for seed in 0..200 {
        let mut h = Harness::with_seed(telemetry_only("d"), seed);
        h.connect_up(false, Some(3600));
        let due = h.machine.poll_timeout().unwrap().as_duration();
        assert!(due >= secs(2520) && due <= secs(2880), "{due:?}");
        at.push(due);
    }
    at.sort();
    at.dedup();
    assert!(at.len() > 150, "renewals spread: {} distinct", at.len());
    assert!(at[at.len() - 1] - at[0] > secs(300));

    let fixed = Renewal::default().jitter_percent(0);
    let mut h = Harness::hub(telemetry_only("d").renewal(fixed));
    h.connect_up(false, Some(100));
    assert_eq!(
        h.machine.poll_timeout(),
        Some(Timestamp::from_duration(secs(80)))
    );
}

#[test]
fn renewal_drains_the_window_then_reconnects_with_a_fresh_token() {
    let fixed = Renewal::default().jitter_percent(0);
    let mut h = Harness::hub(telemetry_only("d").renewal(fixed).ack_timeout(secs(600)));
    h.connect_up(false, Some(100));
    let a = h.send(Message::new("a")).unwrap();
    let in_flight = h.take_publishes();
    h.advance(secs(80));
    // Renewal due: no new publish goes out while the window drains.
    let b = h.send(Message::new("b")).unwrap();
    assert!(h.take_publishes().is_empty());
    assert!(h.take_transmits().is_empty());
    h.ack(in_flight[0].0);
    assert_eq!(
        h.take_transmits(),
        vec![
            Transmit::Disconnect,
            Transmit::Connect {
                clean_session: false
            }
        ]
    );
    assert!(
        h.events
            .contains(&Event::ConnectionState(ConnectionState::Disconnected {
                reason: DisconnectReason::TokenRenewal,
                retry_in: Duration::ZERO,
                attempt: 0
            }))
    );
    h.transmits.push(Transmit::Connect {
        clean_session: false,
    });
    h.connect_up(true, Some(100));
    let after = h.take_publishes();
    assert_eq!(after.len(), 1);
    assert_eq!(&after[0].2[..], b"b");
    h.ack(after[0].0);
    assert_eq!(acked(&h.events), vec![a, b]);
    // The next renewal is measured from the new connect.
    assert_eq!(
        h.machine.poll_timeout(),
        Some(Timestamp::from_duration(secs(160)))
    );
}

#[test]
fn renewal_drain_is_bounded() {
    let fixed = Renewal::default().jitter_percent(0);
    let mut h = Harness::hub(
        telemetry_only("d")
            .renewal(fixed)
            .drain_timeout(secs(5))
            .ack_timeout(secs(600)),
    );
    h.connect_up(false, Some(100));
    h.send(Message::new("a")).unwrap();
    let first = h.take_publishes();
    h.advance(secs(80));
    assert!(h.take_transmits().is_empty());
    assert_eq!(h.step(), secs(5));
    assert_eq!(
        h.take_transmits(),
        vec![
            Transmit::Disconnect,
            Transmit::Connect {
                clean_session: false
            }
        ]
    );
    h.transmits.push(Transmit::Connect {
        clean_session: false,
    });
    h.connect_up(true, Some(100));
    // The unacknowledged message goes again.
    let again = h.take_publishes();
    assert_eq!(again[0].2, first[0].2);
}

#[test]
fn a_drop_after_the_token_expired_is_reported_as_such() {
    let mut h = Harness::hub(telemetry_only("d"));
    h.connect_up(false, Some(100));
    // The device slept through its renewal; the hub closed the connection at expiry.
    h.now += secs(101);
    h.disconnect(ConnectionLoss::ClosedByService);
    assert!(matches!(
        h.states().last(),
        Some(ConnectionState::Disconnected {
            reason: DisconnectReason::TokenExpired,
            ..
        })
    ));
}

#[test]
fn backoff_grows_with_jitter_and_credentials_refusals_stop() {
    let mut h = Harness::hub(telemetry_only("d"));
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(
            h.take_transmits(),
            vec![Transmit::Connect {
                clean_session: false
            }]
        );
        h.machine
            .handle_connect_failed(h.now, ConnectFailure::Network);
        h.drain();
        waits.push(h.step());
    }
    let bounds = [1, 2, 4, 8, 16, 32, 60, 60];
    for (wait, base) in waits.iter().zip(bounds) {
        let base = secs(base);
        assert!(
            *wait >= base && *wait <= base + base / 4 + secs(1),
            "{wait:?} vs {base:?}"
        );
    }
    // Server unavailable (3) is retried.
    h.take_transmits();
    h.machine
        .handle_connect_failed(h.now, ConnectFailure::Refused { code: 3 });
    h.drain();
    assert!(matches!(
        h.states().last(),
        Some(ConnectionState::Disconnected {
            reason: DisconnectReason::Refused { code: 3 },
            attempt: 9,
            ..
        })
    ));
    h.step();
    // Not authorized (5: bad key, disabled device) stops for good.
    assert_eq!(
        h.take_transmits(),
        vec![Transmit::Connect {
            clean_session: false
        }]
    );
    let id = h.send(Message::new("lost")).unwrap();
    h.machine
        .handle_connect_failed(h.now, ConnectFailure::Refused { code: 5 });
    h.drain();
    assert_eq!(
        h.states().last(),
        Some(&ConnectionState::Stopped(StopReason::Refused { code: 5 }))
    );
    assert!(h.events.contains(&Event::TelemetryAbandoned { id }));
    assert_eq!(h.machine.poll_timeout(), None);
    assert!(h.take_transmits().is_empty());
    assert_eq!(h.send(Message::new("x")), Err(SendError::Closed));
}

#[test]
fn retries_can_be_capped() {
    let backoff = Backoff::default().max_attempts(Some(3));
    let mut h = Harness::hub(telemetry_only("d").backoff(backoff));
    for _ in 0..2 {
        h.take_transmits();
        h.machine
            .handle_connect_failed(h.now, ConnectFailure::Network);
        h.drain();
        h.step();
    }
    h.take_transmits();
    h.machine
        .handle_connect_failed(h.now, ConnectFailure::Network);
    h.drain();
    assert_eq!(
        h.states().last(),
        Some(&ConnectionState::Stopped(StopReason::RetriesExhausted {
            last: DisconnectReason::Network
        }))
    );
}

#[test]
fn a_connection_that_lasted_resets_the_backoff_but_a_flapping_one_does_not() {
    let mut h = Harness::hub(telemetry_only("d"));
    let mut attempts = Vec::new();
    for _ in 0..4 {
        h.connect_up(false, None);
        h.now += secs(1); // accepted, then dropped at once
        h.disconnect(ConnectionLoss::ClosedByService);
        if let Some(ConnectionState::Disconnected { attempt, .. }) = h.states().last() {
            attempts.push(*attempt);
        }
        h.step();
    }
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    h.connect_up(false, None);
    h.now += secs(120);
    h.disconnect(ConnectionLoss::Network);
    assert!(matches!(
        h.states().last(),
        Some(ConnectionState::Disconnected { attempt: 1, .. })
    ));
}

#[test]
fn a_missing_puback_replaces_the_connection() {
    let mut h = Harness::hub(telemetry_only("d").ack_timeout(secs(30)));
    h.connect_up(false, None);
    h.send(Message::new("a")).unwrap();
    let first = h.take_publishes();
    assert_eq!(h.step(), secs(30));
    assert_eq!(h.take_transmits(), vec![Transmit::Disconnect]);
    assert!(matches!(
        h.states().last(),
        Some(ConnectionState::Disconnected {
            reason: DisconnectReason::AckTimeout,
            ..
        })
    ));
    h.step();
    h.connect_up(false, None);
    assert_eq!(h.take_publishes()[0].2, first[0].2);
}

#[test]
fn a_failed_publish_is_queued_again_and_the_connection_replaced() {
    let mut h = Harness::hub(telemetry_only("d"));
    h.connect_up(false, None);
    let id = h.send(Message::new("a")).unwrap();
    let publishes = h.take_publishes();
    h.machine.handle_publish_failed(h.now, publishes[0].0);
    h.drain();
    assert_eq!(h.take_transmits(), vec![Transmit::Disconnect]);
    // A late report for the same publish changes nothing.
    h.machine.handle_publish_failed(h.now, publishes[0].0);
    h.machine.handle_puback(h.now, publishes[0].0);
    h.drain();
    assert!(acked(&h.events).is_empty());
    h.step();
    h.connect_up(false, None);
    let again = h.take_publishes();
    h.ack(again[0].0);
    assert_eq!(acked(&h.events), vec![id]);
}

#[test]
fn method_requests_and_responses() {
    let mut h = Harness::hub(SessionConfig::device("d").resync_twin(false));
    h.connect_up(false, None);
    h.take_events();
    h.message(
        "$iothub/methods/POST/thermostat1*getMaxMinReport/?$rid=1f",
        br#"{"since":"2024-01-01T00:00:00Z"}"#,
    );
    let request = match h.take_events().remove(0) {
        Event::MethodRequest { request: r, .. } => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(request.name, "thermostat1*getMaxMinReport");
    assert_eq!(request.component.as_deref(), Some("thermostat1"));
    assert_eq!(request.command, "getMaxMinReport");
    assert_eq!(request.rid, "1f");
    assert_eq!(&request.payload[..], br#"{"since":"2024-01-01T00:00:00Z"}"#);

    let response = h
        .machine
        .respond_method(h.now, &request.rid, 200, r#"{"max":30}"#)
        .unwrap();
    h.drain();
    let publishes = h.take_publishes();
    assert_eq!(publishes[0].1, "$iothub/methods/res/200/?$rid=1f");
    assert_eq!(&publishes[0].2[..], br#"{"max":30}"#);
    h.ack(publishes[0].0);
    assert_eq!(
        h.take_events(),
        vec![Event::MethodResponded {
            request: response,
            result: Ok(())
        }]
    );

    h.message("$iothub/methods/POST/reboot/?$rid=2", b"");
    assert!(
        matches!(&h.take_events()[0], Event::MethodRequest { request: r, .. } if r.component.is_none() && r.command == "reboot")
    );
}

#[test]
fn a_method_response_interrupted_by_a_drop_is_sent_after_reconnect() {
    let mut h = Harness::hub(SessionConfig::device("d").resync_twin(false));
    h.connect_up(false, None);
    let response = h.machine.respond_method(h.now, "7", 500, "{}").unwrap();
    h.drain();
    assert_eq!(h.take_publishes().len(), 1);
    h.disconnect(ConnectionLoss::Network);
    // Answered while offline: it waits too.
    let second = h.machine.respond_method(h.now, "8", 200, "{}").unwrap();
    h.drain();
    assert!(h.take_publishes().is_empty());
    h.step();
    h.connect_up(true, None);
    let publishes = h.take_publishes();
    let topics: Vec<_> = publishes.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(
        topics,
        [
            "$iothub/methods/res/500/?$rid=7",
            "$iothub/methods/res/200/?$rid=8"
        ]
    );
    for p in &publishes {
        h.ack(p.0);
    }
    for request in [response, second] {
        assert!(h.events.contains(&Event::MethodResponded {
            request,
            result: Ok(())
        }));
    }
}

#[test]
fn c2d_messages_arrive_with_decoded_properties() {
    let mut h = Harness::hub(SessionConfig::device("dev 1").resync_twin(false));
    h.connect_up(false, None);
    h.take_events();
    h.message(
        "devices/dev 1/messages/devicebound/%24.mid=m-1&%24.to=%2Fdevices%2Fdev%201%2Fmessages%2FdeviceBound\
         &$.cid=c&%24.ct=application%2Fjson&iothub-ack=full&color=dark%20blue&flag",
        b"{\"on\":true}",
    );
    let message = match h.take_events().remove(0) {
        Event::C2d { message: m, .. } => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(message.message_id(), Some("m-1"));
    assert_eq!(message.to(), Some("/devices/dev 1/messages/deviceBound"));
    assert_eq!(message.correlation_id(), Some("c"));
    assert_eq!(message.content_type(), Some("application/json"));
    assert_eq!(message.ack(), Some("full"));
    assert_eq!(message.property("color"), Some("dark blue"));
    assert_eq!(
        message.properties().collect::<Vec<_>>(),
        [
            ("iothub-ack", Some("full")),
            ("color", Some("dark blue")),
            ("flag", None)
        ]
    );
    assert_eq!(message.payload_str(), Some("{\"on\":true}"));

    h.message("devices/other/messages/devicebound/", b"");
    assert!(matches!(
        &h.take_events()[0],
        Event::Ignored {
            reason: IgnoreReason::OtherIdentity,
            ..
        }
    ));
    h.message("devices/dev 1/something/else", b"");
    assert!(matches!(
        &h.take_events()[0],
        Event::Ignored {
            reason: IgnoreReason::UnknownTopic,
            ..
        }
    ));
}

#[test]
fn module_inputs_and_outputs() {
    let mut h = Harness::hub(
        SessionConfig::module("edge-1", "filter")
            .features(Features::ALL.twin(false).methods(false)),
    );
    h.connect_up(false, None);
    h.take_events();
    h.message(
        "devices/edge-1/modules/filter/inputs/input1/%24.mid=1&%24.on=out&t=hot",
        b"42",
    );
    match h.take_events().remove(0) {
        Event::Input { message: m, .. } => {
            assert_eq!(m.input_name(), Some("input1"));
            assert_eq!(m.message_id(), Some("1"));
            assert_eq!(m.property("t"), Some("hot"));
        }
        other => panic!("{other:?}"),
    }
    h.message("devices/edge-1/modules/other/inputs/input1/", b"");
    assert!(matches!(
        &h.take_events()[0],
        Event::Ignored {
            reason: IgnoreReason::OtherIdentity,
            ..
        }
    ));
    h.send(Message::new("x").output("alerts")).unwrap();
    assert_eq!(
        h.take_publishes()[0].1,
        "devices/edge-1/modules/filter/messages/events/%24.on=alerts"
    );
}

#[test]
fn telemetry_topic_carries_system_and_application_properties() {
    let mut h = Harness::hub(telemetry_only("d"));
    h.connect_up(false, None);
    h.send(
        Message::json(&json!({"t": 21}))
            .unwrap()
            .message_id("m1")
            .correlation_id("c1")
            .user_id("u")
            .creation_time("2024-01-01T00:00:00Z")
            .component("thermostat1")
            .property("alert", "a&b"),
    )
    .unwrap();
    let (_, topic, payload) = h.take_publishes().remove(0);
    assert_eq!(
        topic,
        "devices/d/messages/events/%24.mid=m1&%24.cid=c1&%24.uid=u&%24.ct=application%2Fjson\
         &%24.ce=utf-8&%24.ctime=2024-01-01T00%3A00%3A00Z&%24.sub=thermostat1&alert=a%26b"
    );
    assert_eq!(&payload[..], br#"{"t":21}"#);
}

#[test]
fn the_256_kib_limit_is_checked_before_queueing() {
    let mut h = Harness::hub(telemetry_only("d"));
    let limit = 262_144;
    assert!(h.send(Message::new(vec![0u8; limit])).is_ok());
    assert_eq!(
        h.send(Message::new(vec![0u8; limit + 1])),
        Err(SendError::TooLarge {
            size: limit + 1,
            limit
        })
    );
    // Properties count.
    assert!(matches!(
        h.send(Message::new(vec![0u8; limit - 2]).property("k", "v")),
        Err(SendError::TooLarge { size, .. }) if size == limit + 1
    ));
    assert_eq!(h.machine.pending_telemetry(), 1);
}

#[test]
fn twin_get_patch_errors_and_timeouts() {
    let mut h = Harness::hub(
        SessionConfig::device("d")
            .resync_twin(false)
            .request_timeout(secs(10)),
    );
    h.connect_up(false, None);
    h.take_events();
    let get = h.machine.get_twin(h.now).unwrap();
    let patch = h
        .machine
        .update_reported(h.now, &json!({"fw": "1.2", "old": null}))
        .unwrap();
    let bad = h.machine.update_reported(h.now, &json!({"x": 1})).unwrap();
    let lost = h.machine.get_twin(h.now).unwrap();
    h.drain();
    let publishes = h.take_publishes();
    let topics: Vec<_> = publishes.iter().map(|p| p.1.clone()).collect();
    assert_eq!(
        topics,
        [
            format!("$iothub/twin/GET/?$rid={get}"),
            format!("$iothub/twin/PATCH/properties/reported/?$rid={patch}"),
            format!("$iothub/twin/PATCH/properties/reported/?$rid={bad}"),
            format!("$iothub/twin/GET/?$rid={lost}"),
        ]
    );
    assert_eq!(&publishes[1].2[..], br#"{"fw":"1.2","old":null}"#);
    for p in &publishes {
        h.ack(p.0);
    }
    h.message(
        &format!("$iothub/twin/res/200/?$rid={get}"),
        br#"{"desired":{"$version":2},"reported":{"fw":"1.1","$version":5}}"#,
    );
    h.message(
        &format!("$iothub/twin/res/204/?$rid={patch}&$version=6"),
        b"",
    );
    h.message(&format!("$iothub/twin/res/400/?$rid={bad}"), b"");
    // A duplicate answer is ignored.
    h.message(
        &format!("$iothub/twin/res/204/?$rid={patch}&$version=6"),
        b"",
    );
    let events = h.take_events();
    match &events[0] {
        Event::TwinReceived {
            request,
            result: Ok(twin),
        } => {
            assert_eq!(*request, get);
            assert_eq!(twin.reported_version(), Some(5));
            assert_eq!(twin.desired_version(), Some(2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        events[1..],
        [
            Event::ReportedUpdated {
                request: patch,
                result: Ok(6)
            },
            Event::ReportedUpdated {
                request: bad,
                result: Err(TwinError::Status { status: 400 })
            },
            Event::Ignored {
                topic: format!("$iothub/twin/res/204/?$rid={patch}&$version=6"),
                reason: IgnoreReason::UnknownRequest
            },
        ]
    );
    assert_eq!(h.step(), secs(10));
    assert_eq!(
        h.take_events(),
        vec![Event::TwinReceived {
            request: lost,
            result: Err(TwinError::Timeout)
        }]
    );
    let no_twin =
        HubSession::new(telemetry_only("d"), Timestamp::ZERO, 1).get_twin(Timestamp::ZERO);
    assert_eq!(no_twin, Err(SendError::NotSubscribed));
}

#[test]
fn twin_requests_interrupted_by_a_drop_are_sent_again() {
    let mut h = Harness::hub(SessionConfig::device("d").resync_twin(false));
    h.connect_up(false, None);
    let get = h.machine.get_twin(h.now).unwrap();
    h.drain();
    assert_eq!(h.take_publishes().len(), 1);
    h.disconnect(ConnectionLoss::Network);
    h.step();
    h.connect_up(true, None);
    let again = h.take_publishes();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, format!("$iothub/twin/GET/?$rid={get}"));
}

#[test]
fn close_flushes_the_queue_then_stops() {
    let mut h = Harness::hub(telemetry_only("d").max_in_flight(1));
    h.connect_up(false, None);
    let a = h.send(Message::new("a")).unwrap();
    let b = h.send(Message::new("b")).unwrap();
    h.machine.close(h.now);
    h.drain();
    assert_eq!(h.send(Message::new("c")), Err(SendError::Closed));
    let first = h.take_publishes();
    h.ack(first[0].0);
    let second = h.take_publishes();
    assert_eq!(&second[0].2[..], b"b");
    h.ack(second[0].0);
    assert_eq!(h.take_transmits(), vec![Transmit::Disconnect]);
    assert_eq!(acked(&h.events), vec![a, b]);
    assert_eq!(
        h.states().last(),
        Some(&ConnectionState::Stopped(StopReason::Closed))
    );

    // A close that cannot finish in time abandons the rest.
    let mut h = Harness::hub(telemetry_only("d").drain_timeout(secs(2)));
    h.connect_up(false, None);
    let x = h.send(Message::new("x")).unwrap();
    h.machine.close(h.now);
    h.drain();
    assert_eq!(h.step(), secs(2));
    assert!(h.events.contains(&Event::TelemetryAbandoned { id: x }));

    // Closing while disconnected stops at once.
    let mut h = Harness::hub(telemetry_only("d"));
    let y = h.send(Message::new("y")).unwrap();
    h.machine.close(h.now);
    h.drain();
    assert!(h.transmits.contains(&Transmit::Disconnect));
    assert!(h.events.contains(&Event::TelemetryAbandoned { id: y }));
    assert!(h.machine.is_stopped());
}

#[test]
fn heartbeats_are_periodic_marked_and_silent() {
    let mut h = Harness::hub(telemetry_only("d").heartbeat(Some(Heartbeat::every(secs(60)))));
    h.connect_up(false, None);
    assert!(h.take_publishes().is_empty());
    assert_eq!(h.step(), secs(60));
    let beat = h.take_publishes();
    assert_eq!(beat.len(), 1);
    assert_eq!(beat[0].1, "devices/d/messages/events/heartbeat=true");
    assert!(beat[0].2.is_empty());
    h.ack(beat[0].0);
    assert_eq!(h.step(), secs(60));
    assert_eq!(h.take_publishes().len(), 1);
    assert!(
        h.events
            .iter()
            .all(|e| matches!(e, Event::ConnectionState(_))),
        "{:?}",
        h.events
    );
}

#[test]
fn malformed_and_unknown_twin_answers_are_ignored() {
    let mut h = Harness::hub(SessionConfig::device("d").resync_twin(false));
    h.connect_up(false, None);
    h.take_events();
    h.message("$iothub/twin/res/200", b"{}");
    h.message("$iothub/twin/res/200/?$rid=999", b"{}");
    h.message("$iothub/twin/res/200/?$rid=abc", b"{}");
    h.message(
        "$iothub/twin/PATCH/properties/desired/?$version=3",
        b"not json",
    );
    let reasons: Vec<_> = h
        .take_events()
        .into_iter()
        .map(|e| match e {
            Event::Ignored { reason, .. } => reason,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            IgnoreReason::MalformedTopic,
            IgnoreReason::UnknownRequest,
            IgnoreReason::UnknownRequest,
            IgnoreReason::InvalidBody
        ]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Send(u8),
        Connected(bool, Option<u16>),
        ConnectFailed(u8),
        Subscribed,
        Ack(u8),
        PublishFailed(u8),
        Disconnected(bool),
        Message(String, Vec<u8>),
        Advance(u16),
        GetTwin,
        Patch,
        Respond(String),
        Close,
    }

    fn op() -> impl Strategy<Value = Op> {
        let topic = prop_oneof![
            Just("$iothub/twin/res/200/?$rid=3".to_string()),
            Just("$iothub/twin/res/204/?$rid=4&$version=x".to_string()),
            Just("$iothub/twin/PATCH/properties/desired/?$version=2".to_string()),
            Just("$iothub/methods/POST/a*b/?$rid=1".to_string()),
            Just("devices/d/messages/devicebound/%24.mid=1&k".to_string()),
            "[ -~]{0,40}",
            "(\\$iothub/twin/res/[0-9]{1,5}/\\?\\$rid=[0-9]{1,3}|devices/d/messages/devicebound/[%a-z=&.$0-9]{0,20})",
        ];
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Send),
            2 => (any::<bool>(), proptest::option::of(0u16..7200)).prop_map(|(p, t)| Op::Connected(p, t)),
            1 => (0u8..7).prop_map(Op::ConnectFailed),
            2 => Just(Op::Subscribed),
            4 => any::<u8>().prop_map(Op::Ack),
            1 => any::<u8>().prop_map(Op::PublishFailed),
            1 => any::<bool>().prop_map(Op::Disconnected),
            2 => (topic, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, p)| Op::Message(t, p)),
            3 => any::<u16>().prop_map(Op::Advance),
            1 => Just(Op::GetTwin),
            1 => Just(Op::Patch),
            1 => "[ -~]{0,8}".prop_map(Op::Respond),
            1 => Just(Op::Close),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Arbitrary inputs in any order never panic, and every accepted message ends in
        /// exactly one outcome once the session is closed.
        #[test]
        fn arbitrary_inputs_never_panic_and_account_for_every_message(
            ops in proptest::collection::vec(op(), 0..120),
            seed in any::<u64>(),
        ) {
            let config = SessionConfig::device("d")
                .queue_capacity(20)
                .max_in_flight(4)
                .default_ttl(Some(secs(30)))
                .heartbeat(Some(Heartbeat::every(secs(20))));
            let mut h = Harness::with_seed(config, seed);
            let mut accepted = Vec::new();
            let mut published: Vec<PublishId> = Vec::new();
            for op in ops {
                match op {
                    Op::Send(n) => {
                        let size = usize::from(n) * 1200;
                        if let Ok(id) = h.send(Message::new(vec![1u8; size])) {
                            accepted.push(id);
                        }
                    }
                    Op::Connected(present, token) => {
                        let unix = h.unix();
                        h.machine.handle_connected(h.now, Connected::new(present, token.map(|t| unix + u64::from(t)), unix));
                    }
                    Op::ConnectFailed(code) => {
                        let failure = match code {
                            0 => ConnectFailure::Network,
                            6 => ConnectFailure::Unrecoverable,
                            c => ConnectFailure::Refused { code: c },
                        };
                        h.machine.handle_connect_failed(h.now, failure);
                    }
                    Op::Subscribed => h.machine.handle_subscribed(h.now, true),
                    Op::Ack(i) => {
                        if !published.is_empty() {
                            let id = published[usize::from(i) % published.len()];
                            h.machine.handle_puback(h.now, id);
                        }
                    }
                    Op::PublishFailed(i) => {
                        if !published.is_empty() {
                            let id = published[usize::from(i) % published.len()];
                            h.machine.handle_publish_failed(h.now, id);
                        }
                    }
                    Op::Disconnected(by_service) => h.machine.handle_disconnected(
                        h.now,
                        if by_service { ConnectionLoss::ClosedByService } else { ConnectionLoss::Network },
                    ),
                    Op::Message(topic, payload) => h.machine.handle_publish(h.now, IncomingPublish::new(topic, payload, None)),
                    Op::Advance(ms) => {
                        h.now += Duration::from_millis(u64::from(ms) * 10);
                        h.machine.handle_timeout(h.now);
                    }
                    Op::GetTwin => { let _ = h.machine.get_twin(h.now); }
                    Op::Patch => { let _ = h.machine.update_reported(h.now, &json!({"a": 1})); }
                    Op::Respond(rid) => { let _ = h.machine.respond_method(h.now, &rid, 200, "{}"); }
                    Op::Close => h.machine.close(h.now),
                }
                h.drain();
                published.extend(h.take_publishes().into_iter().map(|p| p.0));
                prop_assert!(h.machine.telemetry_in_flight() <= 4);
                prop_assert!(h.machine.pending_telemetry() <= 20);
                if let Some(t) = h.machine.poll_timeout() {
                    // Timeouts are never in the past after a drive.
                    prop_assert!(t > h.now, "timeout {:?} not after now {:?}", t, h.now);
                }
            }
            // Finish: close, then let time run until the session stops.
            h.machine.close(h.now);
            h.drain();
            for _ in 0..1000 {
                if h.machine.is_stopped() { break; }
                h.now += secs(10);
                h.machine.handle_timeout(h.now);
                h.drain();
            }
            prop_assert!(h.machine.is_stopped());
            let mut outcomes: BTreeMap<MessageId, u32> = BTreeMap::new();
            for e in &h.events {
                match e {
                    Event::TelemetryAcked { id } | Event::TelemetryExpired { id } | Event::TelemetryAbandoned { id } => {
                        *outcomes.entry(*id).or_default() += 1;
                    }
                    _ => {}
                }
            }
            for id in &accepted {
                prop_assert_eq!(outcomes.get(id).copied(), Some(1), "message {}", id);
            }
            prop_assert_eq!(outcomes.len(), accepted.len());
        }
    }
}

#[test]
fn deliveries_are_acknowledged_on_acceptance_and_only_on_their_connection() {
    let mut h = Harness::hub(SessionConfig::device("dev-1").resync_twin(false));
    h.connect_up(false, None);
    h.take_transmits();
    let first = h.message("devices/dev-1/messages/devicebound/a=1", b"one");
    let second = h.message("devices/dev-1/messages/devicebound/a=2", b"two");
    let deliveries: Vec<_> = h
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::C2d { delivery, .. } => delivery,
            _ => None,
        })
        .collect();
    assert_eq!(deliveries.len(), 2);
    assert!(
        h.take_acks().is_empty(),
        "nothing is acknowledged before acceptance"
    );
    h.machine.accept(h.now, deliveries[1]);
    h.drain();
    assert_eq!(h.take_acks(), [second]);
    // The connection drops: the first message's packet id means nothing on the next one.
    h.disconnect(ConnectionLoss::Network);
    h.step();
    h.connect(true, None);
    h.take_transmits();
    h.machine.accept(h.now, deliveries[0]);
    h.drain();
    assert!(
        h.take_acks().is_empty(),
        "{first} belongs to the old connection"
    );
    // Stopping ends with `Stopped`, the last event; nothing follows it.
    h.machine.close(h.now);
    h.drain();
    h.message("devices/dev-1/messages/devicebound/a=3", b"late");
    assert_eq!(h.events.last(), Some(&Event::Stopped(StopReason::Closed)));
    assert!(h.machine.poll_timeout().is_none());
}
