//! #15 item 3: the identity registry's bulk operations (`POST /devices`), list with `top`,
//! and the twin query (`POST /devices/query`) with continuation tokens, over HTTPS as the
//! service SDKs call them.

mod common;

use common::hub::*;
use common::*;
use dps_emulator::HubEventKind;
use serde_json::{Value, json};

fn ids(twins: &Value) -> Vec<String> {
    twins
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["deviceId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn bulk_create_update_delete_with_per_device_errors() {
    let emu = start().await;
    let since = last_event(&emu);
    let primary = key(1, 32);
    let reply = hub_service(
        &emu,
        "POST",
        "/devices",
        Some(&json!([
            {"id": "bulk-1", "importMode": "create"},
            {"id": "bulk-2", "importMode": "create", "status": "disabled",
             "authentication": {"type": "sas", "symmetricKey": {"primaryKey": primary, "secondaryKey": key(2, 32)}}},
            {"id": "bulk-3", "importMode": "update"},
        ])),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json(),
        json!({"isSuccessful": true, "errors": [], "warnings": []})
    );
    let hub = emu.default_hub().to_owned();
    let two = emu.device(&hub, "bulk-2").unwrap();
    assert_eq!(
        two.authentication
            .symmetric_key
            .unwrap()
            .primary_key
            .as_deref(),
        Some(primary.as_str())
    );
    assert_eq!(two.status, dps_emulator::model::DeviceStatus::Disabled);
    let one = emu.device(&hub, "bulk-1").unwrap();
    assert!(
        one.authentication
            .symmetric_key
            .unwrap()
            .primary_key
            .is_some(),
        "keys generated"
    );
    // Each created device has its lifecycle notification.
    for id in ["bulk-1", "bulk-2", "bulk-3"] {
        wait_event(&emu, since, |e| {
            e.kind == HubEventKind::DeviceLifecycle
                && e.device_id == id
                && e.properties.get("opType").map(String::as_str) == Some("createDeviceIdentity")
        })
        .await;
    }

    // A duplicate, a stale etag and a missing device fail alone; the rest is applied.
    let reply = hub_service(
        &emu,
        "POST",
        "/devices",
        Some(&json!([
            {"id": "bulk-1", "importMode": "create"},
            {"id": "bulk-2", "importMode": "updateIfMatchETag", "eTag": "stale", "status": "enabled"},
            {"id": "bulk-3", "importMode": "deleteIfMatchETag", "eTag": emu.device(&hub, "bulk-3").unwrap().etag},
            {"id": "nobody", "importMode": "delete"},
            {"id": "bulk-1", "importMode": "updateIfMatchETag", "eTag": one.etag, "status": "disabled", "statusReason": "bulk"},
        ])),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    let result = reply.json();
    assert_eq!(result["isSuccessful"], false);
    let errors: Vec<(String, String)> = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["deviceId"].as_str().unwrap().to_owned(),
                e["errorCode"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("bulk-1".to_owned(), "DeviceAlreadyExists".to_owned()),
            ("bulk-2".to_owned(), "PreconditionFailed".to_owned()),
            ("nobody".to_owned(), "DeviceNotFound".to_owned()),
        ]
    );
    assert!(emu.device(&hub, "bulk-3").is_err(), "deleted");
    let one = emu.device(&hub, "bulk-1").unwrap();
    assert_eq!(one.status_reason.as_deref(), Some("bulk"));
    assert_service_time(&one.status_updated_time);

    // Over 100 devices, or none: refused as a whole.
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"id": format!("m-{i}"), "importMode": "create"}))
        .collect();
    let reply = hub_service(&emu, "POST", "/devices", Some(&json!(many)), &[]).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(emu.device(&hub, "m-0").is_err());
    let reply = hub_service(&emu, "POST", "/devices", Some(&json!([])), &[]).await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn list_with_top_and_query_with_continuation() {
    let emu = start().await;
    let hub = emu.default_hub().to_owned();
    let mut keys = Vec::new();
    for i in 0..7 {
        let id = format!("q-{i}");
        keys.push(create_sas_device(&emu, &id).await);
        let site = if i % 2 == 0 { "lab" } else { "field" };
        let reply = hub_service(
            &emu,
            "PATCH",
            &format!("/twins/{id}"),
            Some(&json!({"tags": {"site": site, "rank": i}})),
            &[("if-match", "*".to_owned())],
        )
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }

    let reply = hub_service(&emu, "GET", "/devices?top=3", None, &[]).await;
    assert_eq!(reply.json().as_array().unwrap().len(), 3);

    // The lab devices (q-0, q-2, q-4, q-6), two per page.
    let query = json!({"query": "SELECT * FROM devices WHERE tags.site = 'lab'"});
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut headers = vec![("x-ms-max-item-count", "2".to_owned())];
        if let Some(token) = &token {
            headers.push(("x-ms-continuation", token.clone()));
        }
        let reply = hub_service(&emu, "POST", "/devices/query", Some(&query), &headers).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-ms-item-type"), Some("Twin"));
        pages.push(ids(&reply.json()));
        token = reply.header("x-ms-continuation").map(str::to_owned);
        if token.is_none() {
            break;
        }
        assert!(pages.len() < 5, "the pages end");
    }
    assert_eq!(pages, [vec!["q-0", "q-2"], vec!["q-4", "q-6"]]);

    // Numbers, connection state and boolean combinations.
    let mut conn = hub_device(&emu, "q-3", &keys[3]).await;
    conn.subscribe_ok("$iothub/twin/res/#").await;
    let run = |q: &'static str| {
        let emu = &emu;
        async move {
            let reply = hub_service(
                emu,
                "POST",
                "/devices/query",
                Some(&json!({"query": q})),
                &[],
            )
            .await;
            assert_eq!(reply.status, 200, "{q}: {reply:?}");
            ids(&reply.json())
        }
    };
    assert_eq!(
        run("SELECT * FROM devices WHERE tags.rank >= 5").await,
        ["q-5", "q-6"]
    );
    assert_eq!(
        run("SELECT * FROM devices WHERE connectionState = 'Connected'").await,
        ["q-3"]
    );
    assert_eq!(
        run("SELECT * FROM devices WHERE tags.site = 'field' AND NOT (tags.rank IN [1, 5])").await,
        ["q-3"]
    );
    assert_eq!(run("select * from devices").await.len(), 7);
    let bad = hub_service(
        &emu,
        "POST",
        "/devices/query",
        Some(&json!({"query": "SELECT deviceId FROM devices"})),
        &[],
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    drop(conn);
    let _ = hub;
}
