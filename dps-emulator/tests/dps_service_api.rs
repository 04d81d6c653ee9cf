//! The DPS service REST API over real HTTPS: individual enrollments, enrollment groups,
//! attestation mechanisms, ETags, queries with continuation, bulk operations, registration
//! records, SAS authentication of the service policies, and the emulator-only endpoints.

mod common;

use base64::Engine as _;
use common::*;
use dps_emulator::Faults;
use serde_json::{Value, json};
use sha1::Digest as _;

fn assert_error(reply: &HttpReply, status: u16, code: u32) {
    assert_eq!(reply.status, status, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(
        body["trackingId"].is_string() && body["message"].is_string(),
        "{body}"
    );
    assert_service_time(body["timestampUtc"].as_str().unwrap());
    assert_eq!(
        reply.header("x-ms-error-code"),
        Some(code.to_string().as_str())
    );
}

fn decoded_len(b64: &Value) -> usize {
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().unwrap())
        .unwrap()
        .len()
}

// ---------------------------------------------------------------------------------------------
// Individual enrollments

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn individual_enrollments_put_get_delete() {
    let emu = start().await;
    let body = json!({
        "registrationId": "svc-dev",
        "deviceId": "svc-device",
        "attestation": { "type": "symmetricKey" },
        "initialTwin": { "tags": { "a": 1 }, "properties": { "desired": { "b": 2 } } },
        "optionalDeviceInformation": { "color": "blue" },
        "capabilities": { "iotEdge": false },
        "reprovisionPolicy": { "updateHubAssignment": true, "migrateDeviceData": false },
        "allocationPolicy": "hashed",
    });
    let put = service(&emu, "PUT", "/enrollments/svc-dev", Some(&body), &[]).await;
    assert_eq!(put.status, 200, "{put:?}");
    let created = put.json();
    assert_eq!(created["registrationId"], "svc-dev");
    assert_eq!(created["deviceId"], "svc-device");
    assert_eq!(created["provisioningStatus"], "enabled");
    assert_eq!(created["initialTwin"]["tags"]["a"], 1);
    assert_eq!(created["optionalDeviceInformation"]["color"], "blue");
    assert_eq!(created["reprovisionPolicy"]["migrateDeviceData"], false);
    assert_service_time(created["createdDateTimeUtc"].as_str().unwrap());
    assert_service_time(created["lastUpdatedDateTimeUtc"].as_str().unwrap());
    // Keys are generated when omitted: 64 random bytes each.
    let keys = &created["attestation"]["symmetricKey"];
    assert_eq!(decoded_len(&keys["primaryKey"]), 64);
    assert_eq!(decoded_len(&keys["secondaryKey"]), 64);
    assert_ne!(keys["primaryKey"], keys["secondaryKey"]);
    let etag = created["etag"].as_str().unwrap().to_owned();
    assert_eq!(put.header("etag"), Some(etag.as_str()));

    let get = service(&emu, "GET", "/enrollments/svc-dev", None, &[]).await;
    assert_eq!(get.status, 200);
    assert_eq!(get.json(), created);
    assert_eq!(get.header("etag"), Some(etag.as_str()));
    // Ids compare without case.
    assert_eq!(
        service(&emu, "GET", "/enrollments/SVC-DEV", None, &[])
            .await
            .status,
        200
    );
    // The Rust API sees the same record.
    assert_eq!(
        emu.enrollment("svc-dev").unwrap().settings.etag.as_deref(),
        Some(etag.as_str())
    );

    // The attestation mechanism returns the keys.
    let mechanism = service(
        &emu,
        "POST",
        "/enrollments/svc-dev/attestationmechanism",
        None,
        &[],
    )
    .await;
    assert_eq!(mechanism.status, 200, "{mechanism:?}");
    assert_eq!(mechanism.json()["type"], "symmetricKey");
    assert_eq!(mechanism.json()["symmetricKey"], *keys);

    // Given keys are kept; invalid ones are refused.
    let given = sym_enrollment("svc-dev-2", &key(1, 32), &key(2, 32));
    let put = service(&emu, "PUT", "/enrollments/svc-dev-2", Some(&given), &[]).await;
    assert_eq!(
        put.json()["attestation"]["symmetricKey"],
        given["attestation"]["symmetricKey"]
    );
    let bad = sym_enrollment("svc-dev-3", "not base64 !!", &key(2, 32));
    assert_error(
        &service(&emu, "PUT", "/enrollments/svc-dev-3", Some(&bad), &[]).await,
        400,
        400_004,
    );

    let delete = service(&emu, "DELETE", "/enrollments/svc-dev", None, &[]).await;
    assert_eq!(delete.status, 204, "{delete:?}");
    assert!(delete.body.is_empty());
    assert_error(
        &service(&emu, "GET", "/enrollments/svc-dev", None, &[]).await,
        404,
        404_202,
    );
    assert_error(
        &service(&emu, "DELETE", "/enrollments/svc-dev", None, &[]).await,
        404,
        404_202,
    );
    assert_error(
        &service(
            &emu,
            "POST",
            "/enrollments/svc-dev/attestationmechanism",
            None,
            &[],
        )
        .await,
        404,
        404_202,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_created_over_rest_provisions_a_device() {
    let emu = start().await;
    let put = service(
        &emu,
        "PUT",
        "/enrollments/rest-dev",
        Some(&json!({ "registrationId": "rest-dev", "attestation": { "type": "symmetricKey" } })),
        &[],
    )
    .await;
    let primary = put.json()["attestation"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut dev = sas_device(&emu, "rest-dev", &primary).await;
    dev.provision_ok().await;

    // GET now carries the registration state; the query does not.
    let get = service(&emu, "GET", "/enrollments/rest-dev", None, &[]).await;
    assert_eq!(get.json()["registrationState"]["status"], "assigned");
    assert_eq!(get.json()["registrationState"]["assignedHub"], "localhost");
    let query = service(
        &emu,
        "POST",
        "/enrollments/query",
        Some(&json!({ "query": "*" })),
        &[],
    )
    .await;
    assert!(query.json()[0].get("registrationState").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_summarized_never_echoed() {
    let emu = start().await;
    let device = self_signed("cert-dev");
    let put = service(
        &emu,
        "PUT",
        "/enrollments/cert-dev",
        Some(&x509_enrollment("cert-dev", &device.pem)),
        &[],
    )
    .await;
    assert_eq!(put.status, 200, "{put:?}");
    let get = service(&emu, "GET", "/enrollments/cert-dev", None, &[]).await;
    for reply in [&put, &get] {
        let text = String::from_utf8_lossy(&reply.body);
        assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
        let primary = &reply.json()["attestation"]["x509"]["clientCertificates"]["primary"];
        assert!(primary.get("certificate").is_none(), "{primary}");
        let info = &primary["info"];
        assert!(
            info["subjectName"]
                .as_str()
                .unwrap()
                .contains("CN=cert-dev")
        );
        assert_eq!(
            info["sha1Thumbprint"],
            hex(&sha1::Sha1::digest(&device.chain[0]))
        );
        assert_eq!(
            info["sha256Thumbprint"],
            hex(&sha2::Sha256::digest(&device.chain[0]))
        );
        assert_service_time(info["notBeforeUtc"].as_str().unwrap());
        assert_eq!(info["version"], 3);
    }

    // Groups: signing certificates, as base64 DER as well as PEM.
    let root = Ca::root("Service Root");
    let der_b64 = base64::engine::general_purpose::STANDARD.encode(&root.der);
    let put = service(
        &emu,
        "PUT",
        "/enrollmentGroups/cert-group",
        Some(&x509_group("cert-group", &der_b64)),
        &[],
    )
    .await;
    assert_eq!(put.status, 200, "{put:?}");
    let get = service(&emu, "GET", "/enrollmentGroups/cert-group", None, &[]).await;
    let primary = &get.json()["attestation"]["x509"]["signingCertificates"]["primary"];
    assert!(primary.get("certificate").is_none());
    assert_eq!(
        primary["info"]["sha1Thumbprint"],
        hex(&sha1::Sha1::digest(&root.der))
    );
    assert!(!String::from_utf8_lossy(&get.body).contains(&der_b64[..40]));
    // The stored enrollment still verifies devices.
    let intermediate = root.intermediate("Service Intermediate");
    let identity = intermediate
        .leaf("cert-member")
        .presenting(&[&intermediate.der]);
    let mut dev = x509_device(&emu, "cert-member", &identity).await.unwrap();
    dev.provision_ok().await;

    // Text that is no certificate is refused; an X.509 group needs certificates.
    let bad = x509_enrollment(
        "bad-cert",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    );
    assert_error(
        &service(&emu, "PUT", "/enrollments/bad-cert", Some(&bad), &[]).await,
        400,
        400_004,
    );
    let empty = json!({ "enrollmentGroupId": "g", "attestation": { "type": "x509", "x509": {} } });
    assert_error(
        &service(&emu, "PUT", "/enrollmentGroups/g", Some(&empty), &[]).await,
        400,
        400_004,
    );
}

// ---------------------------------------------------------------------------------------------
// Enrollment groups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_groups_put_get_delete() {
    let emu = start().await;
    let body = json!({
        "enrollmentGroupId": "svc-group",
        "attestation": { "type": "symmetricKey" },
        "provisioningStatus": "disabled",
        "iotHubHostName": "localhost",
    });
    let put = service(&emu, "PUT", "/enrollmentGroups/svc-group", Some(&body), &[]).await;
    assert_eq!(put.status, 200, "{put:?}");
    let created = put.json();
    assert_eq!(created["enrollmentGroupId"], "svc-group");
    assert_eq!(created["provisioningStatus"], "disabled");
    let keys = created["attestation"]["symmetricKey"].clone();
    assert_eq!(decoded_len(&keys["primaryKey"]), 64);
    assert_eq!(decoded_len(&keys["secondaryKey"]), 64);

    let get = service(&emu, "GET", "/enrollmentGroups/svc-group", None, &[]).await;
    assert_eq!(get.json(), created);
    let mechanism = service(
        &emu,
        "POST",
        "/enrollmentGroups/svc-group/attestationmechanism",
        None,
        &[],
    )
    .await;
    assert_eq!(mechanism.json()["symmetricKey"], keys);

    // A body id that differs from the path is refused.
    let other = json!({ "enrollmentGroupId": "other", "attestation": { "type": "symmetricKey" } });
    assert_error(
        &service(
            &emu,
            "PUT",
            "/enrollmentGroups/svc-group",
            Some(&other),
            &[],
        )
        .await,
        400,
        400_004,
    );

    assert_eq!(
        service(&emu, "DELETE", "/enrollmentGroups/svc-group", None, &[])
            .await
            .status,
        204
    );
    assert_error(
        &service(&emu, "GET", "/enrollmentGroups/svc-group", None, &[]).await,
        404,
        404_202,
    );
    assert!(emu.enrollment_group("svc-group").is_err());
}

// ---------------------------------------------------------------------------------------------
// ETags

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_guards_writes_and_deletes() {
    let emu = start().await;
    for (path, body) in [
        (
            "/enrollments/etag-dev",
            json!({ "registrationId": "etag-dev", "attestation": { "type": "symmetricKey" } }),
        ),
        (
            "/enrollmentGroups/etag-group",
            json!({ "enrollmentGroupId": "etag-group", "attestation": { "type": "symmetricKey" } }),
        ),
    ] {
        let first = service(&emu, "PUT", path, Some(&body), &[]).await;
        let etag = first.json()["etag"].as_str().unwrap().to_owned();
        let if_match = |value: &str| vec![("if-match", value.to_owned())];

        let wrong = service(&emu, "PUT", path, Some(&body), &if_match("\"wrong\"")).await;
        assert_error(&wrong, 412, 412_001);
        assert!(
            wrong.json()["message"]
                .as_str()
                .unwrap()
                .contains("RFC7232")
        );

        let star = service(&emu, "PUT", path, Some(&body), &if_match("*")).await;
        assert_eq!(star.status, 200, "{path}: {star:?}");
        let etag2 = star.json()["etag"].as_str().unwrap().to_owned();
        assert_ne!(etag2, etag, "every write changes the etag");
        assert_eq!(
            star.json()["createdDateTimeUtc"],
            first.json()["createdDateTimeUtc"]
        );

        // The old etag is stale now; the current one matches (quoted or not).
        assert_error(
            &service(&emu, "PUT", path, Some(&body), &if_match(&etag)).await,
            412,
            412_001,
        );
        let right = service(&emu, "PUT", path, Some(&body), &if_match(&etag2)).await;
        assert_eq!(right.status, 200, "{right:?}");
        let etag3 = right.json()["etag"].as_str().unwrap().to_owned();
        let unquoted = service(
            &emu,
            "PUT",
            path,
            Some(&body),
            &if_match(etag3.trim_matches('"')),
        )
        .await;
        assert_eq!(unquoted.status, 200, "{unquoted:?}");
        let etag4 = unquoted.json()["etag"].as_str().unwrap().to_owned();

        assert_error(
            &service(&emu, "DELETE", path, None, &if_match("\"wrong\"")).await,
            412,
            412_001,
        );
        assert_eq!(service(&emu, "GET", path, None, &[]).await.status, 200);
        let delete = service(&emu, "DELETE", path, None, &if_match(&etag4)).await;
        assert_eq!(delete.status, 204, "{delete:?}");
        assert_eq!(service(&emu, "GET", path, None, &[]).await.status, 404);
    }
}

// ---------------------------------------------------------------------------------------------
// Query and bulk

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_page_with_continuation_tokens() {
    let emu = start().await;
    let mut expected = Vec::new();
    for i in 0..5 {
        let id = format!("query-dev-{i}");
        emu.put_enrollment(
            enrollment(sym_enrollment(&id, &key(1, 32), &key(2, 32))),
            None,
        )
        .await
        .unwrap();
        expected.push(id);
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let mut headers = vec![("x-ms-max-item-count", "2".to_owned())];
        if let Some(token) = &continuation {
            headers.push(("x-ms-continuation", token.clone()));
        }
        let page = service(
            &emu,
            "POST",
            "/enrollments/query",
            Some(&json!({ "query": "*" })),
            &headers,
        )
        .await;
        assert_eq!(page.status, 200, "{page:?}");
        assert_eq!(page.header("x-ms-item-type"), Some("Enrollment"));
        assert_eq!(page.header("x-ms-max-item-count"), Some("2"));
        let items = page.json();
        let items = items.as_array().unwrap();
        pages.push(items.len());
        for item in items {
            assert!(item["attestation"]["symmetricKey"].is_object());
            seen.push(item["registrationId"].as_str().unwrap().to_owned());
        }
        continuation = page.header("x-ms-continuation").map(str::to_owned);
        if continuation.is_none() {
            break;
        }
        assert!(pages.len() < 10, "the continuation never ends");
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen, expected);

    // Without a page size everything comes at once; a bad token is a bad request.
    let all = service(
        &emu,
        "POST",
        "/enrollments/query",
        Some(&json!({ "query": "*" })),
        &[],
    )
    .await;
    assert_eq!(all.json().as_array().unwrap().len(), 5);
    assert_eq!(all.header("x-ms-continuation"), None);
    assert_error(
        &service(
            &emu,
            "POST",
            "/enrollments/query",
            Some(&json!({ "query": "*" })),
            &[("x-ms-continuation", "not-a-token".to_owned())],
        )
        .await,
        400,
        400_004,
    );

    // Groups page the same way.
    for i in 0..3 {
        emu.put_enrollment_group(
            group(sym_group(&format!("qg-{i}"), &key(3, 32), &key(4, 32))),
            None,
        )
        .await
        .unwrap();
    }
    let page = service(
        &emu,
        "POST",
        "/enrollmentGroups/query",
        Some(&json!({ "query": "*" })),
        &[("x-ms-max-item-count", "2".to_owned())],
    )
    .await;
    assert_eq!(page.header("x-ms-item-type"), Some("EnrollmentGroup"));
    assert_eq!(page.json().as_array().unwrap().len(), 2);
    assert_eq!(page.header("x-ms-continuation"), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_operations_create_and_delete_up_to_ten() {
    let emu = start().await;
    let three: Vec<Value> = (0..3)
        .map(|i| json!({ "registrationId": format!("bulk-{i}"), "attestation": { "type": "symmetricKey" } }))
        .collect();
    let created = service(
        &emu,
        "POST",
        "/enrollments",
        Some(&json!({ "mode": "create", "enrollments": three })),
        &[],
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(
        created.json(),
        json!({ "isSuccessful": true, "errors": [] })
    );
    for i in 0..3 {
        let enrollment = emu.enrollment(&format!("bulk-{i}")).unwrap();
        assert!(
            enrollment
                .settings
                .attestation
                .symmetric_key
                .unwrap()
                .primary_key
                .is_some()
        );
    }

    // Creating what exists reports it per item.
    let again = service(
        &emu,
        "POST",
        "/enrollments",
        Some(&json!({ "mode": "create", "enrollments": [three[0].clone()] })),
        &[],
    )
    .await;
    let result = again.json();
    assert_eq!(result["isSuccessful"], false);
    assert_eq!(result["errors"][0]["registrationId"], "bulk-0");
    assert_eq!(result["errors"][0]["errorCode"], 409_001);

    // More than ten (or none) is refused as a whole.
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({ "registrationId": format!("many-{i}"), "attestation": { "type": "symmetricKey" } }))
        .collect();
    assert_error(
        &service(
            &emu,
            "POST",
            "/enrollments",
            Some(&json!({ "mode": "create", "enrollments": eleven })),
            &[],
        )
        .await,
        400,
        400_004,
    );
    assert!(emu.enrollment("many-0").is_err());
    assert_error(
        &service(
            &emu,
            "POST",
            "/enrollments",
            Some(&json!({ "mode": "create", "enrollments": [] })),
            &[],
        )
        .await,
        400,
        400_004,
    );

    // updateIfMatchETag checks each item's etag.
    let stale = json!({ "registrationId": "bulk-1", "etag": "\"stale\"", "attestation": { "type": "symmetricKey" } });
    let result = service(
        &emu,
        "POST",
        "/enrollments",
        Some(&json!({ "mode": "updateIfMatchETag", "enrollments": [stale] })),
        &[],
    )
    .await
    .json();
    assert_eq!(result["errors"][0]["errorCode"], 412_001, "{result}");

    let deleted = service(
        &emu,
        "POST",
        "/enrollments",
        Some(&json!({ "mode": "delete", "enrollments": three })),
        &[],
    )
    .await;
    assert_eq!(deleted.json()["isSuccessful"], true, "{deleted:?}");
    for i in 0..3 {
        assert!(emu.enrollment(&format!("bulk-{i}")).is_err());
    }

    // Groups in bulk.
    let groups: Vec<Value> = (0..3)
        .map(|i| json!({ "enrollmentGroupId": format!("bulk-group-{i}"), "attestation": { "type": "symmetricKey" } }))
        .collect();
    let created = service(
        &emu,
        "POST",
        "/enrollmentGroups",
        Some(&json!({ "mode": "create", "enrollmentGroups": groups })),
        &[],
    )
    .await;
    assert_eq!(created.json()["isSuccessful"], true, "{created:?}");
    assert!(emu.enrollment_group("bulk-group-2").is_ok());
    let deleted = service(
        &emu,
        "POST",
        "/enrollmentGroups",
        Some(&json!({ "mode": "delete", "enrollmentGroups": groups })),
        &[],
    )
    .await;
    assert_eq!(deleted.json()["isSuccessful"], true);
    assert!(emu.enrollment_group("bulk-group-2").is_err());
}

// ---------------------------------------------------------------------------------------------
// Registration records

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_records_get_and_delete() {
    let emu = start().await;
    let primary = key(5, 64);
    emu.put_enrollment(
        enrollment(sym_enrollment("rec-dev", &primary, &key(6, 64))),
        None,
    )
    .await
    .unwrap();
    assert_error(
        &service(&emu, "GET", "/registrations/rec-dev", None, &[]).await,
        404,
        404_201,
    );
    let mut dev = sas_device(&emu, "rec-dev", &primary).await;
    let result = dev.provision_ok().await.registration_state.unwrap();

    let get = service(&emu, "GET", "/registrations/rec-dev", None, &[]).await;
    assert_eq!(get.status, 200, "{get:?}");
    let record = get.json();
    assert_eq!(record["registrationId"], "rec-dev");
    assert_eq!(record["status"], "assigned");
    assert_eq!(record["substatus"], "initialAssignment");
    assert_eq!(record["assignedHub"], "localhost");
    assert_eq!(record["deviceId"], "rec-dev");
    assert_eq!(record["etag"].as_str(), result.etag.as_deref());
    assert_service_time(record["createdDateTimeUtc"].as_str().unwrap());

    assert_error(
        &service(
            &emu,
            "DELETE",
            "/registrations/rec-dev",
            None,
            &[("if-match", "\"wrong\"".to_owned())],
        )
        .await,
        412,
        412_001,
    );
    // The record's etag matches, quoted or not; `*` matches anything.
    let etag = record["etag"].as_str().unwrap().to_owned();
    let delete = service(
        &emu,
        "DELETE",
        "/registrations/rec-dev",
        None,
        &[("if-match", format!("\"{etag}\""))],
    )
    .await;
    assert_eq!(delete.status, 204, "{delete:?}");
    assert_error(
        &service(&emu, "GET", "/registrations/rec-dev", None, &[]).await,
        404,
        404_201,
    );
    assert!(emu.registration("rec-dev").is_err());
    assert_error(
        &service(&emu, "DELETE", "/registrations/rec-dev", None, &[]).await,
        404,
        404_201,
    );
    // Registering again creates a new record, deletable with its bare etag and with `*`.
    for if_match in ["bare", "*"] {
        let etag = dev
            .provision_ok()
            .await
            .registration_state
            .unwrap()
            .etag
            .unwrap();
        let value = if if_match == "*" {
            "*".to_owned()
        } else {
            etag
        };
        let delete = service(
            &emu,
            "DELETE",
            "/registrations/rec-dev",
            None,
            &[("if-match", value)],
        )
        .await;
        assert_eq!(delete.status, 204, "{if_match}: {delete:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_requests_need_a_valid_policy_token() {
    let emu = start().await;
    let cs = emu.info().dps_connection_string.clone();
    assert!(
        cs.contains("SharedAccessKeyName=provisioningserviceowner"),
        "{cs}"
    );
    let host = connection_string_field(&cs, "HostName").to_owned();
    let service_key = connection_string_field(&cs, "SharedAccessKey").to_owned();
    let future = unix_now() + 600;
    let path = "/enrollments/query?api-version=2021-10-01";
    let body = Some(b"{\"query\":\"*\"}".to_vec());

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("not a SAS token", Some("Bearer abc".into())),
        (
            "a malformed SAS token",
            Some("SharedAccessSignature sr=localhost&sig=".into()),
        ),
        (
            "expired",
            Some(service_token_with(
                &host,
                &service_key,
                "provisioningserviceowner",
                unix_now() - 5,
            )),
        ),
        (
            "wrong key",
            Some(service_token_with(
                &host,
                &key(7, 32),
                "provisioningserviceowner",
                future,
            )),
        ),
        (
            "wrong policy name",
            Some(service_token_with(
                &host,
                &service_key,
                "registration",
                future,
            )),
        ),
        (
            "another host",
            Some(service_token_with(
                "elsewhere.azure-devices-provisioning.net",
                &service_key,
                "provisioningserviceowner",
                future,
            )),
        ),
        (
            "a device token",
            Some(sas(&service_key, emu.id_scope(), "dev")),
        ),
        // #11: the policy must be one of this service's (the hub's owner policy is not).
        (
            "the hub's policy",
            Some(service_token_with(
                &host,
                &service_key,
                "iothubowner",
                future,
            )),
        ),
        // #11: the token's resource must cover the request, by whole segments.
        (
            "a token scoped to a hub device",
            Some(service_token_with(
                &format!("{host}/devices/x"),
                &service_key,
                "provisioningserviceowner",
                future,
            )),
        ),
        (
            "a token scoped to another enrollment",
            Some(service_token_with(
                &format!("{host}/enrollments/other"),
                &service_key,
                "provisioningserviceowner",
                future,
            )),
        ),
        (
            "a token scoped to a longer segment",
            Some(service_token_with(
                &format!("{host}/enrollmentsX"),
                &service_key,
                "provisioningserviceowner",
                future,
            )),
        ),
        (
            "a token without a policy name",
            Some(
                dps_auth::generate_sas(
                    &dps_auth::SymmetricKey::from_base64(&service_key).unwrap(),
                    &dps_core::sas::SasResource::custom(host.clone()),
                    &dps_core::sas::SasStyle::hub(),
                    future,
                )
                .unwrap()
                .into_string(),
            ),
        ),
    ];
    for (name, authorization) in cases {
        let headers: Vec<(&str, String)> = authorization
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = https(&emu, "POST", path, &headers, body.clone()).await;
        assert_eq!(reply.status, 401, "{name}: {reply:?}");
        assert_eq!(reply.json()["errorCode"], 401_002, "{name}");
    }

    // Accepted: the documented token, a host without port, and a token scoped to the
    // resource requested (a prefix by segment).
    let scoped = format!("{host}/enrollments");
    let scoped_exactly = format!("{host}/ENROLLMENTS/query");
    for (host, policy) in [
        (host.as_str(), "provisioningserviceowner"),
        ("localhost", "provisioningserviceowner"),
        ("LOCALHOST", "provisioningserviceowner"),
        (scoped.as_str(), "provisioningserviceowner"),
        (scoped_exactly.as_str(), "provisioningserviceowner"),
    ] {
        let token = service_token_with(host, &service_key, policy, future);
        let reply = https(
            &emu,
            "POST",
            path,
            &[("authorization", token)],
            body.clone(),
        )
        .await;
        assert_eq!(reply.status, 200, "{host} {policy}: {reply:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Emulator endpoints, routing and validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_and_timing_endpoints() {
    let emu = start().await;
    let get = service(&emu, "GET", "/emulator/faults", None, &[]).await;
    assert_eq!(get.status, 200, "{get:?}");
    let faults: Faults = serde_json::from_value(get.json()).unwrap();
    assert_eq!(faults, Faults::default());

    let wanted = json!({ "injectStatus": { "status": 429, "count": 2, "retryAfter": 1 }, "dropResponses": 1 });
    let put = service(&emu, "PUT", "/emulator/faults", Some(&wanted), &[]).await;
    assert_eq!(put.status, 200, "{put:?}");
    let now = emu.faults();
    assert_eq!(now.inject_status.unwrap().count, 2);
    assert_eq!(now.drop_responses, 1);
    let get = service(&emu, "GET", "/emulator/faults", None, &[]).await;
    assert_eq!(get.json()["injectStatus"]["status"], 429);
    assert_eq!(get.json()["dropResponses"], 1);

    // Unknown knobs are refused, not ignored; the endpoint is authenticated like the rest.
    let typo = json!({ "dropResponse": 1 });
    assert_error(
        &service(&emu, "PUT", "/emulator/faults", Some(&typo), &[]).await,
        400,
        400_004,
    );
    assert_eq!(
        https(&emu, "GET", "/emulator/faults", &[], None)
            .await
            .status,
        401
    );

    // The injected faults reach devices.
    let primary = key(8, 64);
    emu.put_enrollment(
        enrollment(sym_enrollment("knob-dev", &primary, &key(9, 64))),
        None,
    )
    .await
    .unwrap();
    let mut dev = sas_device(&emu, "knob-dev", &primary).await;
    dev.send_register("1", "").await;
    assert!(
        dev.next_publish(std::time::Duration::from_secs(1))
            .await
            .is_none(),
        "dropped"
    );
    assert_eq!(dev.register("2", "").await.status(), 429);
    let reset = service(&emu, "PUT", "/emulator/faults", Some(&json!({})), &[]).await;
    assert_eq!(reset.status, 200);

    // Timing: zero polls answer the register with the result.
    let timing = json!({ "retryAfterSeconds": 0, "pollsBeforeAssignment": 0 });
    let put = service(&emu, "PUT", "/emulator/timing", Some(&timing), &[]).await;
    assert_eq!(put.status, 204, "{put:?}");
    assert_eq!(dev.register("3", "").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_bad_json_and_invalid_ids_are_refused() {
    let emu = start().await;
    let unknown = service(&emu, "GET", "/nothing/here", None, &[]).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert_eq!(unknown.json()["errorCode"], 404_000);
    let reply = service(&emu, "PATCH", "/enrollments/x", Some(&json!({})), &[]).await;
    assert_error(&reply, 405, 405_000);

    let bad_json = https(
        &emu,
        "PUT",
        "/enrollments/x?api-version=2021-10-01",
        &[("authorization", service_token(&emu))],
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_error(&bad_json, 400, 400_004);
    let missing_attestation = json!({ "registrationId": "x" });
    assert_error(
        &service(
            &emu,
            "PUT",
            "/enrollments/x",
            Some(&missing_attestation),
            &[],
        )
        .await,
        400,
        400_004,
    );

    let long = "a".repeat(129);
    for (path_id, id) in [
        ("-starts-with-dash", "-starts-with-dash"),
        ("has%20space", "has space"),
        ("bad!char", "bad!char"),
        ("ends-with.", "ends-with."),
        (long.as_str(), long.as_str()),
    ] {
        let body = json!({ "registrationId": id, "attestation": { "type": "symmetricKey" } });
        let reply = service(
            &emu,
            "PUT",
            &format!("/enrollments/{path_id}"),
            Some(&body),
            &[],
        )
        .await;
        assert_error(&reply, 400, 400_004);
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("registrationId"),
            "{id}: {reply:?}"
        );
    }
    // The longest valid id is fine, and the body may leave the id to the path.
    let id = "a".repeat(128);
    let body = json!({ "registrationId": id, "attestation": { "type": "symmetricKey" } });
    let reply = service(&emu, "PUT", &format!("/enrollments/{id}"), Some(&body), &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = json!({ "registrationId": "", "attestation": { "type": "symmetricKey" } });
    let reply = service(&emu, "PUT", "/enrollments/path-only", Some(&body), &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["registrationId"], "path-only");
    // A body id that differs from the path is refused.
    let other = json!({ "registrationId": "other", "attestation": { "type": "symmetricKey" } });
    assert_error(
        &service(&emu, "PUT", "/enrollments/mine", Some(&other), &[]).await,
        400,
        400_004,
    );
    let invalid_device = json!({
        "registrationId": "mine",
        "deviceId": "bad/device",
        "attestation": { "type": "symmetricKey" },
    });
    assert_error(
        &service(&emu, "PUT", "/enrollments/mine", Some(&invalid_device), &[]).await,
        400,
        400_004,
    );
    assert!(emu.enrollment("mine").is_err());
}
