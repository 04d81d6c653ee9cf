//! #15 item 1: the hub's JSON keeps members in the order they were written, with `$version`
//! (and `$metadata`) where the real service puts them. Each shape is pinned byte for byte
//! against the captures of the real service in the Azure Embedded C SDK's
//! `sdk/samples/iot/docs/how_to_iot_hub_samples_vxworks.md` (whose parser stops at `$version`,
//! so a `$version`-first document hides every property from it).

mod common;

use common::hub::*;
use common::*;
use serde_json::{Value, json};

/// The device twin GET and the desired-properties notification, exactly as the capture shows
/// them: `{"desired":{"device_count":20,"$version":3},"reported":{"device_count":0,"$version":5}}`
/// and `{"device_count":100,"$version":4}`.
#[tokio::test]
async fn device_twin_documents_match_the_service_captures_byte_for_byte() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-order").await;
    let mut conn = hub_device(&emu, "dev-order", &key).await;
    conn.subscribe_ok("$iothub/twin/res/#").await;

    // Desired $version 1 -> 3, reported $version 1 -> 5, as in the capture.
    for count in [10, 20] {
        emu.patch_desired(&hub, "dev-order", json!({ "device_count": count }))
            .await
            .unwrap();
    }
    for (rid, count) in [("r1", 3), ("r2", 2), ("r3", 1), ("r4", 0)] {
        let topic = conn
            .twin_patch(rid, &json!({ "device_count": count }))
            .await;
        assert!(topic.starts_with("$iothub/twin/res/204/"), "{topic}");
    }

    assert!(
        conn.publish("$iothub/twin/GET/?$rid=g1", b" ".to_vec())
            .await
    );
    let (topic, body) = conn.expect_publish().await;
    assert_eq!(topic, "$iothub/twin/res/200/?$rid=g1");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"desired":{"device_count":20,"$version":3},"reported":{"device_count":0,"$version":5}}"#
    );

    conn.subscribe_ok("$iothub/twin/PATCH/properties/desired/#")
        .await;
    emu.patch_desired(&hub, "dev-order", json!({ "device_count": 100 }))
        .await
        .unwrap();
    let (topic, body) = conn.expect_publish().await;
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=4");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"device_count":100,"$version":4}"#
    );
}

/// Members stay in the order they were first written (not sorted), deleting one keeps the
/// order of the others, and the order survives a restart of the emulator.
#[tokio::test]
async fn property_order_is_write_order_and_survives_deletes_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = || dps_emulator::EmulatorConfig::new(dir.path()).behaviour(fast());
    let emu = dps_emulator::Emulator::start(config()).await.unwrap();
    let key = create_sas_device(&emu, "dev-order").await;
    {
        let mut conn = hub_device(&emu, "dev-order", &key).await;
        conn.subscribe_ok("$iothub/twin/res/#").await;
        let patch = json!({"zeta": 1, "alpha": {"y": 1, "b": 2}, "mid": 3, "beta": 4});
        assert!(conn.twin_patch("p1", &patch).await.contains("/204/"));
        let topic = conn
            .twin_patch("p2", &json!({"alpha": {"a": 0}, "mid": null, "omega": 5}))
            .await;
        assert!(topic.contains("/204/"), "{topic}");
        assert!(
            conn.publish("$iothub/twin/GET/?$rid=g", b" ".to_vec())
                .await
        );
        let (_, body) = conn.expect_publish().await;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"desired":{"$version":1},"reported":{"zeta":1,"alpha":{"y":1,"b":2,"a":0},"beta":4,"omega":5,"$version":3}}"#
        );
    }

    emu.shutdown().await;
    let emu = dps_emulator::Emulator::start(config()).await.unwrap();
    let mut conn = hub_device(&emu, "dev-order", &key).await;
    conn.subscribe_ok("$iothub/twin/res/#").await;
    assert!(
        conn.publish("$iothub/twin/GET/?$rid=g", b" ".to_vec())
            .await
    );
    let (_, body) = conn.expect_publish().await;
    assert!(
        String::from_utf8(body).unwrap().contains(
            r#""reported":{"zeta":1,"alpha":{"y":1,"b":2,"a":0},"beta":4,"omega":5,"$version":3}"#
        ),
        "order kept across a restart"
    );
}

/// The service API's twin (`GET /twins/{id}`): the identity's members in the service's order,
/// and in each section the properties first, then `$metadata`, then `$version`.
#[tokio::test]
async fn service_twin_puts_metadata_and_version_after_the_properties() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    create_sas_device(&emu, "dev-svc").await;
    emu.patch_desired(
        &hub,
        "dev-svc",
        json!({"telemetryInterval": 30, "alarm": true}),
    )
    .await
    .unwrap();

    let reply = hub_service(&emu, "GET", "/twins/dev-svc", None, &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let text = String::from_utf8(reply.body.clone()).unwrap();
    let desired_at = text.find(r#""desired":{"telemetryInterval":30,"alarm":true,"$metadata":{"#);
    assert!(desired_at.is_some(), "{text}");
    assert!(
        text.contains(r#"},"$version":2},"reported":{"$metadata":{"#),
        "{text}"
    );
    // The top-level members in the order the service writes them.
    let order = [
        "\"deviceId\"",
        "\"etag\"",
        "\"deviceEtag\"",
        "\"status\"",
        "\"statusUpdateTime\"",
        "\"connectionState\"",
        "\"lastActivityTime\"",
        "\"cloudToDeviceMessageCount\"",
        "\"authenticationType\"",
        "\"x509Thumbprint\"",
        "\"version\"",
        "\"tags\"",
        "\"properties\"",
        "\"capabilities\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|name| {
            text.find(name)
                .unwrap_or_else(|| panic!("{name} in {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");

    // A PATCH from a service client keeps its member order too.
    let reply = hub_service(
        &emu,
        "PATCH",
        "/twins/dev-svc",
        Some(&json!({"properties": {"desired": {"z": 1, "a": 2}}})),
        &[("if-match", "*".to_owned())],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let twin: Value = reply.json();
    let names: Vec<&String> = twin["properties"]["desired"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        names,
        [
            "telemetryInterval",
            "alarm",
            "z",
            "a",
            "$metadata",
            "$version"
        ]
    );
}

/// A direct method's payload reaches the device in the order the service client wrote it, and
/// the device's answer reaches the service client in the order the device wrote it.
#[tokio::test]
async fn method_payloads_keep_their_member_order_both_ways() {
    let emu = start().await;
    let key = create_sas_device(&emu, "dev-method-order").await;
    let mut conn = hub_device(&emu, "dev-method-order", &key).await;
    conn.subscribe_ok("$iothub/methods/POST/#").await;

    let request = json!({
        "methodName": "configure",
        "payload": {"zeta": 1, "alpha": {"y": true, "b": null}},
        "responseTimeoutInSeconds": 5
    });
    let call = hub_service(
        &emu,
        "POST",
        "/twins/dev-method-order/methods",
        Some(&request),
        &[],
    );
    let device = async {
        let (topic, body) = conn.expect_publish().await;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"zeta":1,"alpha":{"y":true,"b":null}}"#
        );
        let rid = topic
            .strip_prefix("$iothub/methods/POST/configure/?$rid=")
            .unwrap()
            .to_owned();
        let answer = format!("$iothub/methods/res/200/?$rid={rid}");
        assert!(
            conn.publish(&answer, br#"{"z":"done","a":[2,1]}"#.to_vec())
                .await
        );
    };
    let (reply, ()) = tokio::join!(call, device);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        r#"{"status":200,"payload":{"z":"done","a":[2,1]}}"#
    );
}
