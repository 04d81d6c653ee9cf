//! The emulated IoT Hub device side over real MQTT-over-TLS connections: authentication (SAS,
//! X.509, devices provisioned by the emulator's DPS), protocol rules (QoS 2, undocumented
//! topics, one connection per identity, keep-alive, SAS expiry, 256 KB), telemetry, twins,
//! direct methods, cloud-to-device messages, modules, lifecycle events and persistence.

mod common;

use std::time::{Duration, Instant};

use common::hub::*;
use common::*;
use dps_emulator::model::{DeviceStatus, HubAuthType, HubAuthentication, X509Thumbprint};
use dps_emulator::{
    CloudToDeviceMessage, DeviceConnectionState, DeviceIdentity, EmulatorConfig, HubEventKind,
    MethodInvocation, ModuleIdentity,
};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, SubscribeReasonCode};
use serde_json::{Value, json};

const C2D: &str = "devices/{id}/messages/devicebound/#";

fn c2d_filter(device_id: &str) -> String {
    C2D.replace("{id}", device_id)
}

// ---------------------------------------------------------------------------------------------
// CONNECT

#[tokio::test]
async fn sas_connect_with_either_key_and_refusals() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let device = emu
        .create_device(
            &hub,
            DeviceIdentity {
                device_id: "dev-keys".into(),
                ..DeviceIdentity::default()
            },
        )
        .await
        .unwrap();
    let keys = device.authentication.symmetric_key.clone().unwrap();
    let (primary, secondary) = (keys.primary_key.unwrap(), keys.secondary_key.unwrap());

    for key in [&primary, &secondary] {
        let conn = hub_connect(
            &emu,
            &hub,
            "dev-keys",
            None,
            Some(hub_sas(key, &hub, "dev-keys")),
            None,
        )
        .await;
        assert!(conn.is_ok(), "either key connects");
    }

    let refused = |r: Result<Conn, ConnectReturnCode>| r.err();
    // A wrong key.
    let wrong = hub_sas(&key(99, 32), &hub, "dev-keys");
    assert_eq!(
        refused(hub_connect(&emu, &hub, "dev-keys", None, Some(wrong), None).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // An expired token.
    let expired = hub_sas_until(&primary, &hub, "dev-keys", None, unix_now() - 10);
    assert_eq!(
        refused(hub_connect(&emu, &hub, "dev-keys", None, Some(expired), None).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // A token for another device.
    let other = hub_sas(&primary, &hub, "someone-else");
    assert_eq!(
        refused(hub_connect(&emu, &hub, "dev-keys", None, Some(other), None).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // An unknown device.
    assert_eq!(
        refused(
            hub_connect(
                &emu,
                &hub,
                "nobody",
                None,
                Some(hub_sas(&primary, &hub, "nobody")),
                None
            )
            .await
        ),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // A hub the emulator does not serve.
    let stranger = hub_connect_packet(
        "dev-keys",
        &hub_username("other-hub.example", "dev-keys", None),
        Some(&hub_sas(&primary, "other-hub.example", "dev-keys")),
        60,
        true,
    );
    assert_eq!(
        refused(hub_connect_raw(&emu, None, &stranger).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // The client id must be the device id.
    let mismatch = hub_connect_packet(
        "dev-other",
        &hub_username(&hub, "dev-keys", None),
        Some(&hub_sas(&primary, &hub, "dev-keys")),
        60,
        true,
    );
    assert_eq!(
        refused(hub_connect_raw(&emu, None, &mismatch).await),
        Some(ConnectReturnCode::BadClientId)
    );
    // A malformed username.
    let malformed = hub_connect_packet("dev-keys", "just-a-host", None, 60, true);
    assert_eq!(
        refused(hub_connect_raw(&emu, None, &malformed).await),
        Some(ConnectReturnCode::BadClientId)
    );
    // No credentials.
    assert_eq!(
        refused(hub_connect(&emu, &hub, "dev-keys", None, None, None).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

#[tokio::test]
async fn disabled_device_is_refused_and_disabling_drops_the_connection() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-disable").await;
    let mut conn = hub_device(&emu, "dev-disable", &key).await;
    assert_eq!(
        emu.device(&hub, "dev-disable").unwrap().connection_state,
        DeviceConnectionState::Connected
    );

    let mut device = emu.device(&hub, "dev-disable").unwrap();
    device.status = DeviceStatus::Disabled;
    device.status_reason = Some("compromised".into());
    emu.update_device(&hub, device, None).await.unwrap();
    assert!(
        conn.is_closed_within(STEP).await,
        "disabling drops the live connection"
    );

    let refused = hub_connect(
        &emu,
        &hub,
        "dev-disable",
        None,
        Some(hub_sas(&key, &hub, "dev-disable")),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(ConnectReturnCode::NotAuthorized));
    let device = emu.device(&hub, "dev-disable").unwrap();
    assert_eq!(device.status_reason.as_deref(), Some("compromised"));
    assert_eq!(device.connection_state, DeviceConnectionState::Disconnected);
}

#[tokio::test]
async fn one_connection_per_device() {
    let emu = start().await;
    let key = create_sas_device(&emu, "dev-twice").await;
    let mut first = hub_device(&emu, "dev-twice", &key).await;
    let mut second = hub_device(&emu, "dev-twice", &key).await;
    assert!(
        first.is_closed_within(STEP).await,
        "the new connection drops the old one"
    );
    second.subscribe_ok("$iothub/twin/res/#").await;
    let (topic, _) = second.twin_get("1").await;
    assert!(topic.starts_with("$iothub/twin/res/200/"), "{topic}");
    assert_eq!(
        emu.device(emu.default_hub(), "dev-twice")
            .unwrap()
            .connection_state,
        DeviceConnectionState::Connected,
        "the old connection's end does not mark the device disconnected"
    );
}

#[tokio::test]
async fn keep_alive_is_enforced() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-silent").await;
    let packet = hub_connect_packet(
        "dev-silent",
        &hub_username(&hub, "dev-silent", None),
        Some(&hub_sas(&key, &hub, "dev-silent")),
        1,
        true,
    );
    let mut conn = hub_connect_raw(&emu, None, &packet).await.unwrap();
    let started = Instant::now();
    assert!(
        conn.is_closed_within(Duration::from_secs(4)).await,
        "silent client dropped"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "not before 1.5 × keep-alive: {waited:?}"
    );
}

#[tokio::test]
async fn connection_is_closed_when_its_sas_token_expires() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-expiring").await;
    let expiry = unix_now() + 2;
    let token = hub_sas_until(&key, &hub, "dev-expiring", None, expiry);
    let mut conn = hub_connect(&emu, &hub, "dev-expiring", None, Some(token), None)
        .await
        .unwrap();
    assert!(
        !conn.is_closed_within(Duration::from_millis(800)).await,
        "open while the token is valid"
    );
    assert!(
        conn.is_closed_within(Duration::from_secs(5)).await,
        "closed at expiry"
    );
    assert!(
        unix_now() > expiry,
        "not before the expiry second has passed"
    );
}

// ---------------------------------------------------------------------------------------------
// Protocol rules

#[tokio::test]
async fn qos2_publish_closes_the_connection() {
    let emu = start().await;
    let key = create_sas_device(&emu, "dev-qos2").await;
    let mut conn = hub_device(&emu, "dev-qos2", &key).await;
    let since = last_event(&emu);
    conn.publish_qos(
        "devices/dev-qos2/messages/events/",
        b"x".to_vec(),
        QoS::ExactlyOnce,
    )
    .await;
    assert!(conn.is_closed_within(STEP).await);
    assert!(
        emu.hub_events(emu.default_hub(), since)
            .iter()
            .all(|e| e.kind != HubEventKind::Telemetry),
        "the QoS 2 message is not delivered"
    );
}

#[tokio::test]
async fn undocumented_topics_close_the_connection() {
    let emu = start().await;
    let key = create_sas_device(&emu, "dev-topics").await;

    for topic in [
        "devices/dev-topics/messages/unknown",
        "devices/other-device/messages/events/",
        "$iothub/twin/DELETE/?$rid=1",
        "$iothub/twin/GET",
        "hello",
    ] {
        let mut conn = hub_device(&emu, "dev-topics", &key).await;
        conn.publish(topic, b"{}".to_vec()).await;
        assert!(conn.is_closed_within(STEP).await, "publish to {topic}");
    }
    for filter in [
        "#",
        "devices/dev-topics/#",
        "devices/other/messages/devicebound/#",
        "$iothub/twin/res",
        "devices/dev-topics/modules/m/inputs/#",
    ] {
        let mut conn = hub_device(&emu, "dev-topics", &key).await;
        assert_eq!(
            conn.subscribe(filter, QoS::AtLeastOnce).await,
            None,
            "subscribe {filter}"
        );
        assert!(conn.is_closed_within(STEP).await, "subscribe {filter}");
    }

    // Documented filters are granted, QoS 2 as QoS 1.
    let mut conn = hub_device(&emu, "dev-topics", &key).await;
    let codes = conn
        .subscribe("$iothub/methods/POST/#", QoS::ExactlyOnce)
        .await
        .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let codes = conn
        .subscribe("devices/+/messages/devicebound/#", QoS::AtMostOnce)
        .await
        .unwrap();
    assert_eq!(codes, vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]);
}

#[tokio::test]
async fn telemetry_over_256_kb_closes_the_connection() {
    let emu = start().await;
    let key = create_sas_device(&emu, "dev-big").await;
    let mut conn = hub_device(&emu, "dev-big", &key).await;
    let since = last_event(&emu);
    conn.telemetry("dev-big", "", &vec![b'a'; 256 * 1024]).await;
    let event = wait_event(&emu, since, |e| e.kind == HubEventKind::Telemetry).await;
    assert_eq!(event.body.len(), 256 * 1024, "exactly 256 KB is accepted");

    conn.publish(
        "devices/dev-big/messages/events/",
        vec![b'a'; 256 * 1024 + 1],
    )
    .await;
    assert!(
        conn.is_closed_within(STEP).await,
        "one byte more is refused"
    );
}

// ---------------------------------------------------------------------------------------------
// Telemetry and connection state

#[tokio::test]
async fn telemetry_properties_reach_the_events_feed() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-telemetry").await;
    let before = emu.device(&hub, "dev-telemetry").unwrap();
    assert_eq!(before.connection_state, DeviceConnectionState::Disconnected);
    assert_eq!(before.last_activity_time, "0001-01-01T00:00:00Z");

    let mut conn = hub_device(&emu, "dev-telemetry", &key).await;
    let since = last_event(&emu);
    conn.telemetry(
        "dev-telemetry",
        "%24.mid=m-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp&flag",
        br#"{"temperature":42}"#,
    )
    .await;
    let event = wait_event(&emu, since, |e| e.kind == HubEventKind::Telemetry).await;
    assert_eq!(event.device_id, "dev-telemetry");
    assert_eq!(event.module_id, None);
    assert_eq!(event.system_properties["messageId"], "m-1");
    assert_eq!(event.system_properties["contentType"], "application/json");
    assert_eq!(event.system_properties["contentEncoding"], "utf-8");
    assert_eq!(
        event.system_properties["iothub-connection-device-id"],
        "dev-telemetry"
    );
    assert_eq!(event.properties["alert"], "high temp");
    assert_eq!(event.properties["flag"], "");
    assert!(
        !event.properties.contains_key("$.mid"),
        "system properties are apart"
    );
    assert_eq!(event.body_json().unwrap()["temperature"], 42);

    // QoS 0 telemetry too.
    conn.publish_qos(
        "devices/dev-telemetry/messages/events/",
        b"q0".to_vec(),
        QoS::AtMostOnce,
    )
    .await;
    wait_event(&emu, since, |e| e.body == b"q0").await;

    let connected = emu.device(&hub, "dev-telemetry").unwrap();
    assert_eq!(connected.connection_state, DeviceConnectionState::Connected);
    assert_service_time(&connected.last_activity_time);
    assert_service_time(&connected.connection_state_updated_time);

    drop(conn);
    let deadline = Instant::now() + STEP;
    while emu.device(&hub, "dev-telemetry").unwrap().connection_state
        == DeviceConnectionState::Connected
    {
        assert!(Instant::now() < deadline, "disconnection noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = emu.device(&hub, "dev-telemetry").unwrap();
    assert_service_time(&after.last_activity_time);
}

// ---------------------------------------------------------------------------------------------
// Twin

#[tokio::test]
async fn twin_versions_reported_patches_and_null_deletes() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-twin").await;
    let mut conn = hub_device(&emu, "dev-twin", &key).await;
    conn.subscribe_ok("$iothub/twin/res/#").await;

    let (topic, twin) = conn.twin_get("r1").await;
    assert_eq!(topic, "$iothub/twin/res/200/?$rid=r1");
    assert_eq!(
        twin,
        json!({"desired": {"$version": 1}, "reported": {"$version": 1}})
    );

    let topic = conn
        .twin_patch(
            "r2",
            &json!({"firmware": "1.0", "temp": {"value": 21, "unit": "C"}}),
        )
        .await;
    assert_eq!(topic, "$iothub/twin/res/204/?$rid=r2&$version=2");
    let topic = conn
        .twin_patch("r3", &json!({"firmware": null, "temp": {"unit": null}}))
        .await;
    assert_eq!(topic, "$iothub/twin/res/204/?$rid=r3&$version=3");

    let (_, twin) = conn.twin_get("r4").await;
    assert_eq!(
        twin["reported"],
        json!({"temp": {"value": 21}, "$version": 3}),
        "null deletes a member"
    );

    // Malformed patches: 400, nothing changes.
    assert!(
        conn.publish(
            "$iothub/twin/PATCH/properties/reported/?$rid=r5",
            b"[1]".to_vec()
        )
        .await
    );
    let (topic, _) = conn.expect_publish().await;
    assert!(
        topic.starts_with("$iothub/twin/res/400/?$rid=r5"),
        "{topic}"
    );
    let topic = conn.twin_patch("r6", &json!({"$version": 9})).await;
    assert!(topic.starts_with("$iothub/twin/res/400/"), "{topic}");

    let service = emu.twin(&hub, "dev-twin").unwrap();
    assert_eq!(service.properties.reported["temp"], json!({"value": 21}));
    assert_eq!(service.properties.reported["$version"], 3);
    assert_eq!(service.version, 3);
    assert!(service.properties.reported["$metadata"]["$lastUpdated"].is_string());
}

#[tokio::test]
async fn desired_patches_are_pushed_to_subscribed_devices() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-desired").await;
    let mut conn = hub_device(&emu, "dev-desired", &key).await;

    // Not subscribed: nothing is pushed.
    emu.patch_desired(&hub, "dev-desired", json!({"rate": 1}))
        .await
        .unwrap();
    assert!(
        conn.next_publish(Duration::from_millis(300))
            .await
            .is_none()
    );

    conn.subscribe_ok("$iothub/twin/PATCH/properties/desired/#")
        .await;
    let twin = emu
        .patch_desired(
            &hub,
            "dev-desired",
            json!({"rate": 5, "mode": {"eco": true}}),
        )
        .await
        .unwrap();
    assert_eq!(twin.properties.desired["$version"], 3);
    let (topic, body) = conn.expect_publish().await;
    assert_eq!(topic, "$iothub/twin/PATCH/properties/desired/?$version=3");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"rate": 5, "mode": {"eco": true}, "$version": 3})
    );

    emu.patch_desired(&hub, "dev-desired", json!({"mode": null}))
        .await
        .unwrap();
    let (_, body) = conn.expect_publish().await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"mode": null, "$version": 4})
    );

    conn.subscribe_ok("$iothub/twin/res/#").await;
    let (_, twin) = conn.twin_get("g").await;
    assert_eq!(twin["desired"], json!({"rate": 5, "$version": 4}));
}

