//! Known-answer vectors for the IoT Hub codecs, from the official SDKs' unit tests, each
//! reproduced byte for byte. Their origin: the Embedded C SDK (github.com/Azure/azure-sdk-for-c,
//! `sdk/tests/iot/hub/test_az_iot_hub_client{,_telemetry,_c2d,_methods,_twin}.c`,
//! `sdk/tests/iot/common/test_az_iot_common.c` for message properties, and the
//! `feature/dps-csr-preview` branch's `sdk/tests/iot/hub/test_az_iot_hub_client_csr.c` for the
//! certificate renewal); and the Python SDK (github.com/Azure/azure-iot-sdk-python,
//! `tests/unit/iothub/pipeline/test_mqtt_topic_iothub.py`) for property encoding and methods.
//! Each section below names its file.

use std::borrow::Cow;

use dps_core::encoding::PercentEncoded;
use dps_core::hub::{
    CertificateAccepted, CredentialErrorBody, CredentialResponse, CredentialResponseKind,
    HubConnectInfo, IssueCertificateRequest, IssueCertificateTopic, IssuedCertificates,
    MessageProperties, MethodResponseTopic, ParsedMethodRequest, Property, PropertyBag,
    TelemetryTopic, TopicError, TwinGetTopic, TwinMessage, TwinReportedTopic, parse_c2d_topic,
    parse_credentials_topic, parse_method_request, parse_twin_topic,
};

// ---------------------------------------------------------------------------------------------
// 4.6 Hub connect info (EC test_az_iot_hub_client.c)

const HOST: &str = "myiothub.azure-devices.net";
const DEVICE: &str = "my_device";
const MODULE: &str = "my_module_id";
const MODEL: &str = "dtmi:YOUR_COMPANY_NAME_HERE:sample_device;1";
/// `PLATFORM_USER_AGENT` at azure-sdk-for-c main: already percent-encoded.
const PLATFORM_USER_AGENT: &str = "azsdk-c%2F1.6.0-beta.1";
/// The Embedded C SDK's api-version (ours defaults to 2021-04-12).
const EC_API_VERSION: &str = "2020-09-30";

fn ec_device() -> HubConnectInfo<'static> {
    HubConnectInfo::new(HOST, DEVICE).api_version(EC_API_VERSION)
}

#[test]
fn v4_6_username_default() {
    let info = ec_device().device_client_type_preencoded(PLATFORM_USER_AGENT);
    assert_eq!(
        info.username().to_string(),
        "myiothub.azure-devices.net/my_device/?api-version=2020-09-30&DeviceClientType=azsdk-c%2F1.6.0-beta.1"
    );
}

#[test]
fn v4_6_username_with_model() {
    let info = ec_device()
        .device_client_type_preencoded(PLATFORM_USER_AGENT)
        .model_id(MODEL);
    assert_eq!(
        info.username().to_string(),
        "myiothub.azure-devices.net/my_device/?api-version=2020-09-30&DeviceClientType=azsdk-c%2F1.6.0-beta.1\
         &model-id=dtmi%3AYOUR_COMPANY_NAME_HERE%3Asample_device%3B1"
    );
}

#[test]
fn v4_6_username_module_user_agent() {
    let info = ec_device().module(MODULE).device_client_type("azrtos");
    assert_eq!(
        info.username().to_string(),
        "myiothub.azure-devices.net/my_device/my_module_id/?api-version=2020-09-30&DeviceClientType=azrtos"
    );
}

#[test]
fn v4_6_username_module_user_agent_model() {
    let info = ec_device()
        .module(MODULE)
        .device_client_type("azrtos")
        .model_id(MODEL);
    assert_eq!(
        info.username().to_string(),
        "myiothub.azure-devices.net/my_device/my_module_id/?api-version=2020-09-30&DeviceClientType=azrtos\
         &model-id=dtmi%3AYOUR_COMPANY_NAME_HERE%3Asample_device%3B1"
    );
}

#[test]
fn v4_6_client_id() {
    assert_eq!(ec_device().client_id().to_string(), "my_device");
    assert_eq!(
        ec_device().module(MODULE).client_id().to_string(),
        "my_device/my_module_id"
    );
}

