//! End-to-end failure handling against the emulator's fault knobs, on both transports:
//! throttling storms (counting requests and timing `retry-after`), server errors, dropped
//! connections, duplicate, stale and malformed responses, lost responses, deadlines, and every
//! refusal (disabled, wrong key, expired token, unknown device, untrusted server).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use dps_auth::SymmetricKey;
use dps_client::{Assignment, ProvisioningClient, ProvisioningError, TlsConfig, TransportError};
use dps_core::dps::registration::RetryReason;
use dps_emulator::{Faults, InjectStatus};
use dps_transport_mqtt::TlsErrorKind;
use serde_json::json;

/// What one registration under a fault did.
struct Run {
    result: Result<Assignment, ProvisioningError>,
    /// DPS requests (register + poll publishes) the emulator received from the device.
    requests: u32,
    elapsed: Duration,
}

impl Run {
    fn assigned(&self) -> &Assignment {
        self.result
            .as_ref()
            .unwrap_or_else(|e| panic!("not assigned: {e:?}"))
    }

    fn error(&self) -> &ProvisioningError {
        self.result.as_ref().expect_err("expected a failure")
    }
}

/// On a fresh emulator: enrolls a symmetric-key device, injects `faults`, and registers over
/// `via` with the client `adjust` edits (fast timing preset).
async fn run(
    via: Via,
    faults: Faults,
    adjust: impl FnOnce(ProvisioningClient) -> ProvisioningClient,
) -> Run {
    let emu = start().await;
    let id = format!("faulty-{}", via.name());
    let key = emu.enroll_symmetric(&id).await;
    emu.set_faults(faults);
    let client = adjust(via.client(&emu, &id, key));
    let started = Instant::now();
    let result = client.register().await;
    let elapsed = started.elapsed();
    Run {
        result,
        requests: settled_requests(&emu, &id).await,
        elapsed,
    }
}

fn inject(status: u16, count: u32, retry_after: Option<u32>) -> Faults {
    Faults {
        inject_status: Some(InjectStatus {
            status,
            count,
            retry_after,
        }),
        ..Faults::default()
    }
}