// ---------------------------------------------------------------------------------------------
// Direct methods

#[tokio::test]
async fn direct_method_round_trip_timeout_and_offline() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-method").await;

    // Offline: 404103 at once.
    let offline = emu
        .invoke_method(&hub, "dev-method", MethodInvocation::new("reboot"))
        .await
        .unwrap_err();
    assert_eq!((offline.status, offline.error_code), (404, 404_103));

    let mut conn = hub_device(&emu, "dev-method", &key).await;
    // Connected but not subscribed to methods: still not online for methods.
    let unsubscribed = emu
        .invoke_method(&hub, "dev-method", MethodInvocation::new("reboot"))
        .await
        .unwrap_err();
    assert_eq!(unsubscribed.error_code, 404_103);
    conn.subscribe_ok("$iothub/methods/POST/#").await;

    let call = emu.invoke_method(
        &hub,
        "dev-method",
        MethodInvocation::new("reboot")
            .payload(json!({"delay": 3}))
            .response_timeout(5),
    );
    let device = async {
        let (topic, body) = conn.expect_publish().await;
        let rid = topic
            .strip_prefix("$iothub/methods/POST/reboot/?$rid=")
            .unwrap_or_else(|| panic!("method request topic {topic}"))
            .to_owned();
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"delay": 3})
        );
        let answer = format!("$iothub/methods/res/201/?$rid={rid}");
        assert!(
            conn.publish(&answer, br#"{"rebooting":true}"#.to_vec())
                .await
        );
        conn
    };
    let (result, mut conn) = tokio::join!(call, device);
    let result = result.unwrap();
    assert_eq!(result.status, 201);
    assert_eq!(result.payload, json!({"rebooting": true}));

    // No answer within the timeout: 504101.
    let started = Instant::now();
    let timeout = emu
        .invoke_method(
            &hub,
            "dev-method",
            MethodInvocation::new("hang").response_timeout(1),
        )
        .await
        .unwrap_err();
    assert_eq!((timeout.status, timeout.error_code), (504, 504_101));
    assert!(started.elapsed() >= Duration::from_secs(1));
    // The request did reach the device; a late answer is ignored.
    let (topic, _) = conn.expect_publish().await;
    assert!(topic.starts_with("$iothub/methods/POST/hang/?$rid="));
    let rid = topic.rsplit('=').next().unwrap().to_owned();
    assert!(
        conn.publish(
            &format!("$iothub/methods/res/200/?$rid={rid}"),
            b"{}".to_vec()
        )
        .await
    );
    assert!(!conn.is_closed_within(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn method_waits_for_the_device_within_the_connect_timeout() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-late").await;
    let call = emu.invoke_method(
        &hub,
        "dev-late",
        MethodInvocation::new("ping")
            .connect_timeout(5)
            .response_timeout(5),
    );
    let device = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut conn = hub_device(&emu, "dev-late", &key).await;
        conn.subscribe_ok("$iothub/methods/POST/#").await;
        let (topic, _) = conn.expect_publish().await;
        let rid = topic.rsplit('=').next().unwrap().to_owned();
        assert!(
            conn.publish(&format!("$iothub/methods/res/200/?$rid={rid}"), Vec::new())
                .await
        );
        conn
    };
    let (result, _conn) = tokio::join!(call, device);
    let result = result.unwrap();
    assert_eq!((result.status, result.payload), (200, Value::Null));
}