#[test]
fn v4_6_platform_user_agent_is_the_encoded_sdk_version() {
    // The pre-encoded value is what encoding the plain user agent yields.
    let encoded = ec_device().device_client_type("azsdk-c/1.6.0-beta.1");
    let verbatim = ec_device().device_client_type_preencoded(PLATFORM_USER_AGENT);
    assert_eq!(
        encoded.username().to_string(),
        verbatim.username().to_string()
    );
}

// ---------------------------------------------------------------------------------------------
// 4.9 Telemetry topics (EC test_az_iot_hub_client_telemetry.c; Python test_mqtt_topic_iothub.py)

#[test]
fn v4_9_telemetry_topic_device() {
    assert_eq!(
        TelemetryTopic::new("my_device").to_string(),
        "devices/my_device/messages/events/"
    );
}

#[test]
fn v4_9_telemetry_topic_module() {
    assert_eq!(
        TelemetryTopic::new("my_device")
            .module("my_module_id")
            .to_string(),
        "devices/my_device/modules/my_module_id/messages/events/"
    );
}

#[test]
fn v4_9_telemetry_topic_with_properties() {
    let raw = "key=value&key_two=value2";
    let built = MessageProperties::new()
        .property("key", "value")
        .property("key_two", "value2");
    for topic in [
        TelemetryTopic::new("my_device").raw_properties(raw),
        TelemetryTopic::new("my_device").properties(&built),
    ] {
        assert_eq!(
            topic.to_string(),
            "devices/my_device/messages/events/key=value&key_two=value2"
        );
    }
}

#[test]
fn v4_9_telemetry_topic_module_with_properties() {
    let raw = "key=value&key_two=value2";
    let built = MessageProperties::new()
        .property("key", "value")
        .property("key_two", "value2");
    let device = TelemetryTopic::new("my_device").module("my_module_id");
    for topic in [device.raw_properties(raw), device.properties(&built)] {
        assert_eq!(
            topic.to_string(),
            "devices/my_device/modules/my_module_id/messages/events/key=value&key_two=value2"
        );
    }
}

#[test]
fn v4_9_python_property_encoding_mid_ce() {
    let props = MessageProperties::new()
        .message_id("1234")
        .content_encoding("utf-8");
    assert_eq!(props.to_string(), "%24.mid=1234&%24.ce=utf-8");
}

#[test]
fn v4_9_python_property_encoding_full_set() {
    // Set in a different order from the one written, to show the order is the codec's.
    let props = MessageProperties::new()
        .expiry("2019-02-02T00:00:00")
        .property("custom1", "value1")
        .interface_id("urn:azureiot:Security:SecurityAgent:1")
        .content_encoding("utf-8")
        .content_type("type")
        .user_id("userid")
        .correlation_id("5678")
        .message_id("1234")
        .output_name("output")
        .property("custom2", "value2")
        .property("custom3", "value3");
    assert_eq!(
        props.to_string(),
        "%24.on=output&%24.mid=1234&%24.cid=5678&%24.uid=userid&%24.ct=type&%24.ce=utf-8\
         &%24.ifid=urn%3Aazureiot%3ASecurity%3ASecurityAgent%3A1&%24.exp=2019-02-02T00%3A00%3A00\
         &custom1=value1&custom2=value2&custom3=value3"
    );
}

// ---------------------------------------------------------------------------------------------
// 4.10 Message properties (EC test_az_iot_common.c)

#[test]
fn v4_10_append() {
    let props = MessageProperties::new().property("key_one", "value_one");
    assert_eq!(props.to_string(), "key_one=value_one");
    let props = props.property("key_two", "value_two");
    assert_eq!(props.to_string(), "key_one=value_one&key_two=value_two");
}

#[test]
fn v4_10_find() {
    let found = PropertyBag::new("key_one=value_one&key=value_two").get("key");
    assert_eq!(
        found,
        Some(Property {
            key: "key",
            value: Some("value_two")
        })
    );
    // A value equal to the key is not a match.
    let found = PropertyBag::new("key_one=key&key=value_two").get("key");
    assert_eq!(found.and_then(|p| p.value), Some("value_two"));
}

#[test]
fn v4_10_find_not_found() {
    let two = PropertyBag::new("key_one=value_one&key_two=value_two");
    assert_eq!(two.get("key"), None);
    assert_eq!(two.get("one"), None);
    assert_eq!(two.get("key_foo"), None);
    let three = PropertyBag::new("key_one=value_one&key_two=value_two&key_three=value_three");
    assert_eq!(three.get("value_two"), None);
    assert_eq!(three.get("value_three"), None);
    assert_eq!(three.get("key_foo"), None);
}

