//! Session cases against the echo server and a silent server: closing, concurrency, failures
//! of outstanding operations, timeouts, keep-alive.

use std::sync::Arc;
use std::time::Duration;

use dps_transport_mqtt::{CloseReason, QoS, TimeoutStage, Transport, TransportError};

use super::STEP;
use super::echo::{BIG_PAYLOAD, EchoServer, Event};
use super::harness::*;
use super::silent;
use crate::pki::Ca;

/// Case: dropping the connection closes it.
pub async fn dropping_the_connection_closes_it(setup: Setup) {
    let mut server = EchoServer::start().await;
    let connection = connect(&setup, &echo_options(&setup, &server, "dev-drop")).await;
    let sender = connection.sender();
    drop(connection);
    assert_eq!(
        server.closed("dev-drop").await,
        dps_emulator::testing::CloseReason::ClientDisconnect
    );
    // A sender outliving the connection fails instead of hanging.
    let error = sender
        .publish("t", "x", QoS::AtLeastOnce)
        .await
        .unwrap_err();
    assert_eq!(error, TransportError::ConnectionClosed);
    assert!(sender.is_closed());
    server.servers.shutdown().await;
}

/// Case: dropping a registration future midway closes it.
pub async fn dropping_a_registration_future_midway_closes_it(setup: Setup) {
    let mut server = EchoServer::start().await;
    let options = echo_options(&setup, &server, "dev-cancel");
    let transport = Arc::clone(&setup.transport);
    let registration = async move {
        let mut connection = transport.connect(&options).await.unwrap();
        connection
            .subscribe(&[("replies/#", QoS::AtLeastOnce)])
            .await
            .unwrap();
        // No reply ever comes: the future is dropped while waiting here.
        connection.recv().await
    };
    let outcome = tokio::time::timeout(Duration::from_millis(1500), registration).await;
    assert!(outcome.is_err(), "the registration must still be waiting");
    assert_eq!(
        server.closed("dev-cancel").await,
        dps_emulator::testing::CloseReason::ClientDisconnect
    );
    server.servers.shutdown().await;
}

/// Case: disconnect is clean.
pub async fn disconnect_is_clean(setup: Setup) {
    let mut server = EchoServer::start().await;
    let connection = connect(&setup, &echo_options(&setup, &server, "dev-bye")).await;
    let sender = connection.sender();
    connection.disconnect().await;
    assert_eq!(
        server.closed("dev-bye").await,
        dps_emulator::testing::CloseReason::ClientDisconnect
    );
    assert!(sender.is_closed());
    server.servers.shutdown().await;
}

/// Case: an inline session does nothing until it is polled, works where it is polled, and
/// says goodbye when the connection is dropped (taken or not).
pub async fn an_inline_session_runs_where_it_is_polled(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut options = echo_options(&setup, &server, "dev-inline");
    options.inline_session = true;
    let mut connection = connect(&setup, &options).await;
    let mut session = connection.take_session().expect("an inline session");
    assert!(connection.take_session().is_none(), "taken once");

    // Not polled: the SUBSCRIBE is never written, so no SUBACK can come.
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        connection.subscribe(&[("echo/#", QoS::AtLeastOnce)]),
    )
    .await;
    assert!(
        waited.is_err(),
        "nothing happens while the session is not polled"
    );

    // Polled next to the work: subscribe, publish, receive the echo.
    let work = async {
        connection
            .subscribe(&[("echo/#", QoS::AtLeastOnce)])
            .await
            .unwrap();
        connection
            .publish("inline", "x", QoS::AtLeastOnce)
            .await
            .unwrap();
        next_publish(&mut connection).await
    };
    let (topic, payload, _) = tokio::select! {
        () = &mut session => panic!("the session ended while the connection was open"),
        echoed = work => echoed,
    };
    assert_eq!((topic.as_str(), &payload[..]), ("echo/inline", &b"x"[..]));

    // Dropped: the session sends DISCONNECT and completes.
    drop(connection);
    tokio::time::timeout(STEP, session).await.unwrap();
    assert_eq!(
        server.closed("dev-inline").await,
        dps_emulator::testing::CloseReason::ClientDisconnect
    );

    // Never taken: dropping the connection runs the goodbye on a task of its own.
    let mut options = echo_options(&setup, &server, "dev-inline-untaken");
    options.inline_session = true;
    drop(connect(&setup, &options).await);
    assert_eq!(
        server.closed("dev-inline-untaken").await,
        dps_emulator::testing::CloseReason::ClientDisconnect
    );
    server.servers.shutdown().await;
}

/// Case: echo round trip and concurrent senders.
pub async fn echo_round_trip_and_concurrent_senders(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-echo")).await;
    let granted = connection
        .subscribe(&[
            ("echo/#", QoS::AtLeastOnce),
            ("forbidden/x", QoS::AtMostOnce),
        ])
        .await
        .unwrap();
    assert_eq!(granted, vec![Some(QoS::AtLeastOnce), None]);

    // QoS 0 resolves once written; its echo comes back at QoS 0.
    connection
        .publish("zero", "0", QoS::AtMostOnce)
        .await
        .unwrap();
    let (topic, payload, qos) = next_publish(&mut connection).await;
    assert_eq!(
        (topic.as_str(), &payload[..], qos),
        ("echo/zero", &b"0"[..], QoS::AtMostOnce)
    );

    // Concurrent QoS 1 publishes from sender clones while this task receives.
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let sender = connection.sender();
            tokio::spawn(async move {
                sender
                    .publish(&format!("n/{i}"), vec![b'x'; 1000 * i], QoS::AtLeastOnce)
                    .await
            })
        })
        .collect();
    let mut topics = Vec::new();
    for _ in 0..5 {
        let (topic, payload, qos) = next_publish(&mut connection).await;
        assert_eq!(qos, QoS::AtLeastOnce);
        let i: usize = topic.rsplit('/').next().unwrap().parse().unwrap();
        assert_eq!(payload.len(), 1000 * i);
        topics.push(topic);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    topics.sort();
    assert_eq!(
        topics,
        (0..5).map(|i| format!("echo/n/{i}")).collect::<Vec<_>>()
    );
    // Every QoS 1 echo was acknowledged, by `next_publish`.
    for _ in 0..5 {
        server
            .wait_for("dev-echo", |e| matches!(e, Event::PubAck(..)).then_some(()))
            .await;
    }
    connection.unsubscribe(&["echo/#"]).await.unwrap();
    connection.disconnect().await;
    server.servers.shutdown().await;
}

