//! The first connection gives up after `max_connect_failures` failed attempts in a row with a
//! typed `HubError::Unreachable` naming the endpoint and the last failure, instead of waiting
//! out the whole deadline: against a closed port, and against the emulator refusing every
//! connection (its connection cap at 0). Over MQTT/TLS and MQTT/WebSocket.

mod common;

use std::io;
use std::time::Duration;

use common::{Env, Kind};
use dps_testkit::emulator::TestEmulator;
use hub_client::{HubError, TransportError};

/// Far longer than the bounded attempts take: reaching it would mean the bound was ignored.
const DEADLINE: Duration = Duration::from_secs(120);

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
    a_closed_port_is_unreachable_after_the_bound,
    a_refusing_emulator_is_unreachable_after_the_bound,
);

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

async fn a_closed_port_is_unreachable_after_the_bound(kind: Kind) {
    let env = common::start().await;
    let key = env.device("nowhere").await;
    let port = closed_port().await;
    let endpoint = format!("127.0.0.1:{port}");
    let error = env
        .builder_via(kind, endpoint.clone(), "nowhere", &key)
        .deadline(DEADLINE)
        .max_connect_failures(Some(2))
        .connect()
        .await
        .expect_err("nothing listens there");
    match &error {
        HubError::Unreachable {
            attempts,
            endpoint: named,
            last: Some(TransportError::Io { kind, .. }),
        } => {
            assert_eq!(*attempts, 2);
            assert_eq!(named, &endpoint);
            assert_eq!(*kind, io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected Unreachable with the refused socket, got {other:?}"),
    }
    assert!(error.is_retriable());
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot reach the hub at {endpoint}: 2 connection attempts in a row failed; the last: "
        )),
        "{text}"
    );
}

async fn a_refusing_emulator_is_unreachable_after_the_bound(kind: Kind) {
    let emu = TestEmulator::start_with(|mut config| {
        config.file.behaviour.limits.max_connections = 0;
        config
    })
    .await;
    let hub = emu.hub().to_owned();
    let env = Env { emu, hub };
    let key = env.device("refused").await;
    let error = env
        .builder(kind, "refused", &key)
        .deadline(DEADLINE)
        .max_connect_failures(Some(3))
        .connect()
        .await
        .expect_err("the emulator admits no connection");
    match &error {
        HubError::Unreachable {
            attempts,
            endpoint,
            last: Some(last),
        } => {
            assert_eq!(*attempts, 3);
            assert_eq!(endpoint, &env.endpoint(kind));
            assert!(last.is_retriable(), "{last}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// Without a bound, the first connection keeps trying until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bound_the_deadline_ends_the_attempts() {
    let env = common::start().await;
    let key = env.device("patient").await;
    let port = closed_port().await;
    let error = env
        .builder_via(Kind::Mqtt, format!("127.0.0.1:{port}"), "patient", &key)
        .deadline(Duration::from_secs(2))
        .max_connect_failures(None)
        .connect()
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(error, HubError::Timeout { last: Some(_) }),
        "{error:?}"
    );
}