#[test]
fn v4_10_url_encode() {
    assert_eq!(
        PercentEncoded::new("abc/=%012").to_string(),
        "abc%2F%3D%25012"
    );
    let props = MessageProperties::new().property("abc/=%012", "abc/=%012");
    assert_eq!(props.to_string(), "abc%2F%3D%25012=abc%2F%3D%25012");
}

// ---------------------------------------------------------------------------------------------
// 4.11 C2D parse (EC test_az_iot_hub_client_c2d.c)

#[test]
fn v4_11_c2d_parse_plain_properties() {
    let msg = parse_c2d_topic(
        "devices/useragent_c/messages/devicebound/$.mid=79eadb01-bd0d-472d-bd35-ccb76e70eab8\
         &$.to=/devices/useragent_c/messages/deviceBound&abc=123",
    )
    .unwrap();
    assert_eq!(msg.device_id, "useragent_c");
    let items: Vec<_> = msg.properties.iter().map(|p| (p.key, p.value)).collect();
    assert_eq!(
        items,
        [
            ("$.mid", Some("79eadb01-bd0d-472d-bd35-ccb76e70eab8")),
            ("$.to", Some("/devices/useragent_c/messages/deviceBound")),
            ("abc", Some("123")),
        ]
    );
    assert_eq!(
        msg.properties.message_id().unwrap().value,
        Some("79eadb01-bd0d-472d-bd35-ccb76e70eab8")
    );
}

#[test]
fn v4_11_c2d_parse_encoded_properties() {
    let msg = parse_c2d_topic(
        "devices/useragent_c/messages/devicebound/%24.to=%2Fdevices%2Fuseragent_c%2Fmessages%2FdeviceBound\
         &abc=123&ghi=%2Fsome%2Fthing&jkl=%2Fsome%2Fthing%2F%3Fbla%3Dbla",
    )
    .unwrap();
    // Values come back still encoded, as in the Embedded C SDK...
    let items: Vec<_> = msg.properties.iter().map(|p| (p.key, p.value)).collect();
    assert_eq!(
        items,
        [
            (
                "%24.to",
                Some("%2Fdevices%2Fuseragent_c%2Fmessages%2FdeviceBound")
            ),
            ("abc", Some("123")),
            ("ghi", Some("%2Fsome%2Fthing")),
            ("jkl", Some("%2Fsome%2Fthing%2F%3Fbla%3Dbla")),
        ]
    );
    // ...and decode on demand.
    let to = msg.properties.to().unwrap();
    assert_eq!(to.decoded_key().unwrap(), "$.to");
    assert_eq!(
        to.decoded_value().unwrap(),
        Some(Cow::Borrowed("/devices/useragent_c/messages/deviceBound"))
    );
    assert_eq!(
        msg.properties.value("jkl").unwrap().as_deref(),
        Some("/some/thing/?bla=bla")
    );
}

#[test]
fn v4_11_c2d_parse_empty_properties() {
    let msg = parse_c2d_topic("devices/useragent_c/messages/devicebound/").unwrap();
    assert_eq!(msg.device_id, "useragent_c");
    assert!(msg.properties.is_empty());
    assert_eq!(msg.properties.iter().next(), None);
}

#[test]
fn v4_11_c2d_topic_no_match() {
    assert_eq!(
        parse_c2d_topic("$iothub/methods/POST/foo/?$rid=one"),
        Err(TopicError::NoMatch)
    );
    assert_eq!(
        parse_c2d_topic("devices/useragent_c/message#$vicebound/a=1"),
        Err(TopicError::NoMatch)
    );
}

// ---------------------------------------------------------------------------------------------
// 4.12 Methods (EC test_az_iot_hub_client_methods.c; Python test_mqtt_topic_iothub.py)

#[test]
fn v4_12_methods_parse() {
    assert_eq!(
        parse_method_request("$iothub/methods/POST/TestMethod/?$rid=1"),
        Ok(ParsedMethodRequest {
            name: "TestMethod",
            rid: "1"
        })
    );
}

#[test]
fn v4_12_methods_response_topic() {
    assert_eq!(
        MethodResponseTopic::new(200, "2").to_string(),
        "$iothub/methods/res/200/?$rid=2"
    );
    assert_eq!(
        MethodResponseTopic::new(65535, "2").to_string(),
        "$iothub/methods/res/65535/?$rid=2"
    );
}

