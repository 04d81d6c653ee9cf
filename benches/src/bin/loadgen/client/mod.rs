//! The client side: one run in this (child) process, reported as one JSON line.

pub(crate) mod hub;

use crate::Error;
use crate::cli::{ClientArgs, Kind, Mode};
use crate::client::hub::hub_run;
use crate::result::RunResult;
use dps_benches::raw::{Breakdown, RawTarget};
use dps_benches::{measure, raw, stats};
use futures_util::StreamExt as _;
use std::net::ToSocketAddrs as _;
use std::time::{Duration, Instant};

pub(crate) fn client_main(args: &ClientArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sampler = std::env::var_os("LOADGEN_SAMPLE").map(|path| (path, Sampler::start()));
    let result = runtime.block_on(client_run(args))?;
    if let Some((path, sampler)) = sampler {
        sampler.finish(&path, args)?;
    }
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// A diagnostic (`LOADGEN_SAMPLE=<file>`): every 10 ms, the client's RSS and how many file
/// descriptors (connections, mostly) it has open, to tell memory per connection from
/// connections open at once. Appends one JSON line per client run to the file: the series,
/// `[RSS KiB, descriptors]` per sample. Reading a directory of thousands of descriptors costs
/// CPU on the client's core: CPU figures of a sampled run are not the benchmark's.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, usize)>>,
}

impl Sampler {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = std::sync::Arc::clone(&stop);
            move || {
                let mut series = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let rss = measure::self_status_kib("VmRSS");
                    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
                    series.push((rss, fds));
                    std::thread::sleep(Duration::from_millis(10));
                }
                series
            }
        });
        Self { stop, thread }
    }

    fn finish(self, path: &std::ffi::OsStr, args: &ClientArgs) -> Result<(), Error> {
        use std::io::Write as _;
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let series = self.thread.join().map_err(|_| "the sampler panicked")?;
        let line = serde_json::json!({
            "client": args.kind.name(),
            "devices": args.devices,
            "concurrency": args.concurrency,
            "series": series,
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")?;
        Ok(())
    }
}

pub(crate) async fn client_run(args: &ClientArgs) -> Result<RunResult, Error> {
    use base64::Engine as _;
    let ca_pem = std::fs::read(&args.ca)?;
    let group_key_bytes = base64::engine::general_purpose::STANDARD.decode(&args.group_key)?;
    let group = dps_auth::GroupKey::from_base64(&args.group_key)?;
    let (host, port) = args
        .endpoint
        .rsplit_once(':')
        .ok_or("endpoint must be host:port")?;
    let addr = (host, port.parse::<u16>()?)
        .to_socket_addrs()?
        .find(std::net::SocketAddr::is_ipv4)
        .ok_or("endpoint does not resolve")?;
    let raw_target = RawTarget::new(addr, host, &ca_pem, &args.scope)?;
    let tls = dps_client::TlsConfig::default()
        .webpki_roots(false)
        .add_root_pem(&ca_pem)?;
    let timing = dps_client::Timing::default().retry_after_floor(Duration::ZERO);
    if matches!(args.mode, Mode::Telemetry | Mode::Idle) {
        return hub_run(args, &group, &group_key_bytes, &raw_target, host, tls).await;
    }

    // One registration: its latency and (raw only) its breakdown.
    let register = |id: String| {
        let (kind, tls, group, group_key_bytes, raw_target, scope, endpoint) = (
            args.kind,
            tls.clone(),
            &group,
            &group_key_bytes,
            &raw_target,
            &args.scope,
            &args.endpoint,
        );
        // Each client's registration is boxed on its own: in one future, the two branches would
        // make every registration in flight as large as the larger of them, whichever runs.
        async move {
            let started = Instant::now();
            let breakdown = match kind {
                Kind::Sdk => {
                    let key = group.derive(&id).map_err(|e| e.to_string())?;
                    let client = dps_client::ProvisioningClient::new(scope, &id, key)
                        .endpoint(endpoint)
                        .tls(tls)
                        .timing(timing)
                        .deadline(Duration::from_secs(120));
                    Box::pin(async move { client.register().await })
                        .await
                        .map_err(|e| e.to_string())?;
                    None
                }
                Kind::Raw => {
                    let key = raw::derive_key(group_key_bytes, &id);
                    let breakdown = Box::pin(tokio::time::timeout(
                        Duration::from_secs(120),
                        raw::register(raw_target, &id, &key),
                    ))
                    .await
                    .map_err(|_| "timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
                    Some(breakdown)
                }
                Kind::Python => return Err("the python client runs as a script".to_owned()),
            };
            Ok::<_, String>((started.elapsed().as_secs_f64() * 1e3, breakdown))
        }
    };

    let rss_start_kib = measure::self_status_kib("VmRSS");
    let mut latencies = Vec::with_capacity(args.devices);
    let mut breakdowns = Vec::new();
    let mut errors = Vec::new();
    if args.mode == Mode::Latency {
        register(format!("{}-warmup", args.prefix)).await.ok();
    }
    let cpu_start = measure::self_cpu();
    let started = Instant::now();
    let mut record = |outcome: Result<(f64, Option<Breakdown>), String>| match outcome {
        Ok((latency, breakdown)) => {
            latencies.push(latency);
            // Kept for the latency figure only (a fleet's would bloat the results files).
            if args.mode == Mode::Latency {
                breakdowns.extend(breakdown);
            }
        }
        Err(e) => errors.push(e),
    };
    match args.mode {
        Mode::Latency => {
            for n in 0..args.devices {
                record(register(format!("{}-{n:05}", args.prefix)).await);
            }
        }
        Mode::Telemetry | Mode::Idle => unreachable!("handled by hub_run"),
        Mode::Fleet => {
            let mut results = futures_util::stream::iter(0..args.devices)
                .map(|n| register(format!("{}-{n:05}", args.prefix)))
                .buffer_unordered(args.concurrency.max(1));
            while let Some(outcome) = results.next().await {
                record(outcome);
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu_s = (measure::self_cpu() - cpu_start).as_secs_f64();
    errors.sort();
    let failed = errors.len();
    errors.dedup();
    errors.truncate(5);
    Ok(RunResult {
        client: args.kind.name().into(),
        devices: args.devices,
        concurrency: args.concurrency,
        ok: latencies.len(),
        failed,
        elapsed_s,
        p50_ms: stats::quantile(&latencies, 0.5),
        p99_ms: stats::quantile(&latencies, 0.99),
        rss_start_kib,
        peak_rss_kib: measure::self_status_kib("VmHWM"),
        cpu_s,
        samples_ms: if args.mode == Mode::Latency {
            latencies
        } else {
            Vec::new()
        },
        breakdowns,
        errors,
        ..RunResult::default()
    })
}
