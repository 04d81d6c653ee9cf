//! The official SDKs' DPS known-answer vectors, reproduced byte for byte. Their origin is the
//! Embedded C SDK's unit tests (github.com/Azure/azure-sdk-for-c, under `sdk/tests/iot/provisioning/`):
//! - connect info: `test_az_iot_provisioning_client.c`;
//! - response parsing: `test_az_iot_provisioning_client_parser.c`;
//! - register payloads: `test_az_iot_provisioning_client_register_get_request_payload.c`, and
//!   the Python SDK's equivalents (github.com/Azure/azure-iot-sdk-python,
//!   `tests/unit/provisioning/pipeline/test_pipeline_stages_provisioning.py`).

use dps_core::dps::topic::{QueryTopic, RegisterTopic, ResponseTopic, SUBSCRIBE_TOPIC, TopicError};
use dps_core::dps::{
    DpsConnectInfo, ErrorCode, ModelError, RegistrationRequest, RegistrationStatus, Response,
    ResponseBody, ResponseError, parse_body,
};

const OPID: &str = "4.d0a671905ea5b2c8.42d78160-4c78-479e-8be7-61d5e55dac0d";
const ETAG: &str = "IjYxMDA4ZDQ2LTAwMDAtMDEwMC0wMDAwLTVlOGZlM2QxMDAwMCI=";

// ---- 4.1 connect info -------------------------------------------------------------------------

#[test]
fn v4_1_client_id_and_username() {
    let info = DpsConnectInfo::new("0neFEEDC0DE", "myRegistrationId");
    assert_eq!(info.client_id(), "myRegistrationId");
    assert_eq!(
        info.username().to_string(),
        "0neFEEDC0DE/registrations/myRegistrationId/api-version=2019-03-31"
    );
}

#[test]
fn v4_1_username_with_user_agent() {
    // Embedded C copies the user agent verbatim; that is our explicit verbatim option.
    let info =
        DpsConnectInfo::new("0neFEEDC0DE", "myRegistrationId").client_version_verbatim("c/1.2.3");
    assert_eq!(
        info.username().to_string(),
        "0neFEEDC0DE/registrations/myRegistrationId/api-version=2019-03-31&ClientVersion=c/1.2.3"
    );
}

#[test]
fn v4_1_topics() {
    assert_eq!(SUBSCRIBE_TOPIC, "$dps/registrations/res/#");
    assert_eq!(
        RegisterTopic::new("1").to_string(),
        "$dps/registrations/PUT/iotdps-register/?$rid=1"
    );
    assert_eq!(
        QueryTopic::new("1", OPID).to_string(),
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&operationId=4.d0a671905ea5b2c8.42d78160-4c78-479e-8be7-61d5e55dac0d"
    );
}

// ---- 4.3 response parsing ---------------------------------------------------------------------

fn row4() -> String {
    format!(
        r#"{{"operationId":"{OPID}","status":"assigned","registrationState":{{"x509":{{}},"registrationId":"myRegistrationId","createdDateTimeUtc":"2020-04-10T03:11:13.0276997Z","assignedHub":"contoso.azure-devices.net","deviceId":"my-device-id1","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2020-04-10T03:11:13.2096201Z","etag":"{ETAG}"}}}}"#
    )
}

fn row7() -> String {
    format!(
        r#"{{"operationId":"{OPID}","status":"failed","registrationState":{{"registrationId":"myRegistrationId","createdDateTimeUtc":"2020-04-10T03:11:13.0276997Z","status":"failed","errorCode":400207,"errorMessage":"Custom allocation failed with status code: 400","lastUpdatedDateTimeUtc":"2020-04-10T05:24:22.4718526Z","etag":"{ETAG}"}}}}"#
    )
}

fn operation(
    topic: &str,
    payload: &str,
) -> (u16, Option<u32>, dps_core::dps::RegistrationOperationStatus) {
    let r = Response::parse(topic, payload.as_bytes()).unwrap();
    match r.body {
        ResponseBody::Operation(op) => (r.topic.status, r.topic.retry_after, op),
        ResponseBody::Error(e) => panic!("expected an operation, got {e:?}"),
    }
}