// ---------------------------------------------------------------------------------------------
// Cloud-to-device messages

#[tokio::test]
async fn c2d_with_properties_and_the_offline_queue() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-c2d").await;

    // Queued while offline.
    for i in 0..3 {
        emu.send_c2d(
            &hub,
            "dev-c2d",
            CloudToDeviceMessage::new(format!("offline {i}"))
                .message_id(format!("m{i}"))
                .property("index", i.to_string()),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        emu.device(&hub, "dev-c2d")
            .unwrap()
            .cloud_to_device_message_count,
        3
    );

    let mut conn = hub_device(&emu, "dev-c2d", &key).await;
    assert!(
        conn.next_publish(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing before the subscription"
    );
    conn.subscribe_ok(&c2d_filter("dev-c2d")).await;
    for i in 0..3 {
        let (topic, body) = conn.expect_publish().await;
        let message = dps_core::hub::parse_c2d_topic(&topic).unwrap();
        assert_eq!(message.device_id, "dev-c2d");
        assert_eq!(
            message.properties.message_id().unwrap().value,
            Some(format!("m{i}").as_str())
        );
        assert_eq!(
            message.properties.value("index").unwrap().as_deref(),
            Some(i.to_string().as_str())
        );
        assert_eq!(body, format!("offline {i}").into_bytes());
    }
    // Acknowledged (the helper PUBACKs): the queue empties.
    let deadline = Instant::now() + STEP;
    while emu
        .device(&hub, "dev-c2d")
        .unwrap()
        .cloud_to_device_message_count
        != 0
    {
        assert!(
            Instant::now() < deadline,
            "acknowledged messages are completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Online: delivered at once, with system properties.
    emu.send_c2d(
        &hub,
        "dev-c2d",
        CloudToDeviceMessage::new(r#"{"cmd":"on"}"#)
            .correlation_id("corr-1")
            .content_type("application/json")
            .content_encoding("utf-8")
            .property("priority", "high & urgent"),
    )
    .await
    .unwrap();
    let (topic, body) = conn.expect_publish().await;
    let message = dps_core::hub::parse_c2d_topic(&topic).unwrap();
    let bag = message.properties;
    assert_eq!(bag.value("$.cid").unwrap().as_deref(), Some("corr-1"));
    assert_eq!(
        bag.value("$.ct").unwrap().as_deref(),
        Some("application/json")
    );
    assert_eq!(bag.value("$.ce").unwrap().as_deref(), Some("utf-8"));
    assert_eq!(
        bag.value("$.to").unwrap().as_deref(),
        Some("/devices/dev-c2d/messages/deviceBound")
    );
    assert_eq!(
        bag.value("priority").unwrap().as_deref(),
        Some("high & urgent")
    );
    assert!(bag.message_id().is_some(), "a message id is generated");
    assert_eq!(body, br#"{"cmd":"on"}"#);
}

#[tokio::test]
async fn c2d_queue_is_bounded_and_unacknowledged_messages_come_again() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-queue").await;
    for i in 0..50 {
        emu.send_c2d(&hub, "dev-queue", CloudToDeviceMessage::new(format!("{i}")))
            .await
            .unwrap();
    }
    let full = emu
        .send_c2d(&hub, "dev-queue", CloudToDeviceMessage::new("one too many"))
        .await
        .unwrap_err();
    assert_eq!((full.status, full.error_code), (403, 403_004));
    let unknown = emu
        .send_c2d(&hub, "nobody", CloudToDeviceMessage::new("x"))
        .await
        .unwrap_err();
    assert_eq!(unknown.error_code, 404_001);

    // A client that reads without acknowledging (raw): messages stay queued.
    let mut conn = hub_device(&emu, "dev-queue", &key).await;
    conn.subscribe_ok(&c2d_filter("dev-queue")).await;
    let (_, body) = conn.expect_publish().await;
    assert_eq!(body, b"0");
    let deadline = Instant::now() + STEP;
    while emu
        .device(&hub, "dev-queue")
        .unwrap()
        .cloud_to_device_message_count
        != 49
    {
        assert!(
            Instant::now() < deadline,
            "the acknowledged message is completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);
    // The helper acknowledged what it read, so the first is done; the rest come again.
    let mut conn = hub_device(&emu, "dev-queue", &key).await;
    conn.subscribe_ok(&c2d_filter("dev-queue")).await;
    let mut seen = Vec::new();
    while let Some((_, body)) = conn.next_publish(Duration::from_millis(500)).await {
        seen.push(String::from_utf8(body).unwrap());
    }
    assert!(
        !seen.contains(&"0".to_owned()),
        "the acknowledged message is completed"
    );
    assert_eq!(seen.first().map(String::as_str), Some("1"));
    assert_eq!(seen.len(), 49);
}

// ---------------------------------------------------------------------------------------------
// Modules

#[tokio::test]
async fn module_connects_receives_inputs_and_sends_outputs() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    create_sas_device(&emu, "edge-1").await;
    let module = emu
        .create_module(
            &hub,
            "edge-1",
            ModuleIdentity {
                module_id: "filter".into(),
                ..ModuleIdentity::default()
            },
        )
        .await
        .unwrap();
    let module_key = module
        .authentication
        .symmetric_key
        .unwrap()
        .primary_key
        .unwrap();
    let token = hub_sas_until(
        &module_key,
        &hub,
        "edge-1",
        Some("filter"),
        unix_now() + 600,
    );
    let mut conn = hub_connect(
        &emu,
        &hub,
        "edge-1",
        Some("filter"),
        Some(token.clone()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        emu.module(&hub, "edge-1", "filter")
            .unwrap()
            .connection_state,
        DeviceConnectionState::Connected
    );

    // Output: telemetry on the module topic with `$.on`.
    let since = last_event(&emu);
    assert!(
        conn.publish(
            "devices/edge-1/modules/filter/messages/events/%24.on=alerts&level=2",
            b"hot".to_vec()
        )
        .await
    );
    conn.wait_puback().await;
    let event = wait_event(&emu, since, |e| e.kind == HubEventKind::Telemetry).await;
    assert_eq!(event.module_id.as_deref(), Some("filter"));
    assert_eq!(event.system_properties["outputName"], "alerts");
    assert_eq!(
        event.system_properties["iothub-connection-module-id"],
        "filter"
    );
    assert_eq!(event.properties["level"], "2");

    // Input: delivered to a subscribed module.
    let not_yet = emu
        .send_to_module_input(
            &hub,
            "edge-1",
            "filter",
            "input1",
            CloudToDeviceMessage::new("x"),
        )
        .unwrap_err();
    assert_eq!(not_yet.error_code, 404_103);
    conn.subscribe_ok("devices/edge-1/modules/filter/inputs/#")
        .await;
    emu.send_to_module_input(
        &hub,
        "edge-1",
        "filter",
        "input1",
        CloudToDeviceMessage::new("reading").property("sensor", "a"),
    )
    .unwrap();
    let (topic, body) = conn.expect_publish().await;
    let input = dps_core::hub::parse_input_topic(&topic).unwrap();
    assert_eq!(
        (input.device_id, input.module_id, input.input_name),
        ("edge-1", "filter", "input1")
    );
    assert_eq!(
        input.properties.value("sensor").unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(body, b"reading");

    // The module twin is its own.
    conn.subscribe_ok("$iothub/twin/res/#").await;
    let topic = conn.twin_patch("m1", &json!({"threshold": 30})).await;
    assert_eq!(topic, "$iothub/twin/res/204/?$rid=m1&$version=2");
    let twin = emu.module_twin(&hub, "edge-1", "filter").unwrap();
    assert_eq!(twin.module_id.as_deref(), Some("filter"));
    assert_eq!(twin.properties.reported["threshold"], 30);
    assert!(
        emu.twin(&hub, "edge-1")
            .unwrap()
            .properties
            .reported
            .get("threshold")
            .is_none()
    );

    // Module rules: no C2D for modules, the client id names the module, the device key
    // does not open the module.
    assert_eq!(
        conn.subscribe(&c2d_filter("edge-1"), QoS::AtLeastOnce)
            .await,
        None
    );
    let device_key = emu
        .device(&hub, "edge-1")
        .unwrap()
        .authentication
        .symmetric_key
        .unwrap()
        .primary_key
        .unwrap();
    let wrong = hub_sas_until(
        &device_key,
        &hub,
        "edge-1",
        Some("filter"),
        unix_now() + 600,
    );
    assert_eq!(
        hub_connect(&emu, &hub, "edge-1", Some("filter"), Some(wrong), None)
            .await
            .err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let mismatch = hub_connect_packet(
        "edge-1",
        &hub_username(&hub, "edge-1", Some("filter")),
        Some(&token),
        60,
        true,
    );
    assert_eq!(
        hub_connect_raw(&emu, None, &mismatch).await.err(),
        Some(ConnectReturnCode::BadClientId)
    );

    // Module methods.
    let mut conn = hub_connect(&emu, &hub, "edge-1", Some("filter"), Some(token), None)
        .await
        .unwrap();
    conn.subscribe_ok("$iothub/methods/POST/#").await;
    let call = emu.invoke_module_method(
        &hub,
        "edge-1",
        "filter",
        MethodInvocation::new("reset").response_timeout(5),
    );
    let answer = async {
        let (topic, _) = conn.expect_publish().await;
        let rid = topic.rsplit('=').next().unwrap().to_owned();
        assert!(
            conn.publish(
                &format!("$iothub/methods/res/200/?$rid={rid}"),
                b"\"done\"".to_vec()
            )
            .await
        );
    };
    let (result, ()) = tokio::join!(call, answer);
    assert_eq!(result.unwrap().payload, json!("done"));
}

// ---------------------------------------------------------------------------------------------
// Clean session

#[tokio::test]
async fn a_persistent_session_keeps_its_subscriptions() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-session").await;
    let persistent = || {
        hub_connect_packet(
            "dev-session",
            &hub_username(&hub, "dev-session", None),
            Some(&hub_sas(&key, &hub, "dev-session")),
            60,
            false,
        )
    };
    let mut conn = hub_connect_raw(&emu, None, &persistent()).await.unwrap();
    conn.subscribe_ok(&c2d_filter("dev-session")).await;
    drop(conn);
    tokio::time::sleep(Duration::from_millis(200)).await;

    emu.send_c2d(&hub, "dev-session", CloudToDeviceMessage::new("while away"))
        .await
        .unwrap();
    let mut conn = hub_connect_raw(&emu, None, &persistent()).await.unwrap();
    let (_, body) = conn.expect_publish().await;
    assert_eq!(body, b"while away", "delivered without subscribing again");
}

// ---------------------------------------------------------------------------------------------
// X.509

#[tokio::test]
async fn x509_self_signed_thumbprint_and_ca_identities() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();

    let cert = self_signed("dev-thumb");
    let thumbprint = {
        use sha1::Digest as _;
        hex(&sha1::Sha1::digest(cert.chain[0].as_ref()))
    };
    emu.create_device(
        &hub,
        DeviceIdentity {
            device_id: "dev-thumb".into(),
            authentication: HubAuthentication {
                kind: HubAuthType::SelfSigned,
                symmetric_key: None,
                x509_thumbprint: Some(X509Thumbprint {
                    primary_thumbprint: Some(thumbprint),
                    secondary_thumbprint: None,
                }),
            },
            ..DeviceIdentity::default()
        },
    )
    .await
    .unwrap();
    assert!(
        hub_connect(&emu, &hub, "dev-thumb", None, None, Some(&cert))
            .await
            .is_ok()
    );
    let other = self_signed("dev-thumb");
    assert_eq!(
        hub_connect(&emu, &hub, "dev-thumb", None, None, Some(&other))
            .await
            .err(),
        Some(ConnectReturnCode::NotAuthorized),
        "another certificate with the same CN"
    );

    // certificateAuthority: the chain must lead to an enrollment group's signing certificate.
    let root = Ca::root("Hub Test Root");
    let intermediate = root.intermediate("Hub Test Intermediate");
    emu.put_enrollment_group(group(x509_group("hub-ca-group", &root.pem)), None)
        .await
        .unwrap();
    emu.create_device(
        &hub,
        DeviceIdentity {
            device_id: "dev-ca".into(),
            authentication: HubAuthentication {
                kind: HubAuthType::CertificateAuthority,
                ..HubAuthentication::default()
            },
            ..DeviceIdentity::default()
        },
    )
    .await
    .unwrap();
    let leaf = intermediate.leaf("dev-ca").presenting(&[&intermediate.der]);
    assert!(
        hub_connect(&emu, &hub, "dev-ca", None, None, Some(&leaf))
            .await
            .is_ok()
    );
    let wrong_cn = intermediate
        .leaf("dev-other")
        .presenting(&[&intermediate.der]);
    assert_eq!(
        hub_connect(&emu, &hub, "dev-ca", None, None, Some(&wrong_cn))
            .await
            .err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    let stranger = Ca::root("Stranger").leaf("dev-ca");
    assert_eq!(
        hub_connect(&emu, &hub, "dev-ca", None, None, Some(&stranger))
            .await
            .err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
}

// ---------------------------------------------------------------------------------------------
// Provisioned by the emulator's DPS, then connected to its hub

/// Registers over DPS; the assigned hub and device id.
async fn provision(conn: &mut Conn) -> (String, String) {
    let op = conn.provision_ok().await;
    let state = op.registration_state.unwrap();
    (state.assigned_hub.unwrap(), state.device_id.unwrap())
}

#[tokio::test]
async fn devices_provisioned_by_dps_connect_to_their_hub() {
    let emu = start_with(|c| c.linked_hubs(["hub-a.localhost", "hub-b.localhost"])).await;

    // Symmetric key, individual enrollment.
    let individual_key = key(1, 32);
    emu.put_enrollment(
        enrollment(with(
            sym_enrollment("sym-dev", &individual_key, &key(2, 32)),
            json!({"iotHubHostName": "hub-b.localhost", "allocationPolicy": "static"}),
        )),
        None,
    )
    .await
    .unwrap();
    let mut dps = sas_device(&emu, "sym-dev", &individual_key).await;
    let (hub, device_id) = provision(&mut dps).await;
    assert_eq!(
        (hub.as_str(), device_id.as_str()),
        ("hub-b.localhost", "sym-dev")
    );
    let mut conn = hub_connect(
        &emu,
        &hub,
        &device_id,
        None,
        Some(hub_sas(&individual_key, &hub, &device_id)),
        None,
    )
    .await
    .expect("the enrollment key opens the hub connection");
    conn.subscribe_ok("$iothub/twin/res/#").await;
    let (topic, _) = conn.twin_get("1").await;
    assert!(topic.starts_with("$iothub/twin/res/200/"));
    // The device lives in its hub only.
    assert_eq!(
        hub_connect(
            &emu,
            "hub-a.localhost",
            &device_id,
            None,
            Some(hub_sas(&individual_key, "hub-a.localhost", &device_id)),
            None
        )
        .await
        .err(),
        Some(ConnectReturnCode::NotAuthorized)
    );

    // Symmetric key, group-derived.
    let group_key = key(3, 64);
    emu.put_enrollment_group(
        group(with(
            sym_group("sym-group", &group_key, &key(4, 64)),
            json!({"iotHubHostName": "hub-a.localhost", "allocationPolicy": "static", "initialTwin": {"properties": {"desired": {"interval": 10}}}}),
        )),
        None,
    )
    .await
    .unwrap();
    let derived_key = derived(&group_key, "group-dev-1");
    let mut dps = sas_device(&emu, "group-dev-1", &derived_key).await;
    let (hub, device_id) = provision(&mut dps).await;
    assert_eq!(hub, "hub-a.localhost");
    let mut conn = hub_connect(
        &emu,
        &hub,
        &device_id,
        None,
        Some(hub_sas(&derived_key, &hub, &device_id)),
        None,
    )
    .await
    .expect("the derived key opens the hub connection");
    conn.subscribe_ok("$iothub/twin/res/#").await;
    let (_, twin) = conn.twin_get("1").await;
    assert_eq!(
        twin["desired"]["interval"], 10,
        "the initial twin from the enrollment"
    );

    // X.509 enrollment group.
    let root = Ca::root("DPS Hub Root");
    let intermediate = root.intermediate("DPS Hub Intermediate");
    emu.put_enrollment_group(
        group(with(
            x509_group("x509-group", &intermediate.pem),
            json!({"iotHubHostName": "hub-a.localhost", "allocationPolicy": "static"}),
        )),
        None,
    )
    .await
    .unwrap();
    let leaf = intermediate
        .leaf("x509-dev-1")
        .presenting(&[&intermediate.der, &root.der]);
    let mut dps = x509_device(&emu, "x509-dev-1", &leaf).await.unwrap();
    let (hub, device_id) = provision(&mut dps).await;
    let record = emu.device(&hub, &device_id).unwrap();
    assert_eq!(
        record.authentication.kind,
        HubAuthType::CertificateAuthority
    );
    let mut conn = hub_connect(&emu, &hub, &device_id, None, None, Some(&leaf))
        .await
        .expect("the certificate opens the hub connection");
    let since = last_event_of(&emu, &hub);
    conn.telemetry(&device_id, "", b"hello").await;
    let event = emu.hub_events(&hub, since);
    assert!(
        event
            .iter()
            .any(|e| e.device_id == device_id && e.body == b"hello")
    );

    // X.509 individual enrollment: the hub identity is self-signed by thumbprint.
    let cert = self_signed("x509-individual");
    emu.put_enrollment(
        enrollment(with(
            x509_enrollment("x509-individual", &cert.pem),
            json!({"iotHubHostName": "hub-b.localhost", "allocationPolicy": "static"}),
        )),
        None,
    )
    .await
    .unwrap();
    let mut dps = x509_device(&emu, "x509-individual", &cert).await.unwrap();
    let (hub, device_id) = provision(&mut dps).await;
    assert_eq!(
        emu.device(&hub, &device_id).unwrap().authentication.kind,
        HubAuthType::SelfSigned
    );
    assert!(
        hub_connect(&emu, &hub, &device_id, None, None, Some(&cert))
            .await
            .is_ok()
    );
}

fn last_event_of(emu: &dps_emulator::Emulator, hub: &str) -> u64 {
    emu.hub_events(hub, 0)
        .last()
        .map_or(0, |e| e.sequence_number)
}

// ---------------------------------------------------------------------------------------------
// Lifecycle notifications

#[tokio::test]
async fn lifecycle_notifications_for_registry_and_dps_identities() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let since = last_event(&emu);

    create_sas_device(&emu, "dev-life").await;
    let created = wait_event(&emu, since, |e| e.kind == HubEventKind::DeviceLifecycle).await;
    assert_eq!(created.properties["opType"], "createDeviceIdentity");
    assert_eq!(created.properties["hubName"], hub);
    assert_eq!(created.properties["deviceId"], "dev-life");
    assert_eq!(
        created.properties["iothub-message-schema"],
        "deviceLifecycleNotification"
    );
    assert_eq!(
        created.system_properties["iothub-message-source"],
        "deviceLifecycleEvents"
    );
    assert_service_time(&created.properties["operationTimestamp"]);
    let body = created.body_json().unwrap();
    assert_eq!(body["deviceId"], "dev-life");
    assert_eq!(body["properties"]["desired"]["$version"], 1);

    emu.delete_device(&hub, "dev-life", None).await.unwrap();
    let deleted = wait_event(&emu, created.sequence_number, |e| {
        e.kind == HubEventKind::DeviceLifecycle
    })
    .await;
    assert_eq!(deleted.properties["opType"], "deleteDeviceIdentity");
    assert_eq!(deleted.device_id, "dev-life");

    // A device DPS creates is announced too, before its telemetry.
    let device_key = key(5, 32);
    emu.put_enrollment(
        enrollment(sym_enrollment("dps-life", &device_key, &key(6, 32))),
        None,
    )
    .await
    .unwrap();
    let mut dps = sas_device(&emu, "dps-life", &device_key).await;
    provision(&mut dps).await;
    let mut conn = hub_device(&emu, "dps-life", &device_key).await;
    conn.telemetry("dps-life", "", b"t").await;
    let events: Vec<_> = emu
        .hub_events(&hub, deleted.sequence_number)
        .into_iter()
        .filter(|e| e.device_id == "dps-life")
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0].properties["opType"], "createDeviceIdentity");
    // #15: the connection is on the feed too, between the creation and the telemetry.
    assert_eq!(events[1].properties["opType"], "deviceConnected");
    assert_eq!(events[2].kind, HubEventKind::Telemetry);
}

// ---------------------------------------------------------------------------------------------
// Persistence

#[tokio::test]
async fn hub_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || EmulatorConfig::new(dir.path()).behaviour(fast());
    let emu = dps_emulator::Emulator::start(config()).await.unwrap();
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-persist").await;
    emu.create_module(
        &hub,
        "dev-persist",
        ModuleIdentity {
            module_id: "m1".into(),
            ..ModuleIdentity::default()
        },
    )
    .await
    .unwrap();
    let mut conn = hub_device(&emu, "dev-persist", &key).await;
    conn.subscribe_ok("$iothub/twin/res/#").await;
    conn.twin_patch("1", &json!({"boots": 1})).await;
    emu.patch_desired(&hub, "dev-persist", json!({"rate": 2}))
        .await
        .unwrap();
    emu.send_c2d(
        &hub,
        "dev-persist",
        CloudToDeviceMessage::new("kept").property("p", "1"),
    )
    .await
    .unwrap();
    let before = emu.device(&hub, "dev-persist").unwrap();
    let twin_before = emu.twin(&hub, "dev-persist").unwrap();
    drop(conn);
    emu.shutdown().await;

    let emu = dps_emulator::Emulator::start(config()).await.unwrap();
    let after = emu.device(&hub, "dev-persist").unwrap();
    assert_eq!(after.generation_id, before.generation_id);
    assert_eq!(after.etag, before.etag);
    assert_eq!(after.authentication, before.authentication);
    assert_eq!(after.cloud_to_device_message_count, 1);
    assert_eq!(after.connection_state, DeviceConnectionState::Disconnected);
    assert_service_time(&after.last_activity_time);
    let twin_after = emu.twin(&hub, "dev-persist").unwrap();
    assert_eq!(twin_after.version, twin_before.version);
    assert_eq!(twin_after.properties, twin_before.properties);
    assert!(emu.module(&hub, "dev-persist", "m1").is_ok());

    let mut conn = hub_device(&emu, "dev-persist", &key).await;
    conn.subscribe_ok(&c2d_filter("dev-persist")).await;
    let (topic, body) = conn.expect_publish().await;
    assert_eq!(body, b"kept");
    assert!(topic.ends_with("&p=1"), "{topic}");
    emu.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Robustness

#[tokio::test]
async fn hostile_input_never_takes_the_hub_down() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let key = create_sas_device(&emu, "dev-hostile").await;
    let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("devices/dev-hostile/messages/events/a=%zz", b"x".to_vec()),
        (
            "devices/dev-hostile/messages/events/%ff%fe=1",
            b"x".to_vec(),
        ),
        (
            "devices/dev-hostile/messages/events/",
            vec![0xff, 0x00, 0xfe],
        ),
        (
            "$iothub/twin/PATCH/properties/reported/?$rid=1",
            deep.clone().into_bytes(),
        ),
        (
            "$iothub/twin/PATCH/properties/reported/?$rid=2",
            vec![0xff; 10],
        ),
        (
            "$iothub/twin/PATCH/properties/reported/?$rid=3",
            b"null".to_vec(),
        ),
        (
            "$iothub/twin/PATCH/properties/reported/?$rid=4",
            b"{\"x\":".to_vec(),
        ),
        ("$iothub/twin/GET/?$rid=", b"".to_vec()),
        ("$iothub/twin/GET/?nothing", b"".to_vec()),
        ("$iothub/methods/res/abc/?$rid=1", b"{}".to_vec()),
        ("$iothub/methods/res/99999999/?$rid=1", b"{}".to_vec()),
        ("$iothub/methods/res/200/?$rid=unknown", vec![0xff]),
        ("$iothub/methods/res/200", b"{}".to_vec()),
        ("devices//messages/events/", b"x".to_vec()),
        (
            "devices/dev-hostile/modules//messages/events/",
            b"x".to_vec(),
        ),
        (
            "$iothub/credentials/POST/issueCertificate/?$rid=1",
            b"{}".to_vec(),
        ),
    ];
    for (topic, payload) in cases {
        let mut conn = hub_device(&emu, "dev-hostile", &key).await;
        conn.subscribe_ok("$iothub/twin/res/#").await;
        let _ = conn.publish(topic, payload).await;
        // Either answered or closed; the hub stays up either way.
        let _ = conn.next_publish(Duration::from_millis(100)).await;
    }
    // Hostile REST bodies.
    for (method, path, body) in [
        ("PUT", "/devices/x", b"{".to_vec()),
        ("PUT", "/devices/x", deep.clone().into_bytes()),
        ("PATCH", "/twins/dev-hostile", b"[]".to_vec()),
        ("PATCH", "/twins/dev-hostile", deep.into_bytes()),
        (
            "POST",
            "/twins/dev-hostile/methods",
            b"{\"methodName\":1}".to_vec(),
        ),
        (
            "POST",
            "/twins/dev-hostile/methods",
            b"{\"methodName\":\"m\",\"responseTimeoutInSeconds\":18446744073709551615}".to_vec(),
        ),
        (
            "POST",
            &format!("/emulator/hubs/{hub}/devices/dev-hostile/c2d"),
            b"{\"bodyBase64\":\"!!\"}".to_vec(),
        ),
        (
            "GET",
            &format!("/emulator/hubs/{hub}/events?since=-1&limit=x"),
            Vec::new(),
        ),
    ] {
        let mut headers = vec![("authorization", hub_token(&emu))];
        headers.push(("content-type", "application/json".into()));
        let reply = https(
            &emu,
            method,
            &format!("{path}?api-version=2021-04-12"),
            &headers,
            Some(body),
        )
        .await;
        assert!(reply.status < 500, "{method} {path}: {reply:?}");
    }
    // Still serving, with the twin unharmed.
    let mut conn = hub_device(&emu, "dev-hostile", &key).await;
    conn.subscribe_ok("$iothub/twin/res/#").await;
    let (topic, twin) = conn.twin_get("ok").await;
    assert!(topic.starts_with("$iothub/twin/res/200/"));
    assert_eq!(twin["reported"], json!({"$version": 1}));
}
