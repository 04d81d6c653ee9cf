//! DPS response topic + body parsing: any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the topic, the rest the payload.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (topic, payload) = data.split_at(split);
    if let Ok(topic) = std::str::from_utf8(topic) {
        let _ = dps_core::dps::Response::parse(topic, payload);
        let _ = dps_core::dps::topic::ResponseTopic::parse(topic);
    }
    let _ = dps_core::dps::parse_body(data);
});