/// Case: the session never acknowledges an incoming publish by itself: only `ack` sends
/// PUBACK.
pub async fn incoming_publishes_are_acknowledged_only_on_request(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-ack")).await;
    connection
        .subscribe(&[("echo/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    connection
        .publish("first", "1", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (topic, _, first, _) = next_unacked(&mut connection).await;
    assert_eq!(topic, "echo/first");
    connection
        .publish("second", "2", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (topic, _, second, _) = next_unacked(&mut connection).await;
    assert_eq!(topic, "echo/second");
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first, second);
    connection.ack(second).unwrap();
    // The first PUBACK the server sees is the one asked for: the first echo was never acked.
    let acked = server
        .wait_for("dev-ack", |e| match e {
            Event::PubAck(_, pkid) => Some(*pkid),
            _ => None,
        })
        .await;
    assert_eq!(acked, second);
    connection.disconnect().await;
    server.servers.shutdown().await;
}

/// Case: outstanding operations fail when the connection dies.
pub async fn outstanding_operations_fail_when_the_connection_dies(setup: Setup) {
    let mut server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-die")).await;
    // The server closes on this publish without acknowledging it.
    let error = tokio::time::timeout(STEP, connection.publish("close-me", "x", QoS::AtLeastOnce))
        .await
        .expect("the publish must not hang")
        .unwrap_err();
    assert_eq!(error, TransportError::ConnectionClosed);
    assert!(error.is_retriable());
    assert_eq!(
        tokio::time::timeout(STEP, connection.recv()).await.unwrap(),
        None
    );
    assert!(matches!(
        connection.close_reason(),
        Some(CloseReason::ClosedByPeer | CloseReason::Network { .. })
    ));
    let error = connection
        .subscribe(&[("a", QoS::AtMostOnce)])
        .await
        .unwrap_err();
    assert_eq!(error, TransportError::ConnectionClosed);
    server.closed("dev-die").await;
    server.servers.shutdown().await;
}

/// Case: a packet over the 1 MiB limit closes the connection with a typed reason naming its
/// size and the limit, not as a network failure.
pub async fn an_oversized_packet_closes_as_too_large(setup: Setup) {
    let server = EchoServer::start().await;
    let mut connection = connect(&setup, &echo_options(&setup, &server, "dev-big")).await;
    connection
        .subscribe(&[("echo/#", QoS::AtLeastOnce)])
        .await
        .unwrap();
    // The answer may beat the PUBACK: either way the publish ends, and the connection with it.
    let _ = tokio::time::timeout(STEP, connection.publish("big", "x", QoS::AtLeastOnce)).await;
    assert_eq!(
        tokio::time::timeout(STEP, connection.recv()).await.unwrap(),
        None,
        "the oversized message is never delivered"
    );
    match connection.close_reason() {
        Some(CloseReason::TooLarge { size, limit }) => {
            assert_eq!(limit, 1 << 20);
            assert!(size > BIG_PAYLOAD && size > limit, "{size}");
            let text = CloseReason::TooLarge { size, limit }.to_string();
            assert!(text.contains("over the limit of 1048576 bytes"), "{text}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    server.servers.shutdown().await;
}

/// Case: subscribe times out.
pub async fn subscribe_times_out(setup: Setup) {
    let server = EchoServer::start().await;
    let options = echo_options(&setup, &server, "dev-slow")
        .with_subscribe_timeout(Duration::from_millis(300));
    let connection = connect(&setup, &options).await;
    let error = connection
        .subscribe(&[("slow/x", QoS::AtLeastOnce)])
        .await
        .unwrap_err();
    assert_eq!(
        error,
        TransportError::Timeout {
            stage: TimeoutStage::Subscribe
        }
    );
    drop(connection);
    server.servers.shutdown().await;
}

/// The server accepts the connection, then never answers (not even PINGRESP).
pub async fn a_silent_server_is_detected_by_keep_alive(setup: Setup) {
    let ca = Ca::root("Silent CA");
    let addr = silent::server(&ca, setup.port == Port::Https).await;
    let options =
        tls_only_options(addr.port(), trusting(&ca.der)).with_keep_alive(Duration::from_secs(1));
    let mut connection = connect(&setup, &options).await;
    let started = std::time::Instant::now();
    let sender = connection.sender();
    let pending = tokio::spawn(async move { sender.publish("t", "x", QoS::AtLeastOnce).await });
    assert_eq!(
        tokio::time::timeout(STEP, connection.recv()).await.unwrap(),
        None
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1300) && elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}"
    );
    assert_eq!(
        connection.close_reason(),
        Some(CloseReason::KeepAliveTimeout)
    );
    assert_eq!(
        pending.await.unwrap(),
        Err(TransportError::ConnectionClosed)
    );
}
