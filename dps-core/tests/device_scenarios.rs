//! Deterministic scenarios for the device lifecycle's re-provisioning rules: assertions on every
//! DPS request and hub connect, and when (the world is in `device_world`).

mod device_world;
mod harness;

use device_world::*;

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
