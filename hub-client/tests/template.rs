//! Fleet templates and configuration errors: one builder configured once stamps independent
//! clients, each connected to the emulator as its own device over real TLS; every
//! configuration problem is reported at once, typed.

mod common;

use std::time::Duration;

use common::{Kind, start};
use dps_auth::SymmetricKey;
use hub_client::{ConfigProblem, HubClient, HubError, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_stamps_independent_clients() {
    let env = start().await;
    let key_a = env.device("tpl-a").await;
    let key_b = env.device("tpl-b").await;
    // The template's own device does not exist: only stamped builders connect.
    let template = env
        .builder(Kind::Mqtt, "no-such-device", &key_a)
        .deadline(Duration::from_secs(20));

    let a = template
        .for_device("tpl-a", SymmetricKey::from_base64(&key_a).unwrap())
        .connect()
        .await
        .unwrap();
    // A module id on one stamped builder is not carried to the next one.
    let bad = template
        .for_device("tpl-b", SymmetricKey::from_base64(&key_b).unwrap())
        .module("bad module id!");
    let b = template
        .for_device("tpl-b", SymmetricKey::from_base64(&key_b).unwrap())
        .connect()
        .await
        .unwrap();
    assert_eq!(a.device_id(), "tpl-a");
    assert_eq!(b.device_id(), "tpl-b");
    assert_eq!(b.module_id(), None);

    a.send(Message::new("from a")).await.unwrap();
    b.send(Message::new("from b")).await.unwrap();
    assert_eq!(env.telemetry_of("tpl-a").len(), 1);
    assert_eq!(env.telemetry_of("tpl-b").len(), 1);

    match bad.connect().await {
        Err(HubError::Config(e)) => {
            assert!(matches!(e.problems(), [ConfigProblem::ModuleId(_)]), "{e}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn every_configuration_problem_is_reported() {
    let key = SymmetricKey::from_base64("c2VjcmV0LWtleS1vZi10aGUtZW5yb2xsbWVudA==").unwrap();
    let builder = HubClient::builder("", "", key).module("no spaces allowed");
    let Err(HubError::Config(error)) = builder.connect().await else {
        panic!("expected a configuration error");
    };
    assert!(
        matches!(
            error.problems(),
            [
                ConfigProblem::EmptyHost,
                ConfigProblem::DeviceId(_),
                ConfigProblem::ModuleId(_),
            ]
        ),
        "{error:?}"
    );
    let text = HubError::Config(error).to_string();
    assert!(text.contains("the hub host name is empty"), "{text}");
    assert!(text.contains("the device id is not valid"), "{text}");
    assert!(!text.contains("c2VjcmV0"), "no secret in errors: {text}");
}
