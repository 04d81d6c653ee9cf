//! The hub service REST API over real HTTPS, as the official service SDKs call it: the identity
//! registry (devices, modules, If-Match), twins, direct methods, SAS authentication, and the
//! emulator-only events and cloud-to-device endpoints.

mod common;

use std::time::Duration;

use common::hub::*;
use common::*;
use serde_json::{Value, json};

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

#[tokio::test]
async fn device_identities_create_read_update_delete() {
    let emu = start().await;

    // Create with generated keys.
    let reply = hub_service(
        &emu,
        "PUT",
        "/devices/rest-1",
        Some(&json!({"deviceId": "rest-1", "status": "enabled", "authentication": {"type": "sas", "symmetricKey": {}}, "capabilities": {"iotEdge": false}})),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let device = reply.json();
    for field in [
        "deviceId",
        "generationId",
        "etag",
        "connectionState",
        "status",
        "connectionStateUpdatedTime",
        "statusUpdatedTime",
        "lastActivityTime",
        "cloudToDeviceMessageCount",
        "authentication",
        "capabilities",
    ] {
        assert!(device.get(field).is_some(), "{field} in {device}");
    }
    assert_eq!(device["connectionState"], "Disconnected");
    assert_eq!(device["authentication"]["type"], "sas");
    let primary = device["authentication"]["symmetricKey"]["primaryKey"]
        .as_str()
        .unwrap();
    assert!(primary.len() >= 24, "a key was generated");
    let etag = device["etag"].as_str().unwrap().to_owned();
    assert_eq!(reply.header("etag"), Some(quoted(&etag).as_str()));

    // Create again: conflict.
    let again = hub_service(
        &emu,
        "PUT",
        "/devices/rest-1",
        Some(&json!({"deviceId": "rest-1"})),
        &[],
    )
    .await;
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.json()["errorCode"], 409_001);

    // Read.
    let read = hub_service(&emu, "GET", "/devices/rest-1", None, &[]).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["generationId"], device["generationId"]);

    // Update with a stale etag: 412, nothing changes.
    let mut update = device.clone();
    update["status"] = json!("disabled");
    update["statusReason"] = json!("maintenance");
    let stale = hub_service(
        &emu,
        "PUT",
        "/devices/rest-1",
        Some(&update),
        &[("if-match", quoted("AAAAAAAAAAA="))],
    )
    .await;
    assert_eq!(stale.status, 412, "{stale:?}");
    assert_eq!(
        hub_service(&emu, "GET", "/devices/rest-1", None, &[])
            .await
            .json()["status"],
        "enabled"
    );

    // Update with the right etag.
    let updated = hub_service(
        &emu,
        "PUT",
        "/devices/rest-1",
        Some(&update),
        &[("if-match", quoted(&etag))],
    )
    .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    let updated = updated.json();
    assert_eq!(updated["status"], "disabled");
    assert_eq!(updated["statusReason"], "maintenance");
    assert_ne!(updated["etag"], device["etag"], "a write changes the etag");
    assert_eq!(updated["generationId"], device["generationId"]);
    assert_eq!(
        updated["authentication"]["symmetricKey"]["primaryKey"],
        primary
    );

    // List.
    hub_service(&emu, "PUT", "/devices/rest-2", Some(&json!({})), &[]).await;
    let list = hub_service(&emu, "GET", "/devices?top=10", None, &[]).await;
    assert_eq!(list.status, 200);
    let ids: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["rest-1", "rest-2"]);
    let stats = hub_service(&emu, "GET", "/statistics/devices", None, &[])
        .await
        .json();
    assert_eq!(
        stats,
        json!({"totalDeviceCount": 2, "enabledDeviceCount": 1, "disabledDeviceCount": 1})
    );

    // Delete: If-Match checked, then gone.
    let stale = hub_service(
        &emu,
        "DELETE",
        "/devices/rest-1",
        None,
        &[("if-match", quoted("nope"))],
    )
    .await;
    assert_eq!(stale.status, 412);
    let deleted = hub_service(
        &emu,
        "DELETE",
        "/devices/rest-1",
        None,
        &[("if-match", quoted("*"))], // quoted, as the Python service SDK sends it
    )
    .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let missing = hub_service(&emu, "GET", "/devices/rest-1", None, &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errorCode"], 404_001);
    let missing = hub_service(&emu, "DELETE", "/devices/rest-1", None, &[]).await;
    assert_eq!(missing.json()["errorCode"], 404_001);

    // Re-created: a new generation.
    let recreated = hub_service(&emu, "PUT", "/devices/rest-1", Some(&json!({})), &[])
        .await
        .json();
    assert_ne!(recreated["generationId"], device["generationId"]);
}

