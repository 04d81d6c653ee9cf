//! The client side of the hub workload: telemetry and idle connections.

use crate::Error;
use crate::cli::{ClientArgs, Kind, Mode};
use crate::result::RunResult;
use dps_benches::raw::RawTarget;
use dps_benches::{measure, raw, telemetry};
use futures_util::StreamExt as _;
use std::time::{Duration, Instant};

/// Telemetry (`--devices` connections, `--concurrency` messages in flight on each,
/// `--messages` in all) or idle connections (`--devices` connections held `--idle-seconds`).
/// Devices `{prefix}-{n}` must already be registered (the orchestrator provisions them).
pub(crate) async fn hub_run(
    args: &ClientArgs,
    group: &dps_auth::GroupKey,
    group_key_bytes: &[u8],
    raw_target: &RawTarget,
    host: &str,
    tls: dps_client::TlsConfig,
) -> Result<RunResult, Error> {
    let ids: Vec<String> = (0..args.devices)
        .map(|n| format!("{}-{n:05}", args.prefix))
        .collect();
    let window = args.concurrency.max(1);
    let per_connection = args.messages / args.devices.max(1);
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let keep_alive = Duration::from_secs(60);
    let idle = Duration::from_secs_f64(args.idle_seconds);
    let rss_start_kib = measure::self_status_kib("VmRSS");
    let mut errors = Vec::new();
    let (mut cpu_start, mut started) = (measure::self_cpu(), Instant::now());
    let mut ok = 0;
    // Each arm ends the measured window (RSS, time and CPU) when its work is done: closing
    // the connections is not part of it (the SDK's close says goodbye to the hub, the raw
    // client's connections are just dropped).
    let (rss_end_kib, elapsed_s, cpu_s);
    match args.kind {
        Kind::Sdk => {
            let connected: Vec<_> = futures_util::stream::iter(&ids)
                .map(|id| {
                    let tls = tls.clone();
                    async move {
                        let key = group.derive(id).map_err(|e| e.to_string())?;
                        hub_client::HubClient::builder(host, id.as_str(), key)
                            .endpoint(args.endpoint.as_str())
                            .tls(tls)
                            .max_in_flight(window)
                            .keep_alive(keep_alive)
                            .connect()
                            .await
                            .map_err(|e| e.to_string())
                    }
                })
                .buffer_unordered(100)
                .collect()
                .await;
            let mut clients = Vec::new();
            for c in connected {
                match c {
                    Ok(c) => clients.push(c),
                    Err(e) => errors.push(format!("connect: {e}")),
                }
            }
            if args.mode == Mode::Telemetry {
                (cpu_start, started) = (measure::self_cpu(), Instant::now());
                let sends = clients.iter().enumerate().map(|(i, client)| {
                    telemetry::send_windowed(
                        client,
                        &payload,
                        i * per_connection,
                        per_connection,
                        window,
                    )
                });
                for (acknowledged, failures) in futures_util::future::join_all(sends).await {
                    ok += acknowledged;
                    errors.extend(failures.into_iter().map(|e| format!("send: {e}")));
                }
            } else {
                tokio::time::sleep(idle).await;
                ok = clients.len();
            }
            (rss_end_kib, elapsed_s, cpu_s) = window_end(started, cpu_start);
            futures_util::future::join_all(clients.iter().map(hub_client::HubClient::close)).await;
        }
        Kind::Raw => {
            let connected: Vec<_> = futures_util::stream::iter(&ids)
                .map(|id| async move {
                    let key = raw::derive_key(group_key_bytes, id);
                    let mut conn = raw::hub_connect(raw_target, id, &key, 60).await?;
                    // An idle connection holds what the SDK's does (its subscriptions and
                    // the twin); telemetry measures sending only.
                    if args.mode == Mode::Idle {
                        conn.subscribe_and_get_twin(id).await?;
                    }
                    Ok::<_, raw::RawError>(conn)
                })
                .buffered(100)
                .collect()
                .await;
            let mut conns = Vec::new();
            for (id, c) in ids.iter().zip(connected) {
                match c {
                    Ok(c) => conns.push((id, c)),
                    Err(e) => errors.push(format!("connect: {e}")),
                }
            }
            if args.mode == Mode::Telemetry {
                (cpu_start, started) = (measure::self_cpu(), Instant::now());
                let sends = conns.iter_mut().enumerate().map(|(i, (id, conn))| {
                    conn.telemetry(id, i * per_connection, per_connection, window)
                });
                for outcome in futures_util::future::join_all(sends).await {
                    match outcome {
                        Ok(()) => ok += per_connection,
                        Err(e) => errors.push(format!("send: {e}")),
                    }
                }
                (rss_end_kib, elapsed_s, cpu_s) = window_end(started, cpu_start);
            } else {
                ok = conns.len();
                let tasks: Vec<_> = conns
                    .into_iter()
                    .map(|(_, conn)| tokio::spawn(conn.keep_alive(keep_alive)))
                    .collect();
                tokio::time::sleep(idle).await;
                (rss_end_kib, elapsed_s, cpu_s) = window_end(started, cpu_start);
                for task in tasks {
                    task.abort();
                }
            }
        }
        Kind::Python => return Err("the python client runs as a script".into()),
    }
    errors.sort();
    let failed = errors.len();
    errors.dedup();
    errors.truncate(5);
    Ok(RunResult {
        client: args.kind.name().into(),
        devices: args.devices,
        concurrency: args.concurrency,
        ok,
        failed,
        elapsed_s,
        rss_start_kib,
        rss_end_kib,
        peak_rss_kib: measure::self_status_kib("VmHWM"),
        cpu_s,
        errors,
        ..RunResult::default()
    })
}

/// The end of a measured window: RSS (KiB), seconds elapsed and CPU seconds since the start.
fn window_end(started: Instant, cpu_start: Duration) -> (u64, f64, f64) {
    let rss = measure::self_status_kib("VmRSS");
    let cpu = (measure::self_cpu() - cpu_start).as_secs_f64();
    (rss, started.elapsed().as_secs_f64(), cpu)
}
