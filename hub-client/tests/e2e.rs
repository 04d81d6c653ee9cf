//! End to end against the emulator's IoT Hub, over MQTT/TLS and MQTT/WebSocket: telemetry with
//! properties, twin, desired pushes, methods, C2D, modules, outages, forced disconnects in the
//! middle of 10,000 messages, token renewal and disabled devices.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Env, Kind, Relay, eventually, next, record_states, start};
use dps_emulator::model::DeviceStatus;
use dps_emulator::{CloudToDeviceMessage, MethodInvocation};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hub_client::{
    ConnectionState, DesiredUpdate, DisconnectReason, HubClient, HubError, Message, Renewal,
    SendError, StopReason,
};
use serde_json::json;

const STEP: Duration = Duration::from_secs(10);

macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mqtt() {
                super::$name(Kind::Mqtt).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn websocket() {
                super::$name(Kind::Ws).await;
            }
        }
    )*};
}

both_transports!(
    telemetry_with_properties,
    twin_get_report_and_desired_push,
    outage_resyncs_the_twin_and_delivers_queued_c2d,
    direct_methods,
    c2d_with_properties,
    modules,
    forced_disconnects_lose_none_of_10000,
    short_lived_token_is_renewed_without_loss,
    disabled_device_stops_with_a_typed_reason,
    connection_string_with_gateway,
    x509_self_signed_device,
);

async fn telemetry_with_properties(kind: Kind) {
    let env = start().await;
    let key = env.device("tel-1").await;
    let hub = env.builder(kind, "tel-1", &key).connect().await.unwrap();
    assert_eq!(hub.connection_state(), Some(ConnectionState::Connected));
    for i in 0..3 {
        hub.send(
            Message::json(&json!({ "n": i }))
                .unwrap()
                .message_id(format!("m{i}"))
                .correlation_id("corr")
                .creation_time("2024-01-01T00:00:00Z")
                .component("thermostat1")
                .property("alert", "a b&c=d")
                .property("seq", i.to_string()),
        )
        .await
        .unwrap();
    }
    let events = env.telemetry_of("tel-1");
    assert_eq!(events.len(), 3);
    for (i, event) in events.iter().enumerate() {
        let system = &event.system_properties;
        assert_eq!(system["messageId"], format!("m{i}"));
        assert_eq!(system["correlationId"], "corr");
        assert_eq!(system["contentType"], "application/json");
        assert_eq!(system["contentEncoding"], "utf-8");
        assert_eq!(system["creationTimeUtc"], "2024-01-01T00:00:00Z");
        assert_eq!(system["componentName"], "thermostat1");
        assert_eq!(event.properties["alert"], "a b&c=d");
        assert_eq!(event.properties["seq"], i.to_string());
        assert_eq!(event.body_json(), Some(json!({ "n": i })));
    }
    // The size limit is checked before anything is queued.
    assert!(matches!(
        hub.send(Message::new(vec![0u8; 262_145])).await,
        Err(SendError::TooLarge { .. })
    ));
    hub.close().await;
    assert_eq!(
        hub.connection_state(),
        Some(ConnectionState::Stopped(StopReason::Closed))
    );
    assert_eq!(hub.send(Message::new("late")).await, Err(SendError::Closed));
}