#[test]
fn v4_12_methods_topic_no_match() {
    for topic in [
        "$iothub/twin/res/200/?$rid=2",
        "$iothub/twin/res/204/?$rid=4&$version=3",
        "$iothub/methods/POST/#",
        "$iothub/methods/res/200/?$rid=2",
        "devices/useragent_c/messages/devicebound/abc=123",
    ] {
        assert_eq!(
            parse_method_request(topic),
            Err(TopicError::NoMatch),
            "{topic}"
        );
    }
}

#[test]
fn v4_12_python_method_name_decoded() {
    let req = parse_method_request("$iothub/methods/POST/fake%24method/?$rid=1").unwrap();
    assert_eq!(req.decoded_name().unwrap(), "fake$method");
}

#[test]
fn v4_12_python_method_name_plus_stays() {
    let req = parse_method_request("$iothub/methods/POST/fake+method/?$rid=1").unwrap();
    assert_eq!(req.decoded_name().unwrap(), "fake+method");
}

#[test]
fn v4_12_python_method_rid_decoded() {
    let req =
        parse_method_request("$iothub/methods/POST/fake_method/?$rid=fake%24request%2Fid").unwrap();
    assert_eq!(req.rid, "fake%24request%2Fid");
    assert_eq!(req.decoded_rid().unwrap(), "fake$request/id");
}

// ---------------------------------------------------------------------------------------------
// 4.13 Twin (EC test_az_iot_hub_client_twin.c)

#[test]
fn v4_13_twin_get_topic() {
    assert_eq!(
        TwinGetTopic::new("id_one").to_string(),
        "$iothub/twin/GET/?$rid=id_one"
    );
}

#[test]
fn v4_13_twin_patch_topic() {
    assert_eq!(
        TwinReportedTopic::new("id_one").to_string(),
        "$iothub/twin/PATCH/properties/reported/?$rid=id_one"
    );
}

#[test]
fn v4_13_twin_parse_desired() {
    let msg = parse_twin_topic("$iothub/twin/PATCH/properties/desired/?$version=id_one").unwrap();
    assert_eq!(
        msg,
        TwinMessage::DesiredPatch {
            version: Some("id_one")
        }
    );
    assert_eq!((msg.status(), msg.rid()), (200, None));
}

#[test]
fn v4_13_twin_parse_get() {
    let msg = parse_twin_topic("$iothub/twin/res/200/?$rid=id_one").unwrap();
    assert_eq!(
        msg,
        TwinMessage::GetResponse {
            status: 200,
            rid: "id_one",
            version: None
        }
    );
}

#[test]
fn v4_13_twin_parse_reported() {
    assert_eq!(
        parse_twin_topic("$iothub/twin/res/204/?$rid=id_one&$version=16"),
        Ok(TwinMessage::ReportedAck {
            rid: "id_one",
            version: Some("16")
        })
    );
    let msg = parse_twin_topic("$iothub/twin/res/204/?$rid=id_one").unwrap();
    assert_eq!(
        msg,
        TwinMessage::ReportedAck {
            rid: "id_one",
            version: None
        }
    );
    assert_eq!(msg.status(), 204);
}

#[test]
fn v4_13_twin_parse_request_error() {
    for status in [400, 504] {
        let topic = format!("$iothub/twin/res/{status}/?$rid=id_one");
        let msg = parse_twin_topic(&topic).unwrap();
        assert_eq!(
            msg,
            TwinMessage::RequestError {
                status,
                rid: "id_one"
            }
        );
        assert_eq!(msg.version(), None);
    }
}

#[test]
fn v4_13_twin_topic_no_match() {
    assert_eq!(
        parse_twin_topic("$iothub/twin/rez/200"),
        Err(TopicError::NoMatch)
    );
    assert_eq!(
        parse_twin_topic("$iothub/contoso/res/200"),
        Err(TopicError::NoMatch)
    );
}

#[test]
fn v4_13_twin_unexpected_end() {
    assert_eq!(
        parse_twin_topic("$iothub/twin/res/200"),
        Err(TopicError::UnexpectedEnd)
    );
}

