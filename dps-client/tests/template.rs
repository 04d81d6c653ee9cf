//! Fleet templates and configuration errors: a template configured once stamps independent
//! clients that register against the emulator over real TLS; every configuration problem is
//! reported at once, typed.

mod common;

use common::*;
use dps_auth::SymmetricKey;
use dps_client::{ConfigProblem, ProvisioningClient, ProvisioningError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_stamps_independent_clients() {
    let emu = start().await;
    let template = ProvisioningClient::template(emu.id_scope())
        .endpoint(format!("localhost:{}", emu.mqtt_addr().port()))
        .tls(emu.tls())
        .timing(fast_timing())
        .model_id("dtmi:com:example:Thermostat;1");

    let key_a = emu.enroll_symmetric("tpl-a").await;
    let key_b = emu.enroll_symmetric("tpl-b").await;
    let a = template.for_device("tpl-a", key_a);
    // Changing one stamped client changes neither the template nor its siblings.
    let b = template.for_device("tpl-b", key_b).payload_json("not json");
    assert_eq!(a.registration_id(), "tpl-a");
    assert_eq!(b.registration_id(), "tpl-b");
    assert_eq!(template.registration_id(), "");

    let assignment = a.register().await.unwrap();
    assert_eq!(assignment.device_id(), "tpl-a");
    assert_eq!(assignment.assigned_hub(), HUB);
    assert!(emu.hub_device(HUB, "tpl-a").is_some());

    match b.register().await {
        Err(ProvisioningError::Config(e)) => {
            assert!(
                matches!(e.problems(), [ConfigProblem::Payload { .. }]),
                "{e}"
            );
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    assert!(emu.hub_device(HUB, "tpl-b").is_none(), "b never connected");

    // The template itself registers nothing: it has no registration id.
    match template.register().await {
        Err(ProvisioningError::Config(e)) => {
            assert!(
                matches!(e.problems(), [ConfigProblem::RegistrationId { .. }]),
                "{e}"
            );
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_configuration_problem_is_reported() {
    let key = SymmetricKey::from_base64("c2VjcmV0LWtleS1vZi10aGUtZW5yb2xsbWVudA==").unwrap();
    let client = ProvisioningClient::new("", "Not A Valid Id!", key)
        .endpoint("")
        .payload_json("{ broken");
    let Err(ProvisioningError::Config(error)) = client.register().await else {
        panic!("expected a configuration error");
    };
    assert!(
        matches!(
            error.problems(),
            [
                ConfigProblem::Payload { .. },
                ConfigProblem::EmptyEndpoint,
                ConfigProblem::EmptyIdScope,
                ConfigProblem::RegistrationId { .. },
            ]
        ),
        "{error:?}"
    );
    let text = ProvisioningError::Config(error).to_string();
    assert!(text.starts_with("invalid configuration: "), "{text}");
    assert!(text.contains("the id scope is empty"), "{text}");
    assert!(text.contains("the endpoint is empty"), "{text}");
    assert!(!text.contains("c2VjcmV0"), "no secret in errors: {text}");
}