async fn twin_get_report_and_desired_push(kind: Kind) {
    let env = start().await;
    let key = env.device("twin-1").await;
    let hub = env.builder(kind, "twin-1", &key).connect().await.unwrap();
    let mut desired = hub.desired_patches().unwrap();
    // The first connect reads the twin.
    match next(&mut desired, STEP).await {
        DesiredUpdate::Resync { twin, missed } => {
            assert_eq!(missed, None);
            assert!(twin.desired_version().is_some());
        }
        other => panic!("{other:?}"),
    }
    let version = hub
        .update_reported(&json!({ "firmware": "1.2.0", "battery": 97 }))
        .await
        .unwrap();
    let twin = hub.get_twin().await.unwrap();
    assert_eq!(twin.reported["firmware"], "1.2.0");
    assert_eq!(twin.reported_version(), Some(version));
    let service_view = env.emu.twin(&env.hub, "twin-1").unwrap();
    assert_eq!(service_view.properties.reported["battery"], 97);

    // Deleting with null.
    let newer = hub
        .update_reported(&json!({ "battery": null }))
        .await
        .unwrap();
    assert!(newer > version);
    assert!(
        env.emu
            .twin(&env.hub, "twin-1")
            .unwrap()
            .properties
            .reported
            .get("battery")
            .is_none()
    );

    // The service changes a desired property: pushed at once.
    env.emu
        .patch_desired(&env.hub, "twin-1", json!({ "fanSpeed": 3 }))
        .await
        .unwrap();
    match next(&mut desired, STEP).await {
        DesiredUpdate::Patch { version, patch } => {
            assert_eq!(patch["fanSpeed"], 3);
            assert_eq!(patch["$version"], version);
        }
        other => panic!("{other:?}"),
    }
    // Not an object: refused before sending.
    assert_eq!(
        hub.update_reported(&json!([1, 2])).await,
        Err(hub_client::TwinError::InvalidPatch)
    );
    hub.close().await;
}

async fn outage_resyncs_the_twin_and_delivers_queued_c2d(kind: Kind) {
    let env = start().await;
    let key = env.device("out-1").await;
    let relay = Relay::start(env.addr(kind)).await;
    let hub = env
        .builder_via(kind, relay.endpoint(), "out-1", &key)
        .connect()
        .await
        .unwrap();
    let mut desired = hub.desired_patches().unwrap();
    let mut c2d = hub.c2d_messages().unwrap();
    let states = record_states(hub.connection_states().unwrap());
    assert!(matches!(
        next(&mut desired, STEP).await,
        DesiredUpdate::Resync { missed: None, .. }
    ));

    // An outage: the connection drops and cannot come back for a while.
    relay.block(true);
    relay.cut();
    eventually(STEP, "disconnected", || {
        !matches!(hub.connection_state(), Some(ConnectionState::Connected))
    })
    .await;
    // Meanwhile the service changes the twin twice and sends a message; telemetry queues up.
    for speed in [4, 5] {
        env.emu
            .patch_desired(&env.hub, "out-1", json!({ "fanSpeed": speed }))
            .await
            .unwrap();
    }
    env.emu
        .send_c2d(
            &env.hub,
            "out-1",
            CloudToDeviceMessage::new("while you were out").message_id("offline-1"),
        )
        .await
        .unwrap();
    let queued: Vec<_> = (0..20)
        .map(|i| hub.try_send(Message::new(format!("q{i}"))).unwrap())
        .collect();
    assert!(hub.pending() >= 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.block(false);

    // Back: the twin is read again and the gap reported; nothing was lost.
    match next(&mut desired, STEP).await {
        DesiredUpdate::Resync { twin, missed } => {
            assert_eq!(missed, Some(2));
            assert_eq!(twin.desired["fanSpeed"], 5);
        }
        other => panic!("{other:?}"),
    }
    let message = next(&mut c2d, STEP).await;
    assert_eq!(message.message_id(), Some("offline-1"));
    assert_eq!(message.payload_str(), Some("while you were out"));
    for receipt in queued {
        tokio::time::timeout(STEP, receipt).await.unwrap().unwrap();
    }
    let bodies: Vec<_> = env
        .telemetry_of("out-1")
        .iter()
        .filter_map(|e| e.body_text().map(str::to_owned))
        .collect();
    assert_eq!(bodies, (0..20).map(|i| format!("q{i}")).collect::<Vec<_>>());
    let seen = states.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| matches!(
            s,
            ConnectionState::Disconnected {
                reason: DisconnectReason::Network,
                ..
            }
        )),
        "{seen:?}"
    );
    hub.close().await;
}

