//! End-to-end registrations against the in-process emulator over real TLS, on both transports:
//! every authenticator, assignment details and reprovisioning, custom payloads through a
//! custom allocation webhook, certificate issuance, HTTP proxies, cancellation and a fleet
//! registering concurrently.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use dps_auth::{GroupKey, SasAuthenticator, X509Identity};
use dps_client::{
    Assignment, ProvisioningClient, ProvisioningError, ProxyConfig, Substatus, TransportError,
    WebSocketTransport,
};
use dps_emulator::Faults;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

fn payload(assignment: &Assignment) -> Option<Value> {
    assignment
        .payload()
        .map(|raw| serde_json::from_str(raw.get()).unwrap())
}

/// The checks every successful registration must pass.
fn assert_assigned(emu: &TestEmulator, assignment: &Assignment, registration_id: &str, hub: &str) {
    assert_eq!(assignment.assigned_hub(), hub);
    assert_eq!(assignment.device_id(), registration_id);
    assert!(!assignment.operation_id().is_empty());
    let device = emu
        .hub_device(hub, registration_id)
        .expect("the device exists in its hub");
    assert_eq!(device.registration_id.as_deref(), Some(registration_id));
}

// ---------------------------------------------------------------------------------------------
// Every authenticator over both transports

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn individual_symmetric_key() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("sym-{}", via.name());
        let key = emu.enroll_symmetric(&id).await;
        let assignment = via.client(emu, &id, key).register().await.unwrap();
        assert_assigned(emu, &assignment, &id, HUB);
        assert_eq!(assignment.substatus(), Some(&Substatus::InitialAssignment));
        assert_eq!(emu.device_requests(&id), 2, "one register, one poll");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_derived_key() {
    let emu = start().await;
    let group_key = emu.enroll_group_value(sym_group("fleet")).await;
    both(|via| {
        let group_key = &group_key;
        let emu = &emu;
        async move {
            let id = format!("group-dev-{}", via.name());
            let key = group_key.derive(&id).unwrap();
            let assignment = via.client(emu, &id, key).register().await.unwrap();
            assert_assigned(emu, &assignment, &id, HUB);
            assert_eq!(
                emu.registration(&id).unwrap().device_id.as_deref(),
                Some(id.as_str())
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x509_chain_through_an_intermediate() {
    let emu = start().await;
    let root = Ca::root("Test Root");
    let intermediate = root.intermediate("Test Intermediate");
    // The group trusts the intermediate; devices present leaf + intermediate.
    emu.put_enrollment_group(group(x509_group("x509-fleet", &intermediate.pem)), None)
        .await
        .unwrap();
    both(|via| {
        let (emu, intermediate) = (&emu, &intermediate);
        async move {
            let id = format!("x509-dev-{}", via.name());
            let identity = intermediate
                .leaf(&id)
                .identity(&[intermediate.pem.as_str()]);
            assert_eq!(identity.chain_len(), 2);
            let assignment = via.client(emu, &id, identity).register().await.unwrap();
            assert_assigned(emu, &assignment, &id, HUB);
            assert_eq!(assignment.substatus(), Some(&Substatus::InitialAssignment));
        }
    })
    .await;

    // A leaf from a CA no enrollment knows: the emulator answers 401.
    let id = "x509-stranger";
    let identity = Ca::root("Unknown Root").leaf(id).identity(&[]);
    let error = Via::Mqtt
        .client(&emu, id, identity)
        .register()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProvisioningError::Unauthorized { status: 401, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_signer_through_sas_authenticator() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("hsm-{}", via.name());
        let hsm = FakeHsm::new(emu.enroll_symmetric(&id).await);
        let signatures = std::sync::Arc::clone(&hsm.signatures);
        let authenticator =
            SasAuthenticator::new(hsm).with_token_lifetime(Duration::from_secs(300));
        let assignment = via
            .client(emu, &id, authenticator)
            .register()
            .await
            .unwrap();
        assert_assigned(emu, &assignment, &id, HUB);
        assert_eq!(
            signatures.load(Ordering::SeqCst),
            1,
            "one token, signed by the HSM, for the one connection"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Assignment details

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprovisioning_to_another_hub_migrates_the_device() {
    let emu = start_with(|c| c.linked_hubs(["hub-a.local", "hub-b.local"])).await;
    // The first registration goes over one transport, the reprovisioning over the other.
    both(|first| {
        let emu = &emu;
        async move {
            let second = if first == Via::Mqtt {
                Via::Ws
            } else {
                Via::Mqtt
            };
            let id = format!("move-{}", first.name());
            let key = emu
                .enroll_symmetric_value(with(
                    sym_enrollment(&id),
                    json!({ "iotHubs": ["hub-a.local"] }),
                ))
                .await;

            let assignment = first
                .client(emu, &id, key.clone())
                .register()
                .await
                .unwrap();
            assert_assigned(emu, &assignment, &id, "hub-a.local");
            assert_eq!(assignment.substatus(), Some(&Substatus::InitialAssignment));

            let mut enrollment = emu.enrollment(&id).unwrap();
            enrollment.settings.iot_hubs = Some(vec!["hub-b.local".into()]);
            emu.put_enrollment(enrollment, None).await.unwrap();

            let moved = second.client(emu, &id, key).register().await.unwrap();
            assert_assigned(emu, &moved, &id, "hub-b.local");
            assert_eq!(moved.substatus(), Some(&Substatus::DeviceDataMigrated));
            assert!(
                emu.hub_device("hub-a.local", &id).is_none(),
                "the device left its old hub"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_payload_round_trip_through_the_allocation_webhook() {
    let emu = start().await;
    let hook = webhook(|request| {
        let sent = &request["deviceRuntimeContext"]["payload"];
        json!({
            "iotHubHostName": "localhost",
            "payload": { "echo": sent, "config": { "interval": 30, "mode": "eco" } },
        })
    })
    .await;
    let custom = |id: &str| {
        with(
            sym_enrollment(id),
            json!({
                "allocationPolicy": "custom",
                "customAllocationDefinition": { "webhookUrl": hook.url, "apiVersion": "2021-10-01" },
            }),
        )
    };
    both(|via| {
        let (emu, custom) = (&emu, &custom);
        async move {
            // Any serializable payload.
            let id = format!("custom-{}", via.name());
            let key = emu.enroll_symmetric_value(custom(&id)).await;
            let sent = json!({ "firmware": "1.2.3", "sensors": ["t", "h"], "battery": 0.93 });
            let assignment = via
                .client(emu, &id, key)
                .payload(&sent)
                .register()
                .await
                .unwrap();
            assert_assigned(emu, &assignment, &id, HUB);
            assert_eq!(
                payload(&assignment),
                Some(json!({ "echo": sent, "config": { "interval": 30, "mode": "eco" } }))
            );

            // The Plug and Play helper sends {"modelId": ...}.
            let id = format!("pnp-{}", via.name());
            let key = emu.enroll_symmetric_value(custom(&id)).await;
            let model = "dtmi:com:example:Thermostat;1";
            let assignment = via
                .client(emu, &id, key)
                .model_id(model)
                .register()
                .await
                .unwrap();
            assert_eq!(
                payload(&assignment).unwrap()["echo"],
                json!({ "modelId": model })
            );
        }
    })
    .await;

    let requests = hook.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    for request in &requests {
        let context = &request["deviceRuntimeContext"];
        let id = context["registrationId"].as_str().unwrap();
        let expected = if id.starts_with("pnp-") {
            json!({ "modelId": "dtmi:com:example:Thermostat;1" })
        } else {
            json!({ "firmware": "1.2.3", "sensors": ["t", "h"], "battery": 0.93 })
        };
        assert_eq!(context["payload"], expected, "{request:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_webhook_is_a_typed_failure() {
    let emu = start().await;
    let id = "custom-broken";
    let key = emu
        .enroll_symmetric_value(with(
            sym_enrollment(id),
            json!({
                "allocationPolicy": "custom",
                // Nothing listens on the discard port.
                "customAllocationDefinition": { "webhookUrl": "http://127.0.0.1:9/allocate" },
            }),
        ))
        .await;
    let error = Via::Mqtt
        .client(&emu, id, key)
        .register()
        .await
        .unwrap_err();
    let ProvisioningError::Failed {
        error_code,
        message,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(error_code.map(|c| c.0), Some(400_207), "{error}");
    assert!(message.as_deref().unwrap().contains("Custom allocation"));
    assert!(!error.is_retriable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csr_issues_a_certificate_chaining_to_the_emulator_ca() {
    let emu = start().await;
    let group_key = emu.enroll_group_value(sym_group("csr-fleet")).await;
    // Certificates issued by the emulator's CA are accepted by this group, to prove they work.
    emu.put_enrollment_group(group(x509_group("issued", emu.ca_pem())), None)
        .await
        .unwrap();
    both(|via| {
        let (emu, group_key) = (&emu, &group_key);
        async move {
            let id = format!("csr-dev-{}", via.name());
            let (csr_der, key_pair) = csr(&id);
            let client = via.client(emu, &id, group_key.derive(&id).unwrap());
            // No api-version given: `.csr()` switches to one that accepts a CSR.
            let assignment = client.clone().csr(&csr_der).register().await.unwrap();
            assert_assigned(emu, &assignment, &id, HUB);

            let chain: Vec<Vec<u8>> = assignment
                .issued_certificate_chain()
                .iter()
                .map(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap()
                })
                .collect();
            assert_eq!(chain.len(), 2, "leaf then the issuing CA");
            assert_eq!(chain[1], emu.ca_der().to_vec(), "the chain ends at the CA");
            let leaf = &chain[0];
            assert!(
                leaf.windows(key_pair.public_key_raw().len())
                    .any(|w| w == key_pair.public_key_raw()),
                "the leaf certifies the CSR's key"
            );
            assert!(
                leaf.windows(id.len()).any(|w| w == id.as_bytes()),
                "the leaf names the device"
            );

            // The issued certificate and the CSR's key are a working identity.
            let pem: String = assignment
                .issued_certificate_chain()
                .iter()
                .map(|b64| {
                    format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
                })
                .collect();
            let identity =
                X509Identity::from_pem(pem.as_bytes(), key_pair.serialize_pem().as_bytes())
                    .unwrap();
            let again = via.client(emu, &id, identity).register().await.unwrap();
            assert_assigned(emu, &again, &id, HUB);

            // With the old api-version forced, the service rejects the CSR.
            let (csr_der, _) = csr(&id);
            let error = client
                .csr(&csr_der)
                .api_version("2019-03-31")
                .register()
                .await
                .unwrap_err();
            assert!(
                matches!(error, ProvisioningError::Rejected { status: 400, .. }),
                "{error:?}"
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// HTTP proxy (WebSocket only)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_an_authenticating_proxy() {
    let emu = start().await;
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("proxyuser:proxypass")
    );
    let proxy = Relay::start(emu.https_addr(), RelayMode::Proxy(Some(authorization))).await;
    let id = "behind-proxy";
    let key = emu.enroll_symmetric(id).await;

    let client = Via::Ws.client(&emu, id, key);
    let assignment = client
        .clone()
        .transport(WebSocketTransport::via_proxy(
            ProxyConfig::new(proxy.url()).with_basic_auth("proxyuser", "proxypass"),
        ))
        .register()
        .await
        .unwrap();
    assert_assigned(&emu, &assignment, id, HUB);
    let target = format!("localhost:{}", emu.https_addr().port());
    assert_eq!(*proxy.tunnels.lock().unwrap(), [target]);

    // Wrong proxy credentials: a configuration error, not retried.
    let error = client
        .transport(WebSocketTransport::via_proxy(
            ProxyConfig::new(proxy.url()).with_basic_auth("proxyuser", "wrong"),
        ))
        .register()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ProvisioningError::Transport(TransportError::Proxy { status: 407 })
        ),
        "{error:?}"
    );
    assert!(!error.is_retriable());
    assert_eq!(proxy.accepted(), 2, "the refused tunnel was not retried");
}

// ---------------------------------------------------------------------------------------------
// Cancellation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_register_closes_the_connection() {
    both(|via| async move {
        let emu = start().await;
        let relay = Relay::start(via.addr(&emu), RelayMode::Plain).await;
        let id = format!("cancel-{}", via.name());
        let key = emu.enroll_symmetric(&id).await;
        let client = via.client_at(&emu, &relay.endpoint(), &id, key);

        // Answers come 2 s late: the registration is mid-way when its future is dropped.
        emu.set_faults(Faults {
            delay_ms: 2_000,
            ..Faults::default()
        });
        let started = tokio::time::Instant::now();
        tokio::select! {
            result = client.register() => panic!("no answer was expected yet: {result:?}"),
            () = async {
                while emu.device_requests(&id) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Let the request settle (PUBACK) before cancelling.
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(relay.open(), 1, "the registration's connection is open");
            } => {}
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(relay.accepted(), 1);
        assert!(
            relay.all_closed_within(Duration::from_secs(1)).await,
            "the dropped registration's socket is closed"
        );
        // Nothing keeps running in the background: no retry, no reconnect.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(emu.device_requests(&id), 1);
        assert_eq!(relay.accepted(), 1);

        // The device registers normally afterwards.
        emu.set_faults(Faults::default());
        let assignment = client.register().await.unwrap();
        assert_eq!(assignment.device_id(), id);
        assert_eq!(emu.device_requests(&id), 3);
        assert!(relay.all_closed_within(Duration::from_secs(1)).await);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// A fleet from one process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_concurrently() {
    const DEVICES: usize = 200;
    let emu = start().await;
    let group_key: GroupKey = emu.enroll_group_value(sym_group("big-fleet")).await;
    let clients: Vec<ProvisioningClient> = (0..DEVICES)
        .map(|i| {
            let id = format!("fleet-{i:03}");
            let via = Via::BOTH[i % 2];
            via.client(&emu, &id, group_key.derive(&id).unwrap())
                .deadline(Duration::from_secs(45))
        })
        .collect();
    let started = std::time::Instant::now();
    let results: Vec<(String, Result<Assignment, ProvisioningError>)> = futures_util::stream::iter(
        &clients,
    )
    .map(|client| async move { (client.registration_id().to_owned(), client.register().await) })
    .buffer_unordered(50)
    .collect()
    .await;
    let elapsed = started.elapsed();

    let mut device_ids = HashSet::new();
    for (id, result) in &results {
        let assignment = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{id} not assigned: {e}"));
        assert_eq!(assignment.device_id(), id);
        assert_eq!(assignment.assigned_hub(), HUB);
        device_ids.insert(assignment.device_id().to_owned());
    }
    assert_eq!(device_ids.len(), DEVICES);
    let in_hub: HashSet<String> = emu.hub_devices().into_iter().map(|d| d.device_id).collect();
    assert_eq!(in_hub, device_ids, "each device exists once in the hub");
    eprintln!("{DEVICES} registrations in {elapsed:?}");
}
