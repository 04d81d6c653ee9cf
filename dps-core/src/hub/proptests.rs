//! Property tests across the hub codecs: no parser panics on any input, and every builder's
//! output parses back to what was built.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::encoding::percent_decode;

/// Characters IoT Hub allows in device, module and input ids (no `/`).
const ID: &str = "[A-Za-z0-9\\-.%_*?!(),:=@$']{1,24}";

/// Topic-like text built from protocol fragments, so parsers get past their prefixes.
fn topicish() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("$iothub/"),
        Just("twin/"),
        Just("res/"),
        Just("GET"),
        Just("methods/"),
        Just("POST/"),
        Just("credentials/"),
        Just("issueCertificate"),
        Just("PATCH/properties/desired"),
        Just("PATCH/properties/reported"),
        Just("devices/"),
        Just("d/"),
        Just("modules/"),
        Just("messages/"),
        Just("events"),
        Just("devicebound"),
        Just("inputs/"),
        Just("/?"),
        Just("$rid="),
        Just("$version="),
        Just("%24.mid="),
        Just("&"),
        Just("="),
        Just("%"),
        Just("%2"),
        Just("%FF"),
        Just("*"),
        Just("200"),
        Just("204"),
        Just("429"),
        Just("65536"),
        Just("/"),
        Just("é"),
    ]
    .prop_map(str::to_string);
    let any = prop_oneof![fragment, "[a-z0-9]{0,3}", ".{0,2}"];
    proptest::collection::vec(any, 0..14).prop_map(|parts| parts.concat())
}

/// Runs every parser on `topic` and exercises whatever they return.
fn parse_everything(topic: &str) {
    let exercise_bag = |bag: PropertyBag<'_>| {
        for p in bag {
            let _ = (p.decoded_key(), p.decoded_value(), p.is_null());
        }
        let _ = (
            bag.message_id(),
            bag.to(),
            bag.value("$.mid"),
            bag.is_empty(),
        );
    };
    if let Ok(t) = parse_telemetry_topic(topic) {
        exercise_bag(t.properties);
    }
    if let Ok(m) = parse_c2d_topic(topic) {
        exercise_bag(m.properties);
    }
    if let Ok(m) = parse_input_topic(topic) {
        exercise_bag(m.properties);
    }
    if let Ok(m) = parse_twin_topic(topic) {
        let _ = (m.status(), m.rid(), m.version(), m.decoded_rid());
    }
    if let Ok(r) = parse_twin_request(topic) {
        let _ = percent_decode(r.rid());
    }
    if let Ok(r) = parse_method_request(topic) {
        let _ = (
            r.decoded_name(),
            r.decoded_rid(),
            r.command(),
            r.response_topic(200).to_string(),
        );
    }
    let _ = parse_method_response(topic);
    if let Ok(r) = parse_credentials_topic(topic) {
        let _ = (r.kind(), r.decoded_rid());
    }
    let _ = parse_issue_certificate_topic(topic);
    exercise_bag(PropertyBag::new(topic));
    let _ = split_command(topic);
}

fn decoded(text: &str) -> Cow<'_, str> {
    percent_decode(text).expect("builders only write valid escapes")
}

/// Builds properties with the given system values (one slot per [`SystemProperty::ALL`]) and
/// application properties, and the decoded `(key, value)` sequence the bag must parse back to.
fn build(
    system: &[Option<String>],
    application: &[(String, String)],
) -> (MessageProperties, Vec<(String, String)>) {
    let mut props = MessageProperties::new();
    let mut expected = Vec::new();
    for (property, value) in SystemProperty::ALL.into_iter().zip(system) {
        if let Some(value) = value {
            props.set(property, value.clone());
            expected.push((property.key().to_string(), value.clone()));
        }
    }
    for (key, value) in application {
        props.push(key.clone(), value.clone());
        expected.push((key.clone(), value.clone()));
    }
    (props, expected)
}