#[test]
fn v4_3_row1_assigning() {
    let (status, retry, op) = operation(
        "$dps/registrations/res/202/?$rid=1&retry-after=3",
        &format!(r#"{{"operationId":"{OPID}","status":"assigning"}}"#),
    );
    assert_eq!(
        (status, retry, op.status),
        (202, Some(3), RegistrationStatus::Assigning)
    );
    assert_eq!(op.operation_id, OPID);
}

#[test]
fn v4_3_row2_topic_no_match() {
    let payload = format!(r#"{{"operationId":"{OPID}","status":"assigning"}}"#);
    assert_eq!(
        Response::parse("$dps/registrations/unknown", payload.as_bytes()),
        Err(ResponseError::Topic(TopicError::NoMatch))
    );
}

#[test]
fn v4_3_row3_retry_after_first() {
    let (status, retry, op) = operation(
        "$dps/registrations/res/202/?retry-after=120&$rid=1",
        &format!(
            r#"{{"operationId":"{OPID}","status":"assigning","registrationState":{{"registrationId":"myRegistrationId","status":"assigning"}}}}"#
        ),
    );
    assert_eq!(
        (status, retry, op.status),
        (202, Some(120), RegistrationStatus::Assigning)
    );
    assert_eq!(
        op.registration_state.unwrap().registration_id.as_deref(),
        Some("myRegistrationId")
    );
}

#[test]
fn v4_3_row4_assigned() {
    let (status, retry, op) = operation("$dps/registrations/res/200/?$rid=1", &row4());
    assert_eq!(
        (status, retry, op.status),
        (200, None, RegistrationStatus::Assigned)
    );
    let state = op.registration_state.unwrap();
    assert_eq!(
        state.assigned_hub.as_deref(),
        Some("contoso.azure-devices.net")
    );
    assert_eq!(state.device_id.as_deref(), Some("my-device-id1"));
    assert_eq!(state.etag.as_deref(), Some(ETAG));
    assert!(state.payload.is_none());
    assert!(state.error_code.is_none());
    assert!(state.error_message.is_none());
    assert_eq!(state.substatus.unwrap().as_str(), "initialAssignment");
    assert!(state.x509.is_some());
}

#[test]
fn v4_3_row5_error_body() {
    let r = Response::parse(
        "$dps/registrations/res/401/?$rid=1",
        br#"{"errorCode":401002,"trackingId":"8ad0463c-6427-4479-9dfa-3e8bb7003e9b","message":"Invalid certificate.","timestampUtc":"2020-04-10T05:24:22.4718526Z"}"#,
    )
    .unwrap();
    assert_eq!((r.topic.status, r.topic.retry_after), (401, None));
    let ResponseBody::Error(e) = r.body else {
        panic!("expected an error body")
    };
    assert_eq!(e.error_code, ErrorCode(401002));
    assert_eq!(
        (e.error_code.status(), e.error_code.extended()),
        (401, 401002)
    );
    assert_eq!(e.message.as_deref(), Some("Invalid certificate."));
    assert_eq!(
        e.tracking_id.as_deref(),
        Some("8ad0463c-6427-4479-9dfa-3e8bb7003e9b")
    );
    assert_eq!(
        e.timestamp_utc.as_deref(),
        Some("2020-04-10T05:24:22.4718526Z")
    );
}

#[test]
fn v4_3_row6_disabled_with_empty_operation_id() {
    let (status, _, op) = operation(
        "$dps/registrations/res/200/?$rid=1",
        r#"{"operationId":"","status":"disabled","registrationState":{"registrationId":"myRegistrationId","status":"disabled"}}"#,
    );
    assert_eq!(
        (status, op.operation_id.as_str(), op.status),
        (200, "", RegistrationStatus::Disabled)
    );
}

#[test]
fn v4_3_row7_failed() {
    let (status, _, op) = operation("$dps/registrations/res/200/?$rid=1", &row7());
    assert_eq!((status, op.status), (200, RegistrationStatus::Failed));
    let state = op.registration_state.unwrap();
    assert!(state.assigned_hub.is_none() && state.device_id.is_none());
    let code = state.error_code.unwrap();
    assert_eq!((code.status(), code.extended()), (400, 400207));
    assert_eq!(
        state.error_message.as_deref(),
        Some("Custom allocation failed with status code: 400")
    );
    assert_eq!(
        state.last_updated_date_time_utc.as_deref(),
        Some("2020-04-10T05:24:22.4718526Z")
    );
}

fn body_error(payload: &str) -> ModelError {
    match Response::parse("$dps/registrations/res/200/?$rid=1", payload.as_bytes()) {
        Err(ResponseError::Body(e)) => e,
        other => panic!("expected a body error for {payload}, got {other:?}"),
    }
}

#[test]
fn v4_3_row8_not_an_object() {
    assert!(matches!(body_error("123"), ModelError::InvalidJson(_)));
}

#[test]
fn v4_3_row9_missing_operation_id() {
    let payload = row7().replacen(&format!(r#""operationId":"{OPID}","#), "", 1);
    assert_eq!(
        body_error(&payload),
        ModelError::MissingField("operationId")
    );
}

#[test]
fn v4_3_row10_missing_status() {
    let payload = row7().replacen(
        r#""status":"failed","registrationState""#,
        r#""registrationState""#,
        1,
    );
    assert_eq!(body_error(&payload), ModelError::MissingField("status"));
}

#[test]
fn v4_3_row11_error_without_error_code() {
    let payload = r#"{"trackingId":"8ad0463c-6427-4479-9dfa-3e8bb7003e9b","message":"Invalid certificate.","timestampUtc":"2020-04-10T05:24:22.4718526Z"}"#;
    assert!(matches!(body_error(payload), ModelError::MissingField(_)));
}

#[test]
fn v4_3_row12_registration_state_not_an_object() {
    let payload =
        format!(r#"{{"operationId":"{OPID}","status":"failed","registrationState":123}}"#);
    assert!(matches!(body_error(&payload), ModelError::InvalidJson(_)));
}

#[test]
fn v4_3_row13_truncated() {
    let payload = format!(
        r#"{{"operationId":"{OPID}","registrationState":{{"registrationId":"myRegistrationId","#
    );
    assert!(matches!(body_error(&payload), ModelError::InvalidJson(_)));
}

#[test]
fn v4_3_row14_and_15_half_an_assignment() {
    let no_hub = row4().replacen(r#""assignedHub":"contoso.azure-devices.net","#, "", 1);
    assert_eq!(body_error(&no_hub), ModelError::MissingField("assignedHub"));
    let no_device = row4().replacen(r#""deviceId":"my-device-id1","#, "", 1);
    assert_eq!(body_error(&no_device), ModelError::MissingField("deviceId"));
}

#[test]
fn v4_3_row16_status_strings() {
    let bad = format!(r#"{{"operationId":"{OPID}","status":"unknown status123!@#"}}"#);
    assert!(matches!(
        Response::parse(
            "$dps/registrations/res/202/?$rid=1&retry-after=3",
            bad.as_bytes()
        ),
        Err(ResponseError::Body(ModelError::InvalidJson(_)))
    ));
    for (text, status) in [
        ("unassigned", RegistrationStatus::Unassigned),
        ("assigning", RegistrationStatus::Assigning),
        ("failed", RegistrationStatus::Failed),
        ("disabled", RegistrationStatus::Disabled),
    ] {
        let ok = format!(r#"{{"operationId":"{OPID}","status":"{text}"}}"#);
        let ResponseBody::Operation(op) = parse_body(ok.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(op.status, status);
    }
}

fn with_payload(payload_member: &str) -> String {
    let row = row4();
    let cut = row.len() - 2; // before the closing `}}` of registrationState and the body
    format!("{},{}{}", &row[..cut], payload_member, &row[cut..])
}

#[test]
fn v4_3_row17_payload_kept_verbatim() {
    let text =
        r#"{"hello":"world","o1":{"v1":123, "o2": {"v2":321}}, "arr":[1,2,3,4,5,6],"num":123}"#;
    let (_, _, op) = operation(
        "$dps/registrations/res/200/?$rid=1",
        &with_payload(&format!(r#""payload":{text}"#)),
    );
    assert_eq!(op.registration_state.unwrap().payload.unwrap().get(), text);
}

#[test]
fn v4_3_row18_empty_payload() {
    let (_, _, op) = operation(
        "$dps/registrations/res/200/?$rid=1",
        &with_payload(r#""payload":{}"#),
    );
    assert_eq!(op.registration_state.unwrap().payload.unwrap().get(), "{}");
}

#[test]
fn v4_3_row19_null_payload() {
    let (_, _, op) = operation(
        "$dps/registrations/res/200/?$rid=1",
        &with_payload(r#""payload": null "#),
    );
    assert!(op.registration_state.unwrap().payload.is_none());
}

#[test]
fn v4_3_row20_topic_without_query() {
    assert!(Response::parse("$dps/registrations/res/202", b"LOG_PAYLOAD").is_err());
    assert_eq!(
        ResponseTopic::parse("$dps/registrations/res/202"),
        Err(TopicError::MissingRid)
    );
}

#[test]
fn v4_3_operation_complete_truth_table() {
    use RegistrationStatus::*;
    assert!(!Unassigned.is_operation_complete());
    assert!(!Assigning.is_operation_complete());
    assert!(Assigned.is_operation_complete());
    assert!(Failed.is_operation_complete());
    assert!(Disabled.is_operation_complete());
}

#[test]
fn v4_3_csr_issued_chain_of_any_length() {
    let (_, _, op) = operation(
        "$dps/registrations/res/200/?$rid=1",
        &with_payload(
            r#""issuedCertificateChain":["ROOT CERT", "INTERMEDIATE CERT", "LEAF CERT"]"#,
        ),
    );
    let chain = op
        .registration_state
        .unwrap()
        .issued_certificate_chain
        .unwrap();
    assert_eq!(chain, ["ROOT CERT", "INTERMEDIATE CERT", "LEAF CERT"]);
    // Embedded C overflows past 3 entries; we accept any length.
    let many: Vec<String> = (0..10).map(|i| format!("\"C{i}\"")).collect();
    let (_, _, op) = operation(
        "$dps/registrations/res/200/?$rid=1",
        &with_payload(&format!(r#""issuedCertificateChain":[{}]"#, many.join(","))),
    );
    assert_eq!(
        op.registration_state
            .unwrap()
            .issued_certificate_chain
            .unwrap()
            .len(),
        10
    );
}

// ---- 4.4 register payloads --------------------------------------------------------------------

#[test]
fn v4_4_register_payloads() {
    assert_eq!(
        RegistrationRequest::new("myRegistrationId").to_json(),
        r#"{"registrationId":"myRegistrationId"}"#
    );
    assert_eq!(
        RegistrationRequest::new("myRegistrationId")
            .payload_json(r#"{"testData":1, "testData2":{"a":"b"}}"#)
            .unwrap()
            .to_json(),
        r#"{"registrationId":"myRegistrationId","payload":{"testData":1, "testData2":{"a":"b"}}}"#
    );
    assert_eq!(
        RegistrationRequest::new("myRegistrationId")
            .csr("this is a mock CSR")
            .to_json(),
        r#"{"registrationId":"myRegistrationId","csr":"this is a mock CSR"}"#
    );
}

#[test]
fn v4_4_python_and_csharp_bodies_are_readable() {
    // Python: sorted keys with spaces and an explicit null payload; C#: no registrationId.
    let python: RegistrationRequest =
        serde_json::from_str(r#"{"payload": null, "registrationId": "dev"}"#).unwrap();
    assert_eq!(python.registration_id.as_deref(), Some("dev"));
    assert!(python.payload.is_none());
    let csharp: RegistrationRequest = serde_json::from_str(r#"{"payload":{"a":1}}"#).unwrap();
    assert!(csharp.registration_id.is_none());
    assert_eq!(csharp.payload.unwrap().get(), r#"{"a":1}"#);
}

#[test]
fn invalid_custom_payload_is_a_typed_error() {
    assert!(matches!(
        RegistrationRequest::new("d").payload_json("{not json"),
        Err(ModelError::InvalidJson(_))
    ));
}