async fn direct_methods(kind: Kind) {
    let env = start().await;
    let key = env.device("meth-1").await;
    let hub = env.builder(kind, "meth-1", &key).connect().await.unwrap();
    let mut requests = hub.method_requests().unwrap();
    let answering = tokio::spawn(async move {
        let request = requests.recv().await.unwrap();
        assert_eq!(request.name(), "thermostat1*getMaxMinReport");
        assert_eq!(request.component(), Some("thermostat1"));
        assert_eq!(request.command(), "getMaxMinReport");
        let asked = request.payload_json().unwrap();
        request
            .respond(200, json!({ "echo": asked, "max": 30.5 }))
            .await
            .unwrap();
        let second = requests.recv().await.unwrap();
        assert_eq!(second.command(), "reboot");
        assert_eq!(second.payload_json().unwrap(), serde_json::Value::Null);
        second.respond(404, json!("no such thing")).await.unwrap();
    });
    let result = env
        .emu
        .invoke_method(
            &env.hub,
            "meth-1",
            MethodInvocation::new("thermostat1*getMaxMinReport")
                .payload(json!({ "since": "2024-01-01T00:00:00Z" }))
                .response_timeout(5),
        )
        .await
        .unwrap();
    assert_eq!(result.status, 200);
    assert_eq!(result.payload["max"], 30.5);
    assert_eq!(
        result.payload["echo"],
        json!({ "since": "2024-01-01T00:00:00Z" })
    );
    let result = env
        .emu
        .invoke_method(
            &env.hub,
            "meth-1",
            MethodInvocation::new("reboot").response_timeout(5),
        )
        .await
        .unwrap();
    assert_eq!(
        (result.status, result.payload),
        (404, json!("no such thing"))
    );
    answering.await.unwrap();
    hub.close().await;
}

