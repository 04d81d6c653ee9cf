//! One virtual-clock harness for both state machines, generic over [`Machine`]: the clock jumps
//! to each `poll_timeout`, and everything a machine emits is recorded for assertions.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use dps_core::Timestamp;
use dps_core::mqtt::{
    Connected, ConnectionLoss, IncomingPublish, Machine, PublishId, QoS, Transmit,
};

/// The Unix time at the harness's origin.
pub const UNIX0: u64 = 1_700_000_000;

/// Short forms of the inputs, at a given instant, for hand-driven tests.
pub trait Inputs: Machine {
    /// CONNACK 0, no session, no expiring credentials.
    fn connected(&mut self, now: Timestamp) {
        self.handle_connected(now, Connected::new(false, None, UNIX0));
    }
    /// SUBACK granting every filter.
    fn subscribed(&mut self, now: Timestamp) {
        self.handle_subscribed(now, true);
    }
    /// A QoS 0 PUBLISH (nothing to acknowledge).
    fn publish(&mut self, now: Timestamp, topic: &str, payload: &[u8]) {
        self.handle_publish(
            now,
            IncomingPublish::new(topic, Bytes::copy_from_slice(payload), None),
        );
    }
    /// The network dropped the connection.
    fn disconnected(&mut self, now: Timestamp) {
        self.handle_disconnected(now, ConnectionLoss::Network);
    }
}

impl<M: Machine> Inputs for M {}

/// A machine, its virtual clock, and everything it produced so far.
pub struct Harness<M: Machine> {
    /// The machine under test.
    pub machine: M,
    /// The virtual clock.
    pub now: Timestamp,
    /// Transmits not yet taken.
    pub transmits: Vec<Transmit>,
    /// Events not yet taken.
    pub events: Vec<M::Event>,
    next_packet_id: u16,
}

impl<M: Machine> Harness<M> {
    /// Wraps `machine`, created at [`Timestamp::ZERO`], and drains it.
    pub fn new(machine: M) -> Self {
        let mut h = Self {
            machine,
            now: Timestamp::ZERO,
            transmits: Vec::new(),
            events: Vec::new(),
            next_packet_id: 0,
        };
        h.drain();
        h
    }

    /// Moves every pending transmit and event into the logs.
    pub fn drain(&mut self) {
        while let Some(t) = self.machine.poll_transmit() {
            self.transmits.push(t);
        }
        while let Some(e) = self.machine.poll_event() {
            self.events.push(e);
        }
    }

    /// The wall clock now.
    pub fn unix(&self) -> u64 {
        UNIX0 + self.now.as_duration().as_secs()
    }

    /// Takes the transmits so far.
    pub fn take_transmits(&mut self) -> Vec<Transmit> {
        std::mem::take(&mut self.transmits)
    }

    /// Takes the events so far.
    pub fn take_events(&mut self) -> Vec<M::Event> {
        std::mem::take(&mut self.events)
    }

    /// Expects exactly one pending `Connect` and answers CONNACK 0.
    pub fn connect(&mut self, session_present: bool, token_lifetime: Option<u64>) {
        let is_connect = |t: &Transmit| matches!(t, Transmit::Connect { .. });
        let connects = self.transmits.iter().filter(|t| is_connect(t)).count();
        assert_eq!(connects, 1, "expected one Connect in {:?}", self.transmits);
        self.transmits.retain(|t| !is_connect(t));
        let expiry = token_lifetime.map(|l| self.unix() + l);
        let connected = Connected::new(session_present, expiry, self.unix());
        self.machine.handle_connected(self.now, connected);
        self.drain();
    }

    /// Takes the pending `Subscribe`, if any.
    pub fn take_subscribe(&mut self) -> Option<Vec<String>> {
        let pos = self
            .transmits
            .iter()
            .position(|t| matches!(t, Transmit::Subscribe { .. }))?;
        match self.transmits.remove(pos) {
            Transmit::Subscribe { filters } => Some(filters),
            _ => unreachable!(),
        }
    }

    /// Answers SUBACK.
    pub fn subscribed(&mut self, granted: bool) {
        self.machine.handle_subscribed(self.now, granted);
        self.drain();
    }

    /// Takes the pending QoS 1 publishes.
    pub fn take_publishes(&mut self) -> Vec<(PublishId, String, Bytes)> {
        let mut out = Vec::new();
        self.transmits.retain(|t| match t {
            Transmit::Publish {
                id,
                topic,
                payload,
                qos,
            } => {
                assert_eq!(*qos, QoS::AtLeastOnce);
                out.push((*id, topic.clone(), payload.clone()));
                false
            }
            _ => true,
        });
        out
    }

    /// Takes the pending acknowledgements (packet ids).
    pub fn take_acks(&mut self) -> Vec<u16> {
        let mut out = Vec::new();
        self.transmits.retain(|t| match t {
            Transmit::Ack { packet_id } => {
                out.push(*packet_id);
                false
            }
            _ => true,
        });
        out
    }

    /// Answers PUBACK for `id`.
    pub fn ack(&mut self, id: PublishId) {
        self.machine.handle_puback(self.now, id);
        self.drain();
    }

    /// A QoS 1 PUBLISH comes in with a fresh packet id; returns the id.
    pub fn message(&mut self, topic: &str, payload: &[u8]) -> u16 {
        self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
        let id = self.next_packet_id;
        self.machine.handle_publish(
            self.now,
            IncomingPublish::new(topic, Bytes::copy_from_slice(payload), Some(id)),
        );
        self.drain();
        id
    }

    /// The connection ends.
    pub fn disconnect(&mut self, loss: ConnectionLoss) {
        self.machine.handle_disconnected(self.now, loss);
        self.drain();
    }

    /// Moves the clock by `by` and reports a timeout.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.machine.handle_timeout(self.now);
        self.drain();
    }

    /// Jumps to the next timeout (which must not be in the past) and reports it; returns the
    /// time waited.
    pub fn step(&mut self) -> Duration {
        let at = self.machine.poll_timeout().expect("a timeout");
        assert!(
            at >= self.now,
            "timeout {at:?} is in the past (now {:?})",
            self.now
        );
        let waited = at.saturating_duration_since(self.now);
        self.now = at;
        self.machine.handle_timeout(self.now);
        self.drain();
        waited
    }
}