#[test]
fn v4_13_twin_prefixed_forms() {
    assert_eq!(
        parse_twin_topic("devices/my_device/$iothub/twin/res/200/?$rid=id_one"),
        Ok(TwinMessage::GetResponse {
            status: 200,
            rid: "id_one",
            version: None
        })
    );
    assert_eq!(
        parse_twin_topic(
            "devices/my_device/$iothub/twin/PATCH/properties/desired/?$version=id_one"
        ),
        Ok(TwinMessage::DesiredPatch {
            version: Some("id_one")
        })
    );
}

#[test]
fn v4_13_twin_response_type_rule() {
    let kind = |status: u16| {
        let topic = format!("$iothub/twin/res/{status}/?$rid=r");
        match parse_twin_topic(&topic).unwrap() {
            TwinMessage::GetResponse { .. } => "get",
            TwinMessage::ReportedAck { .. } => "reported",
            TwinMessage::RequestError { .. } => "error",
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(kind(200), "get");
    assert_eq!(kind(202), "get");
    assert_eq!(kind(204), "reported");
    assert_eq!(kind(399), "get");
    assert_eq!(kind(400), "error");
    assert_eq!(kind(429), "error");
    assert_eq!(kind(500), "error");
}

// ---------------------------------------------------------------------------------------------
// 4.15 Hub CSR preview (EC feature/dps-csr-preview test_az_iot_hub_client_csr.c)

const CSR: &str = "MIICYTCCAUkCAQAwHDEaMBgGA1wR";

#[test]
fn v4_15_csr_request_topic() {
    assert_eq!(
        IssueCertificateTopic::new("req-001").to_string(),
        "$iothub/credentials/POST/issueCertificate/?$rid=req-001"
    );
}

#[test]
fn v4_15_csr_payload() {
    let body = IssueCertificateRequest::new("my_device", CSR);
    assert_eq!(
        body.to_string(),
        r#"{"id":"my_device","csr":"MIICYTCCAUkCAQAwHDEaMBgGA1wR"}"#
    );
    assert_eq!(serde_json::to_string(&body).unwrap(), body.to_string());
}

#[test]
fn v4_15_csr_payload_with_replace() {
    let expected = r#"{"id":"my_device","csr":"MIICYTCCAUkCAQAwHDEaMBgGA1wR","replace":"*"}"#;
    assert_eq!(
        IssueCertificateRequest::new("my_device", CSR)
            .replace_any()
            .to_string(),
        expected
    );
    assert_eq!(
        IssueCertificateRequest::new("my_device", CSR)
            .replace("*")
            .to_string(),
        expected
    );
}

#[test]
fn v4_15_csr_parse_accepted() {
    let res = parse_credentials_topic("$iothub/credentials/res/202/?$rid=req-001").unwrap();
    assert_eq!(
        res,
        CredentialResponse {
            status: 202,
            rid: "req-001"
        }
    );
    assert_eq!(res.kind(), CredentialResponseKind::Accepted);
}

#[test]
fn v4_15_csr_parse_completed() {
    let res = parse_credentials_topic("$iothub/credentials/res/200/?$rid=req-001").unwrap();
    assert_eq!(
        res,
        CredentialResponse {
            status: 200,
            rid: "req-001"
        }
    );
    assert_eq!(res.kind(), CredentialResponseKind::Completed);
}

#[test]
fn v4_15_csr_parse_error() {
    for status in [400, 429, 503] {
        let topic = format!("$iothub/credentials/res/{status}/?$rid=req-001");
        let res = parse_credentials_topic(&topic).unwrap();
        assert_eq!(
            (res.status, res.rid, res.kind()),
            (status, "req-001", CredentialResponseKind::Error)
        );
    }
}

#[test]
fn v4_15_csr_parse_unexpected_end() {
    assert_eq!(
        parse_credentials_topic("$iothub/credentials/res/200"),
        Err(TopicError::UnexpectedEnd)
    );
}

#[test]
fn v4_15_csr_parse_no_match() {
    assert_eq!(
        parse_credentials_topic("$iothub/twin/res/200/?$rid=req-001"),
        Err(TopicError::NoMatch)
    );
}

#[test]
fn v4_15_csr_accepted_body() {
    let json = r#"{"correlationId":"8819e8d8-1324-4a9c-acde-ce0318e93f31","operationExpires":"2025-06-09T17:31:31.426Z"}"#;
    let body: CertificateAccepted = serde_json::from_str(json).unwrap();
    assert_eq!(body.correlation_id, "8819e8d8-1324-4a9c-acde-ce0318e93f31");
    assert_eq!(body.operation_expires, "2025-06-09T17:31:31.426Z");
    assert_eq!(serde_json::to_string(&body).unwrap(), json);
}

#[test]
fn v4_15_csr_error_body_bad_csr() {
    // The vector abbreviates the correlation id as `8819e8d8-...`; it is kept as written.
    let json = r#"{"errorCode":400040,"message":"A Certificate signing request operation failed","trackingId":"59b2922c-f1c9-451b-b02d-5b64bc31685a","timestampUtc":"2025-06-09T17:31:31.426574675Z","info":{"correlationId":"8819e8d8-...","credentialError":"FailedToDecodeCsr","credentialMessage":"Failed to decode CSR: invalid base64 encoding"}}"#;
    let body: CredentialErrorBody = serde_json::from_str(json).unwrap();
    assert_eq!(body.error_code, 400040);
    assert_eq!(
        body.message,
        "A Certificate signing request operation failed"
    );
    assert_eq!(body.tracking_id, "59b2922c-f1c9-451b-b02d-5b64bc31685a");
    assert_eq!(body.timestamp_utc, "2025-06-09T17:31:31.426574675Z");
    assert_eq!(body.retry_after, None);
    let info = body.info.as_ref().unwrap();
    assert_eq!(info.correlation_id.as_deref(), Some("8819e8d8-..."));
    assert_eq!(info.credential_error.as_deref(), Some("FailedToDecodeCsr"));
    assert_eq!(
        info.credential_message.as_deref(),
        Some("Failed to decode CSR: invalid base64 encoding")
    );
    assert_eq!(info.request_id, None);
    assert_eq!(serde_json::to_string(&body).unwrap(), json);
}

#[test]
fn v4_15_csr_error_body_already_active() {
    // The vector gives only the code, the gist of the message and `info.requestId`.
    let json = r#"{"errorCode":409005,"message":"A certificate signing request operation is already active","trackingId":"t","timestampUtc":"2025-06-09T17:31:31Z","info":{"requestId":"aabbcc","operationExpires":"2025-06-09T17:36:31Z"}}"#;
    let body: CredentialErrorBody = serde_json::from_str(json).unwrap();
    assert_eq!(body.error_code, 409005);
    assert!(body.message.contains("already active"));
    let info = body.info.as_ref().unwrap();
    assert_eq!(info.request_id.as_deref(), Some("aabbcc"));
    assert_eq!(
        info.operation_expires.as_deref(),
        Some("2025-06-09T17:36:31Z")
    );
    // The id to replace goes straight into the retried request.
    let retry =
        IssueCertificateRequest::new("my_device", CSR).replace(info.request_id.as_deref().unwrap());
    assert_eq!(
        retry.to_string(),
        r#"{"id":"my_device","csr":"MIICYTCCAUkCAQAwHDEaMBgGA1wR","replace":"aabbcc"}"#
    );
}

#[test]
fn v4_15_csr_error_body_throttled() {
    let json = r#"{"errorCode":429002,"message":"Throttled","trackingId":"track-id","timestampUtc":"2025-06-09T17:31:31Z","retryAfter":5}"#;
    let body: CredentialErrorBody = serde_json::from_str(json).unwrap();
    assert_eq!(body.error_code, 429002);
    assert_eq!(body.message, "Throttled");
    assert_eq!(body.tracking_id, "track-id");
    assert_eq!(body.retry_after, Some(5));
    assert_eq!(
        body.retry_after_duration(),
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(body.info, None);
    assert_eq!(serde_json::to_string(&body).unwrap(), json);
}

#[test]
fn v4_15_csr_completed_bodies() {
    for (json, expected) in [
        (
            r#"["ROOT CERT","INTERMEDIATE CERT","LEAF CERT"]"#,
            &["ROOT CERT", "INTERMEDIATE CERT", "LEAF CERT"][..],
        ),
        (r#"["LEAF CERT"]"#, &["LEAF CERT"][..]),
        ("[]", &[][..]),
    ] {
        let body: IssuedCertificates = serde_json::from_str(json).unwrap();
        assert_eq!(body.certificates, expected);
        assert_eq!(serde_json::to_string(&body).unwrap(), json);
    }
}