async fn c2d_with_properties(kind: Kind) {
    let env = start().await;
    let key = env.device("c2d-1").await;
    let hub = env.builder(kind, "c2d-1", &key).connect().await.unwrap();
    let mut c2d = hub.c2d_messages().unwrap();
    // Each stream can be taken once: a second take is an error that says so.
    let again = hub.c2d_messages().unwrap_err();
    assert_eq!(again.stream, "cloud-to-device message");
    assert_eq!(
        again.to_string(),
        "the cloud-to-device message stream was already taken: each stream of a client can be \
         taken once"
    );
    drop(hub.method_requests().unwrap());
    assert_eq!(
        hub.method_requests().unwrap_err().stream,
        "method request",
        "a dropped stream stays taken"
    );
    env.emu
        .send_c2d(
            &env.hub,
            "c2d-1",
            CloudToDeviceMessage::new(r#"{"led":"on"}"#)
                .message_id("c2d-msg-1")
                .correlation_id("corr-9")
                .content_type("application/json")
                .content_encoding("utf-8")
                .property("color", "dark blue")
                .property("path", "a/b?c=d"),
        )
        .await
        .unwrap();
    let message = next(&mut c2d, STEP).await;
    assert_eq!(message.message_id(), Some("c2d-msg-1"));
    assert_eq!(message.correlation_id(), Some("corr-9"));
    assert_eq!(message.content_type(), Some("application/json"));
    assert_eq!(message.content_encoding(), Some("utf-8"));
    // The hub writes `deviceBound`; the emulator writes `devicebound`.
    assert!(
        message
            .to()
            .is_some_and(|to| to.eq_ignore_ascii_case("/devices/c2d-1/messages/deviceBound")),
        "{:?}",
        message.to()
    );
    assert_eq!(message.property("color"), Some("dark blue"));
    assert_eq!(message.property("path"), Some("a/b?c=d"));
    assert_eq!(message.payload_str(), Some(r#"{"led":"on"}"#));
    // Acknowledged by the device: nothing stays queued.
    eventually(STEP, "c2d completed", || {
        env.emu
            .device(&env.hub, "c2d-1")
            .unwrap()
            .cloud_to_device_message_count
            == 0
    })
    .await;
    hub.close().await;
}

async fn modules(kind: Kind) {
    let env = start().await;
    env.device("edge-1").await;
    let key = env.module("edge-1", "filter").await;
    let module = env
        .builder(kind, "edge-1", &key)
        .module("filter")
        .connect()
        .await
        .unwrap();
    assert_eq!(module.module_id(), Some("filter"));
    let mut inputs = module.inputs().unwrap();
    let mut methods = module.method_requests().unwrap();

    module
        .send(Message::new("hot").output("alerts").property("t", "41"))
        .await
        .unwrap();
    let event = env.telemetry_of("edge-1").pop().unwrap();
    assert_eq!(event.module_id.as_deref(), Some("filter"));
    assert_eq!(event.system_properties["outputName"], "alerts");
    assert_eq!(
        event.system_properties["iothub-connection-module-id"],
        "filter"
    );
    assert_eq!(event.properties["t"], "41");

    env.emu
        .send_to_module_input(
            &env.hub,
            "edge-1",
            "filter",
            "input1",
            CloudToDeviceMessage::new("42").message_id("in-1"),
        )
        .unwrap();
    let input = next(&mut inputs, STEP).await;
    assert_eq!(input.input_name(), Some("input1"));
    assert_eq!(input.message_id(), Some("in-1"));
    assert_eq!(input.payload_str(), Some("42"));

    let version = module
        .update_reported(&json!({ "threshold": 40 }))
        .await
        .unwrap();
    let twin = env.emu.module_twin(&env.hub, "edge-1", "filter").unwrap();
    assert_eq!(twin.properties.reported["threshold"], 40);
    assert_eq!(
        module.get_twin().await.unwrap().reported_version(),
        Some(version)
    );

    let answering = tokio::spawn(async move {
        let request = methods.recv().await.unwrap();
        request
            .respond(200, json!({ "module": true }))
            .await
            .unwrap();
    });
    let result = env
        .emu
        .invoke_module_method(
            &env.hub,
            "edge-1",
            "filter",
            MethodInvocation::new("ping").response_timeout(5),
        )
        .await
        .unwrap();
    assert_eq!(
        (result.status, result.payload),
        (200, json!({ "module": true }))
    );
    answering.await.unwrap();
    module.close().await;
}

async fn forced_disconnects_lose_none_of_10000(kind: Kind) {
    const COUNT: usize = 10_000;
    let env = start().await;
    let key = env.device("bulk-1").await;
    let relay = Relay::start(env.addr(kind)).await;
    let hub = env
        .builder_via(kind, relay.endpoint(), "bulk-1", &key)
        .queue_capacity(2_000)
        .features(hub_client::Features::NONE)
        .connect()
        .await
        .unwrap();
    let states = record_states(hub.connection_states().unwrap());

    // Read the hub's feed as it fills (it keeps the last 10,000 events).
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        let emu_events = {
            let env = &env;
            let hub_name = env.hub.clone();
            move |since| env.emu.hub_events(&hub_name, since)
        };
        let mut since = 0;
        let mut ids: BTreeMap<String, u32> = BTreeMap::new();
        async move {
            loop {
                let finished = done.load(Ordering::SeqCst);
                for event in emu_events(since) {
                    since = since.max(event.sequence_number);
                    if let Some(id) = event.system_properties.get("messageId") {
                        *ids.entry(id.clone()).or_default() += 1;
                    }
                }
                if finished {
                    return ids;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Cut every connection through the relay every 150 ms while sending.
    let cutter = {
        let done = &done;
        let relay = &relay;
        async move {
            let mut cuts = 0;
            while !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                relay.cut();
                cuts += 1;
            }
            cuts
        }
    };
    let sender = async {
        let started = Instant::now();
        let mut receipts = FuturesUnordered::new();
        let mut sent = 0;
        while sent < COUNT || !receipts.is_empty() {
            while sent < COUNT {
                let message = Message::new(vec![b'x'; 64])
                    .message_id(sent.to_string())
                    .property("n", sent.to_string());
                match hub.try_send(message) {
                    Ok(receipt) => {
                        receipts.push(receipt);
                        sent += 1;
                    }
                    Err(SendError::QueueFull { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            match tokio::time::timeout(Duration::from_secs(30), receipts.next()).await {
                Ok(Some(result)) => result.unwrap(),
                Ok(None) => {}
                Err(_) => panic!("no acknowledgement for 30 s; {} pending", hub.pending()),
            }
        }
        let elapsed = started.elapsed();
        done.store(true, Ordering::SeqCst);
        elapsed
    };
    let (elapsed, cuts, ids) = tokio::join!(sender, cutter, reader);
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    let expected: BTreeSet<String> = (0..COUNT).map(|i| i.to_string()).collect();
    let got: BTreeSet<String> = ids.keys().cloned().collect();
    assert_eq!(
        got.len(),
        COUNT,
        "missing: {:?}",
        expected.difference(&got).take(10).collect::<Vec<_>>()
    );
    assert_eq!(got, expected);
    let reconnects = states
        .lock()
        .unwrap()
        .iter()
        .filter(|s| matches!(s, ConnectionState::Disconnected { .. }))
        .count();
    println!(
        "{kind:?}: {COUNT} messages in {elapsed:?} through {cuts} cuts, {reconnects} reconnects, {duplicates} duplicates"
    );
    assert!(reconnects >= 3, "only {reconnects} reconnects");
    hub.close().await;
}

async fn short_lived_token_is_renewed_without_loss(kind: Kind) {
    let env = start().await;
    let key = env.device("short-1").await;
    let hub = env
        .builder(kind, "short-1", &key)
        .token_lifetime(Duration::from_secs(5))
        .renewal(Renewal::default().min_interval(Duration::from_millis(500)))
        .features(hub_client::Features::NONE)
        .connect()
        .await
        .unwrap();
    let states = record_states(hub.connection_states().unwrap());
    let started = Instant::now();
    let mut receipts = Vec::new();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(11) {
        receipts.push(
            hub.try_send(Message::new("tick").message_id(n.to_string()))
                .unwrap(),
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for receipt in receipts {
        tokio::time::timeout(STEP, receipt).await.unwrap().unwrap();
    }
    let seen = states.lock().unwrap().clone();
    let renewals = seen
        .iter()
        .filter(|s| {
            matches!(
                s,
                ConnectionState::Disconnected {
                    reason: DisconnectReason::TokenRenewal,
                    ..
                }
            )
        })
        .count();
    assert!(renewals >= 2, "{seen:?}");
    assert!(
        seen.iter().all(|s| matches!(
            s,
            ConnectionState::Connected
                | ConnectionState::Disconnected {
                    reason: DisconnectReason::TokenRenewal,
                    ..
                }
        )),
        "only renewals, never an expiry: {seen:?}"
    );
    let ids: BTreeSet<String> = env
        .telemetry_of("short-1")
        .iter()
        .filter_map(|e| e.system_properties.get("messageId").cloned())
        .collect();
    assert_eq!(ids.len(), n, "every message arrived");
    hub.close().await;
}

async fn disabled_device_stops_with_a_typed_reason(kind: Kind) {
    let env = start().await;
    let key = env.device("dis-1").await;
    let hub = env.builder(kind, "dis-1", &key).connect().await.unwrap();
    let states = record_states(hub.connection_states().unwrap());
    let mut device = env.emu.device(&env.hub, "dis-1").unwrap();
    device.status = DeviceStatus::Disabled;
    env.emu.update_device(&env.hub, device, None).await.unwrap();
    // The hub drops the connection; the reconnect is refused (CONNACK 5) and the client stops
    // instead of retrying forever.
    eventually(STEP, "stopped", || {
        matches!(hub.connection_state(), Some(ConnectionState::Stopped(_)))
    })
    .await;
    assert_eq!(
        hub.connection_state(),
        Some(ConnectionState::Stopped(StopReason::Refused { code: 5 }))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = states.lock().unwrap().clone();
    assert_eq!(
        seen.last(),
        Some(&ConnectionState::Stopped(StopReason::Refused { code: 5 }))
    );
    assert!(seen.len() <= 3, "no retry storm: {seen:?}");
    assert_eq!(hub.send(Message::new("x")).await, Err(SendError::Closed));

    // A new client for the disabled device fails at once with the reason.
    let error = env
        .builder(kind, "dis-1", &key)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, HubError::Refused { code: 5 }), "{error}");
    assert!(!error.is_retriable());
    // So does a wrong key.
    let wrong = dps_testkit::emulator::test_key(99);
    let error = env
        .builder(kind, "dis-1", &wrong)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, HubError::Refused { code: 5 }), "{error}");
    assert!(!error.to_string().contains(&wrong));
}

async fn connection_string_with_gateway(kind: Kind) {
    let env = start().await;
    let key = env.device("cs-1").await;
    let cs = format!(
        "HostName={};DeviceId=cs-1;SharedAccessKey={key};GatewayHostName={}",
        env.hub,
        env.endpoint(kind)
    );
    let builder = HubClient::from_connection_string(&cs)
        .unwrap()
        .tls(env.tls());
    let builder = match kind {
        Kind::Mqtt => builder,
        Kind::Ws => builder.transport(hub_client::WebSocketTransport::new()),
    };
    let hub = builder.connect().await.unwrap();
    hub.send(Message::new("via connection string"))
        .await
        .unwrap();
    assert_eq!(env.telemetry_of("cs-1").len(), 1);
    // Dropping the last handle closes the connection.
    drop(hub);
    eventually(STEP, "device disconnected", || {
        env.emu.device(&env.hub, "cs-1").unwrap().connection_state
            == dps_emulator::DeviceConnectionState::Disconnected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_then_send_from_the_registration() {
    use dps_emulator::model::{
        AttestationMechanism, AttestationType, EnrollmentSettings, IndividualEnrollment,
    };
    let env: Env = start().await;
    let enrollment = env
        .emu
        .put_enrollment(
            IndividualEnrollment {
                registration_id: "prov-1".into(),
                device_id: None,
                registration_state: None,
                optional_device_information: None,
                settings: EnrollmentSettings {
                    attestation: AttestationMechanism {
                        kind: AttestationType::SymmetricKey,
                        ..AttestationMechanism::default()
                    },
                    ..EnrollmentSettings::default()
                },
            },
            None,
        )
        .await
        .unwrap();
    let key = enrollment
        .settings
        .attestation
        .symmetric_key
        .unwrap()
        .primary_key
        .unwrap();
    let key = dps_auth::SymmetricKey::from_base64(&key).unwrap();
    let assignment = dps_client::ProvisioningClient::new(env.emu.id_scope(), "prov-1", key.clone())
        .endpoint(env.endpoint(Kind::Mqtt))
        .tls(env.tls())
        .register()
        .await
        .unwrap();
    let hub = HubClient::from_registration(&assignment, key)
        .endpoint(env.endpoint(Kind::Mqtt))
        .tls(env.tls())
        .model_id("dtmi:com:example:Thermostat;1")
        .connect()
        .await
        .unwrap();
    hub.send(Message::new("hello from a provisioned device"))
        .await
        .unwrap();
    let events = env.telemetry_of(assignment.device_id());
    assert_eq!(events.len(), 1);
    hub.close().await;
}

async fn x509_self_signed_device(kind: Kind) {
    use dps_emulator::DeviceIdentity;
    use dps_emulator::model::{HubAuthType, HubAuthentication, X509Thumbprint};

    let env = start().await;
    let cert = dps_testkit::pki::self_signed("x509-1");
    let thumbprint = cert.thumbprint();
    env.emu
        .create_device(
            &env.hub,
            DeviceIdentity {
                device_id: "x509-1".into(),
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
    let identity = cert.identity(&[]);
    let builder = HubClient::builder(&env.hub, "x509-1", identity)
        .endpoint(env.endpoint(kind))
        .tls(env.tls());
    let builder = match kind {
        Kind::Mqtt => builder,
        Kind::Ws => builder.transport(hub_client::WebSocketTransport::new()),
    };
    let hub = builder.connect().await.unwrap();
    hub.send(Message::new("signed by a certificate"))
        .await
        .unwrap();
    let events = env.telemetry_of("x509-1");
    assert_eq!(
        events[0].system_properties["iothub-connection-auth-method"],
        "x509Certificate"
    );
    hub.close().await;
}
