//! Proactive SAS renewal: reconnect with a fresh token at a jittered share of its lifetime, after
//! draining what is in flight (hub-device-protocol §3.2).

use core::time::Duration;

use super::event::{ConnectionState, DisconnectReason};
use super::{Conn, HubSession, Timer};
use crate::mqtt::Transmit;

impl HubSession {
    pub(super) fn renewal_delay(&mut self, remaining: Duration) -> Duration {
        let renewal = self.config.renewal;
        let ms = remaining.as_millis();
        let at = ms * u128::from(renewal.at_percent.min(100)) / 100;
        let spread = ms * u128::from(renewal.jitter_percent.min(renewal.at_percent)) / 100;
        let spread = Duration::from_millis(u64::try_from(spread).unwrap_or(u64::MAX));
        let at = Duration::from_millis(u64::try_from(at).unwrap_or(u64::MAX));
        at.saturating_sub(self.jitter.jitter(spread))
            .max(renewal.min_interval)
    }

    /// Reconnects now with fresh credentials (a renewed certificate), when connected.
    pub(crate) fn reconnect(&mut self) {
        if self.conn == Conn::Up {
            self.renew();
        }
    }

    /// Proactive renewal: reconnect now with fresh credentials.
    pub(super) fn renew(&mut self) {
        self.transmits.push_back(Transmit::Disconnect);
        self.requeue_in_flight();
        self.up_since = None;
        self.drain = None;
        self.timers.stop(Timer::Drain);
        self.renew_at = None;
        self.token_expires_at = None;
        self.set_state(ConnectionState::Disconnected {
            reason: DisconnectReason::TokenRenewal,
            retry_in: Duration::ZERO,
            attempt: 0,
        });
        self.conn = Conn::Connecting;
        self.transmits.push_back(Transmit::Connect {
            clean_session: false,
        });
    }
}