#[tokio::test]
async fn registry_input_is_validated() {
    let emu = start().await;
    for (path, body) in [
        ("/devices/bad%23id", json!({})),
        ("/devices/ok", json!({"deviceId": "other"})),
        (
            "/devices/ok",
            json!({"authentication": {"type": "sas", "symmetricKey": {"primaryKey": "c2hvcnQ="}}}),
        ),
        (
            "/devices/ok",
            json!({"authentication": {"type": "selfSigned"}}),
        ),
        ("/devices/ok", json!({"status": "sleeping"})),
    ] {
        let reply = hub_service(&emu, "PUT", path, Some(&body), &[]).await;
        assert_eq!(reply.status, 400, "{path} {body}: {reply:?}");
    }
    let reply = hub_service(&emu, "PUT", "/devices/ok", None, &[]).await;
    assert_eq!(reply.status, 400, "no body");
    let reply = hub_service(&emu, "PATCH", "/devices/ok", Some(&json!({})), &[]).await;
    assert_eq!(reply.status, 405);
    let reply = hub_service(&emu, "GET", "/twins/nobody", None, &[]).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn requests_need_a_valid_iothubowner_token() {
    let emu = start_with(|c| c.linked_hubs(["hub-a.localhost", "hub-b.localhost"])).await;
    let none = https(&emu, "GET", "/devices?api-version=2021-04-12", &[], None).await;
    assert_eq!(none.status, 401);
    let cs = &emu.info().hub_connection_string;
    let wrong_key = service_token_with("localhost", &key(9, 32), "iothubowner", unix_now() + 60);
    assert_eq!(
        hub_service_with(&emu, &wrong_key, "GET", "/devices", None, &[])
            .await
            .status,
        401
    );
    let expired = service_token_with(
        "localhost",
        connection_string_field(cs, "SharedAccessKey"),
        "iothubowner",
        unix_now() - 60,
    );
    assert_eq!(
        hub_service_with(&emu, &expired, "GET", "/devices", None, &[])
            .await
            .status,
        401
    );
    let other_host = service_token_with(
        "elsewhere.example",
        connection_string_field(cs, "SharedAccessKey"),
        "iothubowner",
        unix_now() + 60,
    );
    assert_eq!(
        hub_service_with(&emu, &other_host, "GET", "/devices", None, &[])
            .await
            .status,
        401
    );

    // #11: the DPS policy is not a policy of the hub, even with the same key.
    let dps_policy = service_token_with(
        "localhost",
        connection_string_field(cs, "SharedAccessKey"),
        "provisioningserviceowner",
        unix_now() + 60,
    );
    assert_eq!(
        hub_service_with(&emu, &dps_policy, "GET", "/devices", None, &[])
            .await
            .status,
        401
    );

    // A token for a linked hub's name addresses that hub; the emulator's name the first one.
    let for_hub_b = service_token_with(
        "hub-b.localhost",
        connection_string_field(cs, "SharedAccessKey"),
        "iothubowner",
        unix_now() + 60,
    );
    let created = hub_service_with(
        &emu,
        &for_hub_b,
        "PUT",
        "/devices/on-b",
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    assert!(emu.device("hub-b.localhost", "on-b").is_ok());
    assert!(emu.device("hub-a.localhost", "on-b").is_err());
    assert_eq!(
        hub_service(&emu, "GET", "/devices/on-b", None, &[])
            .await
            .status,
        404
    );
}

/// #11: a token whose `sr` names a resource covers that resource and what is under it, by
/// whole segments, and nothing else.
#[tokio::test]
async fn tokens_scoped_to_a_resource_cover_only_that_resource() {
    let emu = start().await;
    let cs = emu.info().hub_connection_string.clone();
    let key = connection_string_field(&cs, "SharedAccessKey").to_owned();
    for id in ["a", "ab", "b"] {
        let created = hub_service(
            &emu,
            "PUT",
            &format!("/devices/{id}"),
            Some(&json!({})),
            &[],
        )
        .await;
        assert_eq!(created.status, 200, "{created:?}");
    }
    let scoped = service_token_with("localhost/devices/a", &key, "iothubowner", unix_now() + 60);
    let status = |path: &'static str| {
        let emu = &emu;
        let scoped = scoped.clone();
        async move {
            hub_service_with(emu, &scoped, "GET", path, None, &[])
                .await
                .status
        }
    };
    assert_eq!(status("/devices/a").await, 200);
    assert_eq!(status("/devices/a/modules").await, 200);
    assert_eq!(status("/devices/ab").await, 401, "a longer segment");
    assert_eq!(status("/devices/b").await, 401, "another device");
    assert_eq!(status("/devices").await, 401, "the parent");
    assert_eq!(status("/twins/a").await, 401, "another collection");
}

#[tokio::test]
async fn twins_over_rest_with_etags() {
    let emu = start().await;
    let key = create_sas_device(&emu, "twin-rest").await;
    let mut conn = hub_device(&emu, "twin-rest", &key).await;
    conn.subscribe_ok("$iothub/twin/PATCH/properties/desired/#")
        .await;
    conn.subscribe_ok("$iothub/twin/res/#").await;
    conn.twin_patch("1", &json!({"battery": 80})).await;

    let twin = hub_service(&emu, "GET", "/twins/twin-rest", None, &[]).await;
    assert_eq!(twin.status, 200);
    let twin_json = twin.json();
    assert_eq!(twin_json["deviceId"], "twin-rest");
    assert_eq!(twin_json["properties"]["reported"]["battery"], 80);
    assert_eq!(twin_json["properties"]["desired"]["$version"], 1);
    assert_eq!(twin_json["connectionState"], "Connected");
    let etag = twin_json["etag"].as_str().unwrap().to_owned();
    assert_eq!(twin.header("etag"), Some(quoted(&etag).as_str()));

    // A stale etag: 412.
    let patch = json!({"properties": {"desired": {"fan": "on"}}, "tags": {"room": "42"}});
    let stale = hub_service(
        &emu,
        "PATCH",
        "/twins/twin-rest",
        Some(&patch),
        &[("if-match", quoted("AAAAAAAAAAE="))],
    )
    .await;
    assert_eq!(stale.status, 412, "{stale:?}");

    // The current etag: merged, pushed to the device.
    let updated = hub_service(
        &emu,
        "PATCH",
        "/twins/twin-rest",
        Some(&patch),
        &[("if-match", quoted(&etag))],
    )
    .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    let updated = updated.json();
    assert_eq!(updated["properties"]["desired"]["fan"], "on");
    assert_eq!(updated["tags"]["room"], "42");
    assert_ne!(updated["etag"].as_str().unwrap(), etag);
    let (topic, body) = conn.expect_publish().await;
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=2");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"fan": "on", "$version": 2})
    );

    // Replace (PUT): members not given are removed, and the device is told.
    let replaced = hub_service(
        &emu,
        "PUT",
        "/twins/twin-rest",
        Some(&json!({"properties": {"desired": {"speed": 3, "$version": 2}}})),
        &[("if-match", "*".into())],
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let replaced = replaced.json();
    assert_eq!(replaced["properties"]["desired"]["speed"], 3);
    assert!(replaced["properties"]["desired"].get("fan").is_none());
    assert_eq!(replaced["tags"], json!({}));
    let (_, body) = conn.expect_publish().await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"fan": null, "speed": 3, "$version": 3})
    );

    // Reserved names are refused.
    let bad = hub_service(
        &emu,
        "PATCH",
        "/twins/twin-rest",
        Some(&json!({"properties": {"desired": {"a.b": 1}}})),
        &[],
    )
    .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn direct_methods_over_rest() {
    let emu = start().await;
    let key = create_sas_device(&emu, "method-rest").await;

    let offline = hub_service(
        &emu,
        "POST",
        "/twins/method-rest/methods",
        Some(&json!({"methodName": "reboot", "payload": null, "responseTimeoutInSeconds": 5})),
        &[],
    )
    .await;
    assert_eq!(offline.status, 404, "{offline:?}");
    assert_eq!(offline.json()["errorCode"], 404_103);

    let mut conn = hub_device(&emu, "method-rest", &key).await;
    conn.subscribe_ok("$iothub/methods/POST/#").await;
    let request = json!({"methodName": "getLog", "payload": {"lines": 2}, "responseTimeoutInSeconds": 5, "connectTimeoutInSeconds": 0});
    let call = hub_service(
        &emu,
        "POST",
        "/twins/method-rest/methods",
        Some(&request),
        &[],
    );
    let device = async {
        let (topic, body) = conn.expect_publish().await;
        assert!(
            topic.starts_with("$iothub/methods/POST/getLog/?$rid="),
            "{topic}"
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"lines": 2})
        );
        let rid = topic.rsplit('=').next().unwrap().to_owned();
        assert!(
            conn.publish(
                &format!("$iothub/methods/res/200/?$rid={rid}"),
                br#"["a","b"]"#.to_vec()
            )
            .await
        );
    };
    let (reply, ()) = tokio::join!(call, device);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json(), json!({"status": 200, "payload": ["a", "b"]}));

    let timeout = hub_service(
        &emu,
        "POST",
        "/twins/method-rest/methods",
        Some(&json!({"methodName": "slow", "responseTimeoutInSeconds": 1})),
        &[],
    )
    .await;
    assert_eq!(timeout.status, 504, "{timeout:?}");
    assert_eq!(timeout.json()["errorCode"], 504_101);

    let invalid = hub_service(
        &emu,
        "POST",
        "/twins/method-rest/methods",
        Some(&json!({"methodName": ""})),
        &[],
    )
    .await;
    assert_eq!(invalid.status, 400);
}

