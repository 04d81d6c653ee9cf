//! Deterministic scenarios for telemetry across the device lifecycle's sessions: queued while
//! provisioning, carried to the next hub, abandoned only by a stop.

mod device_world;
mod harness;

use device_world::*;

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
