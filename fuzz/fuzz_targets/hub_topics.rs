//! Every IoT Hub topic parser and the property-bag decoder: any text, no panic.
#![no_main]

use dps_core::hub;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|topic: &str| {
    let _ = hub::parse_twin_topic(topic);
    let _ = hub::parse_twin_request(topic);
    let _ = hub::parse_method_request(topic);
    let _ = hub::parse_method_response(topic);
    let _ = hub::parse_credentials_topic(topic);
    let _ = hub::credentials::parse_issue_certificate_topic(topic);
    let _ = hub::parse_telemetry_topic(topic);
    let _ = hub::parse_input_topic(topic);
    if let Ok(message) = hub::parse_c2d_topic(topic) {
        for property in message.properties.iter() {
            let _ = property.decoded_key();
            let _ = property.decoded_value();
        }
    }
    for property in hub::PropertyBag::new(topic).iter() {
        let _ = property.decoded_key();
        let _ = property.decoded_value();
    }
    let _ = dps_core::encoding::percent_decode(topic);
});
