//! The registration state machine under arbitrary inputs: no panic, and time never runs
//! backwards in its timers.
#![no_main]

use core::time::Duration;

use dps_core::Timestamp;
use dps_core::dps::registration::{Registration, RegistrationConfig, Timing};
use dps_core::mqtt::{ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine as _};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let timing = Timing::default().deadline(Duration::from_secs(120));
    let seed = data.first().copied().unwrap_or(0).into();
    let mut now = Timestamp::ZERO;
    let mut reg = Registration::new(RegistrationConfig::new("fuzz").timing(timing), now, seed);
    let mut chunks = data.split(|&b| b == 0xff);
    while let Some(chunk) = chunks.next() {
        let Some((&op, rest)) = chunk.split_first() else { continue };
        match op % 7 {
            0 => reg.handle_connected(now, Connected::new(false, None, 0)),
            1 => reg.handle_connect_failed(now, ConnectFailure::Refused { code: rest.first().copied().unwrap_or(0) }),
            2 => reg.handle_subscribed(now, rest.first() != Some(&0)),
            3 => reg.handle_disconnected(now, ConnectionLoss::Network),
            4 => {
                now += Duration::from_millis(u64::from(rest.first().copied().unwrap_or(0)) * 500);
                reg.handle_timeout(now);
            }
            _ => {
                let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let (topic, payload) = rest.split_at(split);
                if let Ok(topic) = std::str::from_utf8(topic) {
                    reg.handle_publish(now, IncomingPublish::new(topic, payload.to_vec(), Some(1)));
                }
            }
        }
        while reg.poll_transmit().is_some() {}
        while reg.poll_event().is_some() {}
        if let Some(t) = reg.poll_timeout() {
            assert!(t <= Timestamp::ZERO + Duration::from_secs(120));
        }
    }
});