fn decode_bag(bag: PropertyBag<'_>) -> Vec<(String, String)> {
    bag.iter()
        .map(|p| {
            let value = p.decoded_value().expect("valid").expect("never null");
            (
                p.decoded_key().expect("valid").into_owned(),
                value.into_owned(),
            )
        })
        .collect()
}

fn system_values() -> impl Strategy<Value = Vec<Option<String>>> {
    proptest::collection::vec(proptest::option::of(".{0,8}"), SystemProperty::ALL.len())
}

fn application_values() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((".{0,8}", ".{0,8}"), 0..5)
}

proptest! {
    #[test]
    fn parsers_never_panic_on_text(topic in ".{0,64}") {
        parse_everything(&topic);
    }

    #[test]
    fn parsers_never_panic_on_topic_like_text(topic in topicish()) {
        parse_everything(&topic);
    }

    #[test]
    fn parsers_and_models_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        parse_everything(&String::from_utf8_lossy(&bytes));
        let _ = serde_json::from_slice::<CertificateAccepted>(&bytes);
        let _ = serde_json::from_slice::<CredentialErrorBody>(&bytes);
        let _ = serde_json::from_slice::<IssuedCertificates>(&bytes);
        let _ = serde_json::from_slice::<IssueCertificateRequest<'_>>(&bytes);
    }

    #[test]
    fn telemetry_round_trips(
        device in ID,
        module in proptest::option::of(ID),
        system in system_values(),
        application in application_values(),
    ) {
        let (props, expected) = build(&system, &application);
        let mut topic = TelemetryTopic::new(&device).properties(&props);
        if let Some(module) = &module {
            topic = topic.module(module);
        }
        let topic = topic.to_string();
        let parsed = parse_telemetry_topic(&topic).unwrap();
        prop_assert_eq!(parsed.device_id, device.as_str());
        prop_assert_eq!(parsed.module_id, module.as_deref());
        prop_assert_eq!(decode_bag(parsed.properties), expected);
        for (property, value) in SystemProperty::ALL.into_iter().zip(&system) {
            let got = parsed.properties.system(property).map(|p| p.decoded_value().unwrap().unwrap());
            prop_assert_eq!(got.as_deref(), value.as_deref());
        }
        prop_assert!(parse_c2d_topic(&topic).is_err());
        prop_assert!(parse_input_topic(&topic).is_err());
    }

    #[test]
    fn c2d_round_trips(device in ID, system in system_values(), application in application_values()) {
        let (props, expected) = build(&system, &application);
        let topic = C2dTopic::new(&device).properties(&props).to_string();
        let parsed = parse_c2d_topic(&topic).unwrap();
        prop_assert_eq!(parsed.device_id, device.as_str());
        prop_assert_eq!(decode_bag(parsed.properties), expected);
        prop_assert_eq!(parse_telemetry_topic(&topic), Err(TopicError::NoMatch));
        prop_assert_eq!(parse_twin_topic(&topic), Err(TopicError::NoMatch));
        prop_assert_eq!(parse_method_request(&topic), Err(TopicError::NoMatch));
    }

    #[test]
    fn input_round_trips(device in ID, module in ID, input in ID, application in application_values()) {
        let (props, expected) = build(&[], &application);
        let topic = InputTopic::new(&device, &module, &input).properties(&props).to_string();
        let parsed = parse_input_topic(&topic).unwrap();
        prop_assert_eq!((parsed.device_id, parsed.module_id, parsed.input_name), (device.as_str(), module.as_str(), input.as_str()));
        prop_assert_eq!(decode_bag(parsed.properties), expected);
    }

    #[test]
    fn twin_round_trips(rid in ".{0,16}", status in any::<u16>(), version in proptest::option::of(any::<u64>())) {
        let get = TwinGetTopic::new(&rid).to_string();
        let TwinRequest::Get { rid: raw } = parse_twin_request(&get).unwrap() else {
            panic!("not a GET: {get}");
        };
        prop_assert_eq!(decoded(raw), rid.as_str());
        let patch = TwinReportedTopic::new(&rid).to_string();
        prop_assert_eq!(parse_twin_request(&patch), Ok(TwinRequest::ReportedPatch { rid: raw }));

        let mut response = TwinResponseTopic::new(status, raw);
        if let Some(version) = version {
            response = response.version(version);
        }
        let response = response.to_string();
        let parsed = parse_twin_topic(&response).unwrap();
        prop_assert_eq!(parsed.status(), status);
        prop_assert_eq!(parsed.rid(), Some(raw));
        let decoded_rid = parsed.decoded_rid().unwrap();
        prop_assert_eq!(decoded_rid.as_deref(), Some(rid.as_str()));
        let version_text = version.map(|v| v.to_string());
        match parsed {
            TwinMessage::RequestError { .. } => prop_assert!(status >= 400),
            TwinMessage::ReportedAck { version: v, .. } => {
                prop_assert_eq!(status, 204);
                prop_assert_eq!(v, version_text.as_deref());
            }
            TwinMessage::GetResponse { version: v, .. } => {
                prop_assert!(status < 400 && status != 204);
                prop_assert_eq!(v, version_text.as_deref());
            }
            TwinMessage::DesiredPatch { .. } => prop_assert!(false, "a response parsed as a patch"),
        }
        prop_assert_eq!(parse_method_request(&response), Err(TopicError::NoMatch));
        prop_assert_eq!(parse_credentials_topic(&response), Err(TopicError::NoMatch));
    }

    #[test]
    fn desired_round_trips(version in any::<u64>()) {
        let topic = TwinDesiredTopic::new(version).to_string();
        let expected = version.to_string();
        prop_assert_eq!(parse_twin_topic(&topic), Ok(TwinMessage::DesiredPatch { version: Some(expected.as_str()) }));
    }

    #[test]
    fn method_round_trips(name in ".{1,16}", rid in ".{0,16}", status in any::<u16>()) {
        let topic = MethodRequestTopic::new(&name, &rid).to_string();
        let request = parse_method_request(&topic).unwrap();
        prop_assert_eq!(request.decoded_name().unwrap(), name.as_str());
        prop_assert_eq!(request.decoded_rid().unwrap(), rid.as_str());
        let command = request.command();
        let plain = split_command(&name);
        let component = command.component.map(decoded);
        prop_assert_eq!(component.as_deref(), plain.component);
        prop_assert_eq!(decoded(command.command), plain.command);
        prop_assert_eq!(parse_twin_topic(&topic), Err(TopicError::NoMatch));

        let response = request.response_topic(status).to_string();
        prop_assert_eq!(parse_method_response(&response), Ok(MethodResponse { status, rid: request.rid }));
        prop_assert_eq!(parse_method_request(&response), Err(TopicError::NoMatch));
    }

    #[test]
    fn credentials_round_trip(rid in ".{0,16}", status in any::<u16>(), id in ".{0,16}", csr in ".{0,16}", replace in proptest::option::of(".{0,4}")) {
        let topic = IssueCertificateTopic::new(&rid).to_string();
        let raw = parse_issue_certificate_topic(&topic).unwrap();
        prop_assert_eq!(decoded(raw), rid.as_str());
        let response = CredentialResponseTopic::new(status, raw).to_string();
        prop_assert_eq!(parse_credentials_topic(&response), Ok(CredentialResponse { status, rid: raw }));

        let mut body = IssueCertificateRequest::new(&id, &csr);
        if let Some(replace) = &replace {
            body = body.replace(replace);
        }
        let json = body.to_string();
        prop_assert_eq!(&json, &serde_json::to_string(&body).unwrap());
        let back: IssueCertificateRequest<'_> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, body);
    }
}
