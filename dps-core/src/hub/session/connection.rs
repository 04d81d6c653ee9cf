//! The connection: connect, subscribe, back off, give up; and what a lost connection does to
//! the session.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::config::SessionConfig;
use super::event::{
    ConnectionState, DisconnectReason, Event, MessageId, SendError, StopReason, TwinError,
};
use super::{Control, Sent};
use super::{HubSession, Timer};
use crate::hub::{
    C2dSubscription, InputSubscription, METHODS_SUBSCRIPTION, TWIN_DESIRED_SUBSCRIPTION,
    TWIN_RESPONSE_SUBSCRIPTION,
};
use crate::mqtt::Transmit;
use crate::retry::calculate_retry_delay;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drain {
    /// Stop sending, wait for acknowledgements, then reconnect with a fresh token.
    Renew,
    /// Keep sending what is queued, then disconnect for good.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conn {
    /// No connection; open one when `Timer::Reconnect` fires.
    Down,
    /// `Transmit::Connect` is out.
    Connecting,
    /// `Transmit::Subscribe` is out.
    Subscribing,
    /// Connected and subscribed.
    Up,
    /// Terminal.
    Stopped,
}

impl HubSession {
    /// No connection; the next attempt starts at `reconnect_at`.
    pub(super) fn go_down(&mut self, reconnect_at: Timestamp) {
        self.conn = Conn::Down;
        self.timers.set(Timer::Reconnect, reconnect_at);
    }

    pub(super) fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let backoff = self.config.backoff;
        let exp = calculate_retry_delay(
            Duration::ZERO,
            attempt.saturating_sub(1),
            backoff.base,
            backoff.max,
            Duration::ZERO,
        );
        exp + self.jitter.jitter(backoff.max_jitter.max(exp / 4))
    }

    pub(super) fn go_up(&mut self, now: Timestamp) {
        self.conn = Conn::Up;
        self.up_since = Some(now);
        self.drain = None;
        self.timers.stop(Timer::Subscribe);
        self.timers.stop(Timer::Drain);
        self.set_state(ConnectionState::Connected);
        if self.config.features.twin && self.config.resync_twin {
            self.start_resync(now);
        }
        if let Some(heartbeat) = &self.config.heartbeat {
            if self.heartbeat_at.is_none() {
                self.heartbeat_at = Some(now + heartbeat.interval);
            }
        }
    }

    /// The connection is gone (or the attempt failed): requeue, back off, maybe give up.
    pub(super) fn lost(&mut self, now: Timestamp, reason: DisconnectReason) {
        self.requeue_in_flight();
        self.renew_at = None;
        self.token_expires_at = None;
        let was_up = self.up_since.take();
        self.timers.stop(Timer::Subscribe);
        self.timers.stop(Timer::Drain);
        let closing = self.drain.take() == Some(Drain::Close);
        if closing || self.closing {
            self.go_down(now);
            self.stop(StopReason::Closed);
            return;
        }
        if was_up.is_some_and(|since| {
            now.saturating_duration_since(since) >= self.config.backoff.reset_after
        }) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self
            .config
            .backoff
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            self.go_down(now);
            self.stop(StopReason::RetriesExhausted { last: reason });
            return;
        }
        let retry_in = self.backoff_delay(self.failures);
        self.go_down(now + retry_in);
        self.set_state(ConnectionState::Disconnected {
            reason,
            retry_in,
            attempt: self.failures,
        });
    }

    pub(super) fn stop(&mut self, reason: StopReason) {
        if self.conn == Conn::Stopped {
            return;
        }
        if matches!(self.conn, Conn::Connecting | Conn::Subscribing | Conn::Up) {
            self.transmits.push_back(Transmit::Disconnect);
        }
        self.conn = Conn::Stopped;
        self.closing = true;
        self.drain = None;
        self.renew_at = None;
        self.timers.stop(Timer::Resync);
        self.heartbeat_at = None;
        if self.keep_on_stop {
            // Back in the queue, in order, for the next session (see `Handoff`).
            self.requeue_in_flight();
        }
        let in_flight = core::mem::take(&mut self.in_flight);
        self.telemetry_in_flight = 0;
        let mut abandoned: Vec<MessageId> = Vec::new();
        for (_, f) in in_flight {
            match f.sent {
                Sent::Telemetry(q) if !q.heartbeat => abandoned.push(q.id),
                Sent::Telemetry(_) | Sent::Control(Control::Twin(_)) => {}
                Sent::Control(Control::Method { request, .. }) => {
                    self.events.push_back(Event::MethodResponded {
                        request,
                        result: Err(SendError::Closed),
                    });
                }
            }
        }
        for control in core::mem::take(&mut self.control) {
            if let Control::Method { request, .. } = control {
                self.events.push_back(Event::MethodResponded {
                    request,
                    result: Err(SendError::Closed),
                });
            }
        }
        if !self.keep_on_stop {
            abandoned.extend(
                core::mem::take(&mut self.queue)
                    .into_iter()
                    .filter(|q| !q.heartbeat)
                    .map(|q| q.id),
            );
        }
        abandoned.sort_unstable();
        for id in abandoned {
            self.events.push_back(Event::TelemetryAbandoned { id });
        }
        self.expiries.clear();
        for (request, op) in core::mem::take(&mut self.twin) {
            self.fail_twin(request, &op.kind, TwinError::Closed);
        }
        self.set_state(ConnectionState::Stopped(reason));
        self.events.push_back(Event::Stopped(reason));
    }
}

/// The filters a session with `config` subscribes to.
pub(super) fn subscriptions(config: &SessionConfig) -> Vec<String> {
    let features = config.features;
    let mut filters = Vec::new();
    match &config.module_id {
        None if features.c2d => {
            filters.push(C2dSubscription::new(&config.device_id).to_string());
        }
        Some(module) if features.inputs => {
            filters.push(InputSubscription::new(&config.device_id, module).to_string());
        }
        _ => {}
    }
    if features.twin {
        filters.push(TWIN_RESPONSE_SUBSCRIPTION.to_string());
        filters.push(TWIN_DESIRED_SUBSCRIPTION.to_string());
    }
    if features.methods {
        filters.push(METHODS_SUBSCRIPTION.to_string());
    }
    filters
}