/// A refused port fails after the default bound on connection failures, within seconds and
/// not at the (default, five-minute) deadline, and the error names the host, the port and the
/// operating system's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_fails_in_seconds_naming_host_port_and_os_error() {
    let emu = start().await;
    let key = emu.enroll_symmetric("refused").await;
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for via in Via::BOTH {
        let endpoint = format!("127.0.0.1:{port}");
        let client = via
            .client_at(&emu, &endpoint, "refused", key.clone())
            .timing(dps_client::Timing::default());
        let started = Instant::now();
        let error = client.register().await.unwrap_err();
        let elapsed = started.elapsed();
        let ProvisioningError::Unreachable { attempts, last } = &error else {
            panic!("{via:?}: expected unreachable, got {error}");
        };
        assert_eq!(*attempts, 3, "{via:?}");
        let last = last.as_ref().expect("the last attempt's error");
        assert_eq!(last.endpoint, endpoint);
        assert!(
            matches!(
                last.error,
                TransportError::Io {
                    kind: std::io::ErrorKind::ConnectionRefused,
                    ..
                }
            ),
            "{via:?}: {:?}",
            last.error
        );
        let text = error.to_string();
        assert!(
            text.starts_with(
                "cannot reach the provisioning service: 3 connection attempts in a row failed; \
                 the last attempt: connecting to 127.0.0.1:"
            ) && text.contains(&endpoint)
                && text.contains("os error"),
            "{text}"
        );
        assert!(error.is_retriable());
        // Far from the five-minute deadline: three attempts, backoff 1 s then 2 s (+ jitter).
        assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Throttling and server errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storm_honours_retry_after() {
    both(|via| async move {
        // Default timing (retry-after floor 1 s) except a short backoff: the waits come from the
        // service's retry-after.
        let r = run(via, inject(429, 4, Some(1)), |c| {
            c.timing(
                dps_client::Timing::default()
                    .backoff_base(Duration::from_millis(50))
                    .max_jitter(Duration::from_millis(10))
                    .default_retry_after(Duration::ZERO)
                    .retry_after_floor(Duration::ZERO)
                    .deadline(Duration::from_secs(20)),
            )
        })
        .await;
        r.assigned();
        assert_eq!(r.requests, 1 + 4 + 1, "register, 4 retries, 1 poll");
        assert!(
            r.elapsed >= Duration::from_millis(3_900),
            "4 × retry-after 1 s respected: {:?}",
            r.elapsed
        );
        assert!(r.elapsed < Duration::from_secs(8), "{:?}", r.elapsed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_through() {
    for status in [500, 502, 503] {
        both(|via| async move {
            let r = run(via, inject(status, 3, None), |c| c).await;
            let assignment = r.assigned();
            assert_eq!(assignment.device_id(), format!("faulty-{}", via.name()));
            assert_eq!(
                r.requests,
                3 + 1 + 1,
                "status {status}: 3 failures, register, poll"
            );
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_throttling_past_the_deadline_is_throttled() {
    both(|via| async move {
        let r = run(via, inject(429, 1_000, Some(30)), |c| {
            c.deadline(Duration::from_secs(5))
        })
        .await;
        let error = r.error();
        assert!(
            matches!(
                error,
                ProvisioningError::Throttled { status: 429, retry_after: Some(d) } if *d == Duration::from_secs(30)
            ),
            "{error:?}"
        );
        assert!(error.is_retriable());
        // The next permitted attempt is past the deadline: it gives up at once.
        assert!(r.elapsed < Duration::from_secs(2), "{:?}", r.elapsed);
        assert_eq!(r.requests, 1);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Connections and responses

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_mid_registration_reconnects() {
    both(|via| async move {
        // Every connection is closed on its second publish: the poll after the register is
        // lost, and the registration resumes polling on a new connection.
        let faults = Faults {
            close_after_publishes: Some(1),
            ..Faults::default()
        };
        let r = run(via, faults, |c| c).await;
        r.assigned();
        assert_eq!(
            r.requests, 3,
            "register, lost poll, poll after reconnecting"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_responses_are_ignored() {
    both(|via| async move {
        let faults = Faults {
            duplicate_responses: 2,
            ..Faults::default()
        };
        let r = run(via, faults, |c| c).await;
        r.assigned();
        assert_eq!(r.requests, 2, "duplicates cause no extra request");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_for_other_rids_are_ignored() {
    both(|via| async move {
        let faults = Faults {
            wrong_rid_responses: 2,
            ..Faults::default()
        };
        let r = run(via, faults, |c| c).await;
        r.assigned();
        assert_eq!(r.requests, 2, "foreign $rid answers cause no extra request");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_response_is_retried() {
    both(|via| async move {
        let faults = Faults {
            malformed_responses: 1,
            ..Faults::default()
        };
        let r = run(via, faults, |c| c).await;
        r.assigned();
        assert_eq!(r.requests, 3, "register (malformed answer), register, poll");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_response_is_sent_again_after_the_request_timeout() {
    both(|via| async move {
        let faults = Faults {
            drop_responses: 1,
            ..Faults::default()
        };
        let r = run(via, faults, |c| {
            c.timing(fast_timing().request_timeout(Duration::from_millis(500)))
        })
        .await;
        r.assigned();
        assert_eq!(r.requests, 3, "register (lost), register, poll");
        assert!(r.elapsed >= Duration::from_millis(500), "{:?}", r.elapsed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_ends_at_the_deadline() {
    both(|via| async move {
        let faults = Faults {
            drop_responses: 1_000,
            ..Faults::default()
        };
        let r = run(via, faults, |c| {
            c.timing(
                fast_timing()
                    .request_timeout(Duration::from_millis(500))
                    .deadline(Duration::from_secs(2)),
            )
        })
        .await;
        let error = r.error();
        assert!(
            matches!(
                error,
                ProvisioningError::Timeout {
                    last_problem: Some(RetryReason::RequestTimeout),
                    last_connect_error: None,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_retriable());
        assert!(
            r.elapsed >= Duration::from_millis(1_500) && r.elapsed < Duration::from_millis(2_900),
            "{:?}",
            r.elapsed
        );
        assert!(
            (2..=4).contains(&r.requests),
            "a request per timeout: {}",
            r.requests
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_enrollment_is_not_retried() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("disabled-{}", via.name());
        let key = emu
            .enroll_symmetric_value(with(
                sym_enrollment(&id),
                json!({ "provisioningStatus": "disabled" }),
            ))
            .await;
        let error = via.client(emu, &id, key).register().await.unwrap_err();
        assert!(
            matches!(error, ProvisioningError::Disabled { .. }),
            "{error:?}"
        );
        assert!(!error.is_retriable());
        assert_eq!(settled_requests(emu, &id).await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_at_once() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("wrong-key-{}", via.name());
        emu.enroll_symmetric(&id).await;
        let wrong = Counting::new(SymmetricKey::from_bytes(&[7; 32]).unwrap());
        let connects = std::sync::Arc::clone(&wrong.calls);
        let started = Instant::now();
        let error = via.client(emu, &id, wrong).register().await.unwrap_err();
        assert!(
            matches!(error, ProvisioningError::Unauthorized { status: 4 | 5, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("CONNACK"), "{error}");
        assert!(!error.is_retriable());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(connects.load(Ordering::SeqCst), 1, "one CONNECT, no retry");
        assert_eq!(emu.device_requests(&id), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_unauthorized() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("expired-{}", via.name());
        let key = emu.enroll_symmetric(&id).await;
        let expired = Counting::new(Expired(key));
        let connects = std::sync::Arc::clone(&expired.calls);
        let error = via.client(emu, &id, expired).register().await.unwrap_err();
        assert!(
            matches!(error, ProvisioningError::Unauthorized { .. }),
            "{error:?}"
        );
        assert_eq!(connects.load(Ordering::SeqCst), 1);
    })
    .await;
}

/// A wall clock two hours behind: every token it dates has expired by the service's clock.
#[derive(Debug)]
struct Behind(dps_client::SystemClock);

impl dps_client::Clock for Behind {
    fn now(&self) -> dps_core::Timestamp {
        self.0.now()
    }

    fn unix_now(&self) -> u64 {
        self.0.unix_now() - 2 * 3600
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injected_wall_clock_dates_the_credentials() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("clock-{}", via.name());
        let key = emu.enroll_symmetric(&id).await;
        // The same key registers with the system clock...
        via.client(emu, &id, key.clone()).register().await.unwrap();
        // ...and is refused when the injected clock dates its token two hours back.
        let error = via
            .client(emu, &id, key)
            .clock(Behind(dps_client::SystemClock::new()))
            .register()
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProvisioningError::Unauthorized { .. }),
            "{error:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_device_is_unauthorized() {
    // No enrollment group exists, so the emulator accepts the CONNECT and answers the
    // registration 401, as DPS does.
    let emu = &start().await;
    both(|via| async move {
        let id = format!("stranger-{}", via.name());
        let key = SymmetricKey::from_bytes(&[9; 32]).unwrap();
        let error = via.client(emu, &id, key).register().await.unwrap_err();
        assert!(error.to_string().contains("status 401"), "{error}");
        let ProvisioningError::Unauthorized { status, error } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*status, 401);
        assert_eq!(error.as_ref().map(|e| e.error_code.0), Some(401_002));
        assert_eq!(settled_requests(emu, &id).await, 1, "not retried");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_is_a_transport_error() {
    let emu = &start().await;
    both(|via| async move {
        let id = format!("no-trust-{}", via.name());
        let key = emu.enroll_symmetric(&id).await;
        let started = Instant::now();
        let error = via
            .client(emu, &id, key)
            .tls(TlsConfig::default())
            .register()
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ProvisioningError::Transport(TransportError::Tls {
                    kind: TlsErrorKind::UnknownIssuer,
                    ..
                })
            ),
            "{error:?}"
        );
        assert!(!error.is_retriable());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(emu.device_requests(&id), 0);
    })
    .await;
}