#[tokio::test]
async fn modules_over_rest() {
    let emu = start().await;
    create_sas_device(&emu, "mod-host").await;
    let created = hub_service(
        &emu,
        "PUT",
        "/devices/mod-host/modules/m1",
        Some(&json!({"moduleId": "m1", "deviceId": "mod-host", "managedBy": "me"})),
        &[],
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    let module = created.json();
    assert_eq!(module["moduleId"], "m1");
    assert_eq!(module["managedBy"], "me");
    assert!(module["authentication"]["symmetricKey"]["primaryKey"].is_string());
    let conflict = hub_service(
        &emu,
        "PUT",
        "/devices/mod-host/modules/m1",
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(conflict.status, 409);
    let list = hub_service(&emu, "GET", "/devices/mod-host/modules", None, &[])
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let twin = hub_service(&emu, "GET", "/twins/mod-host/modules/m1", None, &[])
        .await
        .json();
    assert_eq!(twin["moduleId"], "m1");
    let patched = hub_service(
        &emu,
        "PATCH",
        "/twins/mod-host/modules/m1",
        Some(&json!({"properties": {"desired": {"x": 1}}})),
        &[],
    )
    .await;
    assert_eq!(patched.json()["properties"]["desired"]["x"], 1);
    let orphan = hub_service(
        &emu,
        "PUT",
        "/devices/nobody/modules/m1",
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(orphan.json()["errorCode"], 404_001);
    assert_eq!(
        hub_service(&emu, "DELETE", "/devices/mod-host/modules/m1", None, &[])
            .await
            .status,
        204
    );
    let gone = hub_service(&emu, "GET", "/devices/mod-host/modules/m1", None, &[]).await;
    assert_eq!(gone.json()["errorCode"], 404_010);
}

#[tokio::test]
async fn emulator_endpoints_events_and_c2d() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "feed-dev").await;
    let mut conn = hub_device(&emu, "feed-dev", &key).await;
    conn.telemetry("feed-dev", "%24.ct=text%2Fplain&color=blue", b"hello")
        .await;

    let feed = hub_service(
        &emu,
        "GET",
        &format!("/emulator/hubs/{hub}/events"),
        None,
        &[],
    )
    .await;
    assert_eq!(feed.status, 200, "{feed:?}");
    let feed = feed.json();
    let events = feed["events"].as_array().unwrap();
    let lifecycle = &events[0];
    assert_eq!(lifecycle["kind"], "deviceLifecycle");
    assert_eq!(lifecycle["properties"]["opType"], "createDeviceIdentity");
    let telemetry = events.iter().find(|e| e["kind"] == "telemetry").unwrap();
    assert_eq!(telemetry["deviceId"], "feed-dev");
    assert_eq!(telemetry["body"]["text"], "hello");
    assert_eq!(telemetry["properties"]["color"], "blue");
    assert_eq!(telemetry["systemProperties"]["contentType"], "text/plain");
    let last = feed["lastSequenceNumber"].as_u64().unwrap();
    let later = hub_service(
        &emu,
        "GET",
        &format!("/emulator/hubs/{hub}/events?since={last}"),
        None,
        &[],
    )
    .await
    .json();
    assert_eq!(later["events"], json!([]));
    let unknown = hub_service(
        &emu,
        "GET",
        "/emulator/hubs/nohub.example/events",
        None,
        &[],
    )
    .await;
    assert_eq!(unknown.status, 404);

    conn.subscribe_ok("devices/feed-dev/messages/devicebound/#")
        .await;
    let sent = hub_service(
        &emu,
        "POST",
        &format!("/emulator/hubs/{hub}/devices/feed-dev/c2d"),
        Some(&json!({"body": "turn on", "messageId": "c2d-1", "properties": {"level": 3}})),
        &[],
    )
    .await;
    assert_eq!(sent.status, 200, "{sent:?}");
    assert_eq!(sent.json()["messageId"], "c2d-1");
    let (topic, body) = conn.expect_publish().await;
    assert_eq!(body, b"turn on");
    let message = dps_core::hub::parse_c2d_topic(&topic).unwrap();
    assert_eq!(
        message.properties.value("level").unwrap().as_deref(),
        Some("3")
    );

    let binary = hub_service(
        &emu,
        "POST",
        &format!("/emulator/hubs/{hub}/devices/feed-dev/c2d"),
        Some(&json!({"bodyBase64": "AAEC"})),
        &[],
    )
    .await;
    assert_eq!(binary.status, 200);
    let (_, body) = conn.expect_publish().await;
    assert_eq!(body, vec![0, 1, 2]);

    let missing = hub_service(
        &emu,
        "POST",
        &format!("/emulator/hubs/{hub}/devices/nobody/c2d"),
        Some(&json!({"body": "x"})),
        &[],
    )
    .await;
    assert_eq!(missing.status, 404);
    // The DPS emulator endpoints are still served.
    let faults = service(&emu, "GET", "/emulator/faults", None, &[]).await;
    assert_eq!(faults.status, 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
