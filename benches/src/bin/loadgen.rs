//! `loadgen`: the system benchmarks of issue 7, side by side for three clients against one
//! emulator process: this SDK (`dps-client`), the official Python SDK (`benches/python/fleet.py`)
//! and the raw baseline (`dps_benches::raw`).
//!
//! ```text
//! cargo run --release -p dps-benches --bin loadgen -- all     # everything, writes BENCHMARKS.md
//! cargo run -p dps-benches --bin loadgen -- smoke             # a few devices, seconds (CI)
//! loadgen fleet | curve | latency | micro [--runs N] [--clients sdk,raw,python] [--no-write]
//! ```
//!
//! How it measures: the emulator binary runs as its own process pinned to core 1 (`taskset -c
//! 1`), with `retryAfterSeconds` 0, and its CPU is read from `/proc/<pid>/stat` around every
//! client run. Each client run is a child process pinned to core 0 (`loadgen client ...` or the
//! Python script), which reports its own peak RSS (`VmHWM`) and CPU (`getrusage`) as one JSON
//! line. When run as root, the whole run moves into a private network namespace (`unshare
//! -n`), so the emulator can take port 8883 (the Python SDK's only port) without clashing with
//! anything else on the machine. Results go to `benches/results/*.json`, the plot to
//! `benches/results/scaling.png`, the tables into the generated sections of `BENCHMARKS.md`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::ToSocketAddrs as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use dps_benches::raw::{self, Breakdown, RawTarget};
use dps_benches::{measure, plot, report, stats};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "System benchmarks: this SDK vs the official Python SDK vs a raw MQTT baseline"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything: micro-benchmarks (criterion + allocation counts), fleet, scaling curve,
    /// single-registration latency; writes BENCHMARKS.md and benches/results/.
    All(Opts),
    /// A tiny run for CI: the emulator and a few devices with this SDK; writes nothing.
    Smoke,
    /// Criterion micro-benchmarks and allocation counts.
    Micro(Opts),
    /// Fleet provisioning: `--devices` devices all in flight at once.
    Fleet(Opts),
    /// The concurrency curve (`--curve` in-flight levels).
    Curve(Opts),
    /// Single-registration latency (median over `--latency-runs`) and its breakdown.
    Latency(Opts),
    /// Fleet, curve and latency (everything but the micro-benchmarks and the hub).
    System(Opts),
    /// IoT Hub: telemetry throughput on 1 and 100 connections, memory per idle connection.
    Hub(Opts),
    /// Internal: one client run in this process (what the orchestrator spawns).
    #[command(hide = true)]
    Client(ClientArgs),
}

#[derive(clap::Args, Clone)]
struct Opts {
    /// The clients to compare.
    #[arg(long, value_delimiter = ',', default_value = "sdk,raw,python")]
    clients: Vec<Kind>,
    /// Repetitions of each fleet and curve measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Devices of the fleet figure (all in flight at once).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// In-flight levels of the scaling curve.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,5000")]
    curve: Vec<usize>,
    /// Sequential registrations of the latency figure.
    #[arg(long, default_value_t = 30)]
    latency_runs: usize,
    /// Print only: leave BENCHMARKS.md and benches/results/ alone.
    #[arg(long)]
    no_write: bool,
    /// Stay in the current network namespace (the Python SDK then needs port 8883 free).
    #[arg(long)]
    no_netns: bool,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Sdk,
    Raw,
    Python,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Sdk => "this SDK",
            Self::Raw => "raw baseline",
            Self::Python => "Python SDK",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Sdk => "sdk",
            Self::Raw => "raw",
            Self::Python => "python",
        }
    }
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Fleet,
    Latency,
    Telemetry,
    Idle,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fleet => "fleet",
            Self::Latency => "latency",
            Self::Telemetry => "telemetry",
            Self::Idle => "idle",
        }
    }
}

#[derive(clap::Args, Clone)]
struct ClientArgs {
    #[arg(long)]
    kind: Kind,
    #[arg(long)]
    mode: Mode,
    /// `host:port` of the emulator's MQTT listener.
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    scope: String,
    #[arg(long)]
    group_key: String,
    #[arg(long)]
    devices: usize,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    prefix: String,
    /// Telemetry: messages to send in all.
    #[arg(long, default_value_t = 0)]
    messages: usize,
    /// Idle: how long the connections stay idle before RSS is read.
    #[arg(long, default_value_t = 5.0)]
    idle_seconds: f64,
}

/// What one client run reports (the Python script prints the same fields).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RunResult {
    client: String,
    devices: usize,
    concurrency: usize,
    ok: usize,
    failed: usize,
    elapsed_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_start_kib: u64,
    #[serde(default)]
    rss_end_kib: u64,
    peak_rss_kib: u64,
    cpu_s: f64,
    #[serde(default)]
    samples_ms: Vec<f64>,
    #[serde(default)]
    breakdowns: Vec<Breakdown>,
    #[serde(default)]
    errors: Vec<String>,
    /// Filled in by the orchestrator: the emulator's CPU seconds during the run.
    #[serde(default)]
    emulator_cpu_s: f64,
    /// Filled in by the orchestrator: TCP segments retransmitted during the run.
    #[serde(default)]
    retransmits: u64,
    /// Filled in by the orchestrator: how busy the whole machine was during the run (%).
    #[serde(default)]
    machine_busy_pct: f64,
}

impl RunResult {
    fn rate(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.ok as f64 / self.elapsed_s
        } else {
            0.0
        }
    }
    fn cpu_us_per_registration(&self) -> f64 {
        if self.ok == 0 {
            f64::NAN
        } else {
            self.cpu_s * 1e6 / self.ok as f64
        }
    }
    fn emulator_us_per_registration(&self) -> f64 {
        if self.ok == 0 {
            f64::NAN
        } else {
            self.emulator_cpu_s * 1e6 / self.ok as f64
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Client(args) => client_main(&args),
        Cmd::Smoke => smoke(),
        Cmd::All(opts) => orchestrate(
            &[
                Part::Micro,
                Part::Fleet,
                Part::Curve,
                Part::Latency,
                Part::Hub,
            ],
            &opts,
        ),
        Cmd::Micro(opts) => orchestrate(&[Part::Micro], &opts),
        Cmd::Fleet(opts) => orchestrate(&[Part::Fleet], &opts),
        Cmd::Curve(opts) => orchestrate(&[Part::Curve], &opts),
        Cmd::Latency(opts) => orchestrate(&[Part::Latency], &opts),
        Cmd::System(opts) => orchestrate(&[Part::Fleet, Part::Curve, Part::Latency], &opts),
        Cmd::Hub(opts) => orchestrate(&[Part::Hub], &opts),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

// ---------------------------------------------------------------------------------------------
// The client side: one run in this (child) process.

fn client_main(args: &ClientArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(client_run(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn client_run(args: &ClientArgs) -> Result<RunResult, Error> {
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
        async move {
            let started = Instant::now();
            let breakdown = match kind {
                Kind::Sdk => {
                    let key = group.derive(&id).map_err(|e| e.to_string())?;
                    dps_client::ProvisioningClient::new(scope, &id, key)
                        .endpoint(endpoint)
                        .tls(tls)
                        .timing(timing)
                        .deadline(Duration::from_secs(120))
                        .register()
                        .await
                        .map_err(|e| e.to_string())?;
                    None
                }
                Kind::Raw => {
                    let key = raw::derive_key(group_key_bytes, &id);
                    let breakdown = tokio::time::timeout(
                        Duration::from_secs(120),
                        raw::register(raw_target, &id, &key),
                    )
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

/// The telemetry message of every client: a 256-byte payload with four system properties and
/// two application properties (one needing percent-encoding).
fn sdk_message(payload: &bytes::Bytes, n: usize) -> hub_client::Message {
    hub_client::Message::new(payload.clone())
        .message_id(format!("msg-{n:06}"))
        .correlation_id("corr-7")
        .content_type("application/json")
        .content_encoding("utf-8")
        .property("alert", "true")
        .property("zone", "north/7")
}

/// Telemetry (`--devices` connections, `--concurrency` messages in flight on each,
/// `--messages` in all) or idle connections (`--devices` connections held `--idle-seconds`).
/// Devices `{prefix}-{n}` must already be registered (the orchestrator provisions them).
async fn hub_run(
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
    let rss_end_kib;
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
                    let payload = &payload;
                    futures_util::stream::iter(0..per_connection)
                        .map(move |n| client.send(sdk_message(payload, i * per_connection + n)))
                        .buffer_unordered(window)
                        .collect::<Vec<_>>()
                });
                for outcome in futures_util::future::join_all(sends)
                    .await
                    .into_iter()
                    .flatten()
                {
                    match outcome {
                        Ok(()) => ok += 1,
                        Err(e) => errors.push(format!("send: {e}")),
                    }
                }
            } else {
                tokio::time::sleep(idle).await;
                ok = clients.len();
            }
            rss_end_kib = measure::self_status_kib("VmRSS");
            futures_util::future::join_all(clients.iter().map(hub_client::HubClient::close)).await;
        }
        Kind::Raw => {
            let connected: Vec<_> = futures_util::stream::iter(&ids)
                .map(|id| async move {
                    let key = raw::derive_key(group_key_bytes, id);
                    raw::hub_connect(raw_target, id, &key, 60).await
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
                rss_end_kib = measure::self_status_kib("VmRSS");
            } else {
                ok = conns.len();
                let tasks: Vec<_> = conns
                    .into_iter()
                    .map(|(_, conn)| tokio::spawn(conn.keep_alive(keep_alive)))
                    .collect();
                tokio::time::sleep(idle).await;
                rss_end_kib = measure::self_status_kib("VmRSS");
                for task in tasks {
                    task.abort();
                }
            }
        }
        Kind::Python => return Err("the python client runs as a script".into()),
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

// ---------------------------------------------------------------------------------------------
// The orchestrator: emulator process, client processes, report.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Micro,
    Fleet,
    Curve,
    Latency,
    /// Telemetry throughput and idle-connection memory: need the IoT Hub client and the
    /// emulator's hub side (issues 5 and 6).
    Hub,
}

/// Where things are.
struct Env {
    root: PathBuf,
    exe: PathBuf,
    cargo: String,
    release: bool,
    pin: bool,
    netns: bool,
}

impl Env {
    fn detect() -> Result<Self, Error> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or("no workspace root")?
            .to_owned();
        let pin = Command::new("taskset")
            .args(["-c", "0", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && std::thread::available_parallelism().map_or(1, std::num::NonZero::get) >= 2;
        Ok(Self {
            root,
            exe: std::env::current_exe()?,
            cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            release: !cfg!(debug_assertions),
            pin,
            netns: std::env::var_os("LOADGEN_NETNS").is_some(),
        })
    }

    /// `program` pinned to `core` when pinning is available.
    fn pinned(&self, core: u32, program: &Path) -> Command {
        if self.pin {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(core.to_string()).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn results_dir(&self) -> PathBuf {
        self.root.join("benches/results")
    }

    fn profile(&self) -> &'static str {
        if self.release { "release" } else { "debug" }
    }
}

/// Re-runs this command inside a private network namespace (root only), so that port 8883 is
/// free for the emulator whatever else runs on the machine. Returns `Some(exit status)` when it
/// did.
fn reenter_in_netns(opts: &Opts) -> Option<std::process::ExitStatus> {
    if opts.no_netns
        || std::env::var_os("LOADGEN_NETNS").is_some()
        || !nix::unistd::Uid::effective().is_root()
    {
        return None;
    }
    let usable = Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    Command::new("unshare")
        .args(["-n", "sh", "-c", r#"ip link set lo up && exec "$@""#, "sh"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("LOADGEN_NETNS", "1")
        .status()
        .ok()
}

fn orchestrate(parts: &[Part], opts: &Opts) -> Result<(), Error> {
    if let Some(status) = reenter_in_netns(opts) {
        return if status.success() {
            Ok(())
        } else {
            Err(format!("the run in the private network namespace failed ({status})").into())
        };
    }
    let env = Env::detect()?;
    let fd_limit = measure::raise_fd_limit();
    let environment = Environment::now(&env, fd_limit);
    println!("{}", environment.text());
    let mut doc = Sections::new(&env, opts.no_write);
    doc.put("environment", &environment.text());

    if parts.contains(&Part::Micro) {
        micro(&env, &mut doc)?;
    }
    let system: Vec<Part> = parts
        .iter()
        .copied()
        .filter(|p| matches!(p, Part::Fleet | Part::Curve | Part::Latency | Part::Hub))
        .collect();
    if !system.is_empty() {
        let clients = opts.clients.clone();
        let python = if clients.contains(&Kind::Python) {
            Some(python_venv(&env)?)
        } else {
            None
        };
        let port = if clients.contains(&Kind::Python) {
            8883
        } else {
            0
        };
        let emulator = Emulator::start(&env, port)?;
        println!(
            "emulator: {} ({} build{}), restarted on an empty store before every client run",
            emulator.endpoint,
            env.profile(),
            if env.pin {
                ", pinned to core 1; clients on core 0"
            } else {
                ", not pinned"
            }
        );
        let mut bench = Bench {
            env: &env,
            emulator: Some(emulator),
            port,
            python,
            clients,
            opts,
        };
        let mut fleet = None;
        if system.contains(&Part::Fleet) || system.contains(&Part::Curve) {
            let results = bench.fleet()?;
            doc.put("fleet", &fleet_section(&results, opts));
            fleet = Some(results);
        }
        if system.contains(&Part::Curve) {
            let curve = bench.curve(fleet.as_ref())?;
            doc.put("curve", &curve_section(&env, &curve, opts)?);
        }
        if system.contains(&Part::Latency) {
            let latency = bench.latency()?;
            doc.put("latency", &latency_section(&latency, opts));
        }
        if system.contains(&Part::Hub) {
            let hub = bench.hub()?;
            doc.put("hub", &hub_section(&hub));
        }
        if let Some(emulator) = bench.emulator.take() {
            emulator.stop();
        }
    }
    let after = format!("load average after the run: {}", measure::load_average());
    println!("{after}");
    doc.put("environment", &format!("{}\n- {after}", environment.text()));
    doc.save()
}

/// What the run ran on, printed first and written into the report.
struct Environment {
    machine: String,
    load: String,
    notes: Vec<String>,
}

impl Environment {
    fn now(env: &Env, fd_limit: u64) -> Self {
        let commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(&env.root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            machine: measure::machine(),
            load: measure::load_average(),
            notes: vec![
                format!("run: {date}, commit {commit}, {} build", env.profile()),
                format!(
                    "placement: {}",
                    if env.pin {
                        "emulator pinned to core 1, each client process to core 0 (taskset)"
                    } else {
                        "not pinned (taskset unavailable or one core)"
                    }
                ),
                format!(
                    "network: loopback{}; open-files limit {fd_limit}",
                    if env.netns {
                        " of a private network namespace"
                    } else {
                        ""
                    }
                ),
            ],
        }
    }

    fn text(&self) -> String {
        let mut text = format!(
            "- machine: {}\n- load average before the run: {}",
            self.machine, self.load
        );
        for note in &self.notes {
            text.push_str(&format!("\n- {note}"));
        }
        text
    }
}

/// The generated sections, written to BENCHMARKS.md as each completes.
struct Sections {
    path: PathBuf,
    no_write: bool,
}

impl Sections {
    fn new(env: &Env, no_write: bool) -> Self {
        Self {
            path: env.root.join("BENCHMARKS.md"),
            no_write,
        }
    }
    fn put(&mut self, name: &str, body: &str) {
        println!("\n## {name}\n{body}");
        if !self.no_write {
            if let Err(e) = report::write_section(&self.path, name, body) {
                eprintln!("loadgen: cannot write {}: {e}", self.path.display());
            }
        }
    }
    fn save(&self) -> Result<(), Error> {
        if !self.no_write {
            println!("\nwrote {}", self.path.display());
        }
        Ok(())
    }
}

/// The emulator process.
struct Emulator {
    child: Child,
    pid: u32,
    endpoint: String,
    ca: PathBuf,
    scope: String,
    group_key: String,
    data_dir: PathBuf,
}

impl Emulator {
    /// Builds the emulator binary (a no-op when it is fresh) and starts it.
    fn start(env: &Env, port: u16) -> Result<Self, Error> {
        let mut build = Command::new(&env.cargo);
        build.args([
            "build",
            "--quiet",
            "-p",
            "dps-emulator",
            "--bin",
            "dps-emulator",
        ]);
        if env.release {
            build.arg("--release");
        }
        if !build.current_dir(&env.root).status()?.success() {
            return Err("cannot build the emulator".into());
        }
        Self::spawn(env, port)
    }

    /// Stops the emulator and starts it again on an empty store (the CA and keys are kept), so
    /// that every client run meets the same emulator state: its store is rewritten whole on
    /// every flush, so thousands of registrations left from earlier runs would slow it down.
    fn restart(mut self, env: &Env, port: u16) -> Result<Self, Error> {
        self.stop_keeping_data();
        Self::spawn(env, port)
    }

    fn spawn(env: &Env, port: u16) -> Result<Self, Error> {
        // Where cargo put the workspace's binaries (CARGO_TARGET_DIR moves them).
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env.root.join("target"));
        let binary = target.join(env.profile()).join("dps-emulator");
        let data_dir = env
            .root
            .join("target/loadgen")
            .join(format!("emulator-{}", std::process::id()));
        // An empty store, not a missing one: the emulator refuses to start when the store of a
        // data directory with keys has gone missing. Fails harmlessly on the first start.
        let _ = std::fs::write(data_dir.join("state/state.json"), b"{}\n");
        std::fs::create_dir_all(&data_dir)?;
        // A fixed group key: the benchmarks need a key, not a secret.
        let group_key =
            "bG9hZGdlbi1ncm91cC1rZXktZm9yLXRoZS1iZW5jaG1hcmtzLW9mLWlzc3VlLTctMDAwMDAwMDA=";
        let config = serde_json::json!({
            "behaviour": {"retryAfterSeconds": 0, "pollsBeforeAssignment": 1},
            "enrollmentGroups": [{
                "enrollmentGroupId": "fleet",
                "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": group_key, "secondaryKey": group_key}}
            }]
        });
        let config_path = data_dir.join("config.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let log = std::fs::File::create(data_dir.join("emulator.log"))?;
        let mut child = env
            .pinned(1, &binary)
            .arg("--data-dir")
            .arg(data_dir.join("state"))
            .args([
                "--mqtt-port",
                &port.to_string(),
                "--https-port",
                "0",
                "--config",
            ])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let pid = child.id();
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        if line.trim().is_empty() {
            let _ = child.wait();
            let log = std::fs::read_to_string(data_dir.join("emulator.log")).unwrap_or_default();
            return Err(format!(
                "the emulator did not start (port {port} busy? run as root for a private network \
                 namespace, or leave out --clients python):\n{log}"
            )
            .into());
        }
        let info: serde_json::Value = serde_json::from_str(&line)?;
        let field = |name: &str| {
            info[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no {name} in the emulator's ready line: {line}"))
        };
        Ok(Self {
            child,
            pid,
            endpoint: field("mqttEndpoint")?,
            ca: PathBuf::from(field("caFile")?),
            scope: field("idScope")?,
            group_key: group_key.to_owned(),
            data_dir,
        })
    }

    /// CPU time so far: `/proc/<pid>/stat` (all threads, 10 ms ticks) and the finer
    /// schedstat sum of the live threads.
    fn cpu(&self) -> (Duration, Duration) {
        (
            measure::pid_cpu(self.pid).unwrap_or_default(),
            measure::pid_schedstat(self.pid).unwrap_or_default(),
        )
    }

    fn stop_keeping_data(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap_or(0)),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }

    fn stop(mut self) {
        self.stop_keeping_data();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The Python interpreter of the official SDK's venv (the interop suite's recipe).
fn python_venv(env: &Env) -> Result<PathBuf, Error> {
    let venv = env.root.join("target/interop-venv");
    let python = venv.join("bin/python");
    let requirements = env.root.join("interop/requirements.txt");
    let current = std::fs::read(venv.join("requirements.txt")).ok();
    if !python.exists() || current != std::fs::read(&requirements).ok() {
        println!("creating {} (the official Python SDK)", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()?
                .success();
        if !ok {
            return Err("cannot create the Python venv".into());
        }
        std::fs::copy(&requirements, venv.join("requirements.txt"))?;
    }
    Ok(python)
}

struct Bench<'a> {
    env: &'a Env,
    emulator: Option<Emulator>,
    port: u16,
    python: Option<PathBuf>,
    clients: Vec<Kind>,
    opts: &'a Opts,
}

/// The hub measurements.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
enum HubScenario {
    TelemetryOne,
    TelemetryHundred,
    Idle,
}

impl HubScenario {
    fn key(self) -> &'static str {
        match self {
            Self::TelemetryOne => "tel1",
            Self::TelemetryHundred => "tel100",
            Self::Idle => "idle",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::TelemetryOne => "1 connection",
            Self::TelemetryHundred => "100 connections",
            Self::Idle => "1,000 idle connections",
        }
    }
}

/// Hub results: per scenario, per client, the runs.
type HubResults = Vec<(HubScenario, Vec<(Kind, Vec<RunResult>)>)>;

/// Fleet results: per client, one result per run.
type Fleet = Vec<(Kind, Vec<RunResult>)>;

/// Curve results: per in-flight level, per client, the runs.
type Curve = Vec<(usize, Vec<(Kind, Vec<RunResult>)>)>;

impl Bench<'_> {
    fn restart_emulator(&mut self) -> Result<(), Error> {
        let emulator = self.emulator.take().ok_or("no emulator")?;
        self.emulator = Some(emulator.restart(self.env, self.port)?);
        Ok(())
    }

    /// One client run on a freshly restarted emulator.
    fn run(
        &mut self,
        kind: Kind,
        mode: Mode,
        devices: usize,
        concurrency: usize,
        prefix: &str,
    ) -> Result<RunResult, Error> {
        self.restart_emulator()?;
        self.child(kind, mode, devices, concurrency, prefix, 0)
    }

    /// One client run on the emulator as it is.
    fn child(
        &self,
        kind: Kind,
        mode: Mode,
        devices: usize,
        concurrency: usize,
        prefix: &str,
        messages: usize,
    ) -> Result<RunResult, Error> {
        let em = self.emulator.as_ref().ok_or("no emulator")?;
        let mut cmd = match kind {
            Kind::Python => {
                let python = self.python.as_ref().ok_or("no python")?;
                let mut cmd = self.env.pinned(0, python);
                let script = if matches!(mode, Mode::Fleet | Mode::Latency) {
                    "benches/python/fleet.py"
                } else {
                    "benches/python/hub.py"
                };
                cmd.arg(self.env.root.join(script)).args([
                    "--host",
                    em.endpoint.rsplit_once(':').map_or("localhost", |(h, _)| h),
                ]);
                cmd
            }
            Kind::Sdk | Kind::Raw => {
                let mut cmd = self.env.pinned(0, &self.env.exe);
                cmd.args(["client", "--kind", kind.name(), "--endpoint", &em.endpoint]);
                cmd
            }
        };
        cmd.args(["--mode", mode.as_str()])
            .args(["--messages", &messages.to_string()])
            .arg("--ca")
            .arg(&em.ca)
            .args(["--scope", &em.scope, "--group-key", &em.group_key])
            .args([
                "--devices",
                &devices.to_string(),
                "--concurrency",
                &concurrency.to_string(),
            ])
            .args(["--prefix", prefix])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (stat_before, sched_before) = em.cpu();
        let retransmits_before = measure::tcp_retransmits();
        let (busy_before, total_before) = measure::machine_jiffies();
        let child = cmd.spawn()?;
        let output = wait_with_timeout(child, Duration::from_secs(900))?;
        let (stat_after, sched_after) = em.cpu();
        let (busy_after, total_after) = measure::machine_jiffies();
        let emulator_cpu = stat_after
            .saturating_sub(stat_before)
            .max(sched_after.saturating_sub(sched_before));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
            return Err(format!(
                "{} run gave no result ({}): {}",
                kind.name(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
            .into());
        };
        let mut result: RunResult = serde_json::from_str(line)?;
        result.emulator_cpu_s = emulator_cpu.as_secs_f64();
        result.retransmits = measure::tcp_retransmits().saturating_sub(retransmits_before);
        result.machine_busy_pct = 100.0 * busy_after.saturating_sub(busy_before) as f64
            / total_after.saturating_sub(total_before).max(1) as f64;
        println!(
            "  {:<6} {mode:?} {devices:>5} devices, {concurrency:>5} in flight: {} ok, {} failed, {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, peak RSS {:.1} MiB, CPU {:.3} s ({:.0} µs/reg), emulator {:.0} µs/reg, {} TCP retransmits, machine {:.0} % busy{}",
            kind.name(),
            result.ok,
            result.failed,
            result.rate(),
            result.p50_ms,
            result.p99_ms,
            result.peak_rss_kib as f64 / 1024.0,
            result.cpu_s,
            result.cpu_us_per_registration(),
            result.emulator_us_per_registration(),
            result.retransmits,
            result.machine_busy_pct,
            if result.errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {:?}", result.errors)
            },
        );
        Ok(result)
    }

    fn fleet(&mut self) -> Result<Fleet, Error> {
        let n = self.opts.devices;
        println!(
            "\nfleet: {n} devices, all in flight, {} runs",
            self.opts.runs
        );
        let mut results: Fleet = self.clients.iter().map(|&k| (k, Vec::new())).collect();
        for run in 0..self.opts.runs {
            for (kind, runs) in &mut results {
                // The Python SDK needs minutes per fleet run (its devices time out): one run.
                if *kind == Kind::Python && run > 0 {
                    continue;
                }
                let prefix = format!("{}-fleet-r{run}", kind.name());
                let result = self.run(*kind, Mode::Fleet, n, n, &prefix)?;
                runs.push(result);
            }
        }
        save_json(self.env, self.opts, "fleet.json", &results)?;
        Ok(results)
    }

    /// How many devices a curve point registers: enough to keep `in_flight` busy for a while,
    /// and few enough that the Python SDK (2 s per device, one after the other) finishes.
    fn curve_devices(kind: Kind, in_flight: usize) -> usize {
        match kind {
            Kind::Python => in_flight.max(in_flight.saturating_mul(4).clamp(5, 200)),
            Kind::Sdk | Kind::Raw => in_flight.max(500),
        }
    }

    fn curve(&mut self, fleet: Option<&Fleet>) -> Result<Curve, Error> {
        println!("\ncurve: in flight {:?}", self.opts.curve);
        let mut curve: Curve = Vec::new();
        for c in self.opts.curve.clone() {
            let mut point: Vec<(Kind, Vec<RunResult>)> =
                self.clients.iter().map(|&k| (k, Vec::new())).collect();
            // The fleet figure is the curve's point at its size: reuse it.
            if c == self.opts.devices {
                if let Some(fleet) = fleet {
                    curve.push((c, fleet.clone()));
                    continue;
                }
            }
            // The Python SDK takes minutes per point: one run per point.
            for run in 0..self.opts.runs {
                for (kind, runs) in &mut point {
                    // One run for the Python SDK, and none beyond the fleet size: at 1,000 in
                    // flight two thirds of its devices already time out.
                    if *kind == Kind::Python && (run > 0 || c > self.opts.devices) {
                        continue;
                    }
                    let devices = Self::curve_devices(*kind, c);
                    let prefix = format!("{}-c{c}-r{run}", kind.name());
                    runs.push(self.run(*kind, Mode::Fleet, devices, c, &prefix)?);
                }
            }
            curve.push((c, point));
        }
        save_json(self.env, self.opts, "curve.json", &curve)?;
        Ok(curve)
    }

    /// Telemetry on 1 and 100 connections, and 1,000 idle connections: each on a restarted
    /// emulator whose devices were first registered through DPS (by the raw client, not
    /// measured).
    fn hub(&mut self) -> Result<HubResults, Error> {
        let scenarios = [
            (HubScenario::TelemetryOne, Mode::Telemetry, 1, 16),
            (HubScenario::TelemetryHundred, Mode::Telemetry, 100, 16),
            (HubScenario::Idle, Mode::Idle, 1000, 0),
        ];
        println!("\nhub: telemetry (window 16) on 1 and 100 connections; 1,000 idle connections");
        let mut results: HubResults = Vec::new();
        for (scenario, mode, connections, window) in scenarios {
            let mut per_kind: Vec<(Kind, Vec<RunResult>)> =
                self.clients.iter().map(|&k| (k, Vec::new())).collect();
            for run in 0..self.opts.runs {
                for (kind, runs) in &mut per_kind {
                    // The Python SDK is slow at this: one run.
                    if *kind == Kind::Python && run > 0 {
                        continue;
                    }
                    let prefix = format!("{}-{}-r{run}", kind.name(), scenario.key());
                    self.restart_emulator()?;
                    let provisioned =
                        self.child(Kind::Raw, Mode::Fleet, connections, 100, &prefix, 0)?;
                    if provisioned.ok != connections {
                        return Err(format!(
                            "provisioning for the hub runs: {:?}",
                            provisioned.errors
                        )
                        .into());
                    }
                    let messages = match (mode, *kind) {
                        (Mode::Telemetry, Kind::Python) => 2_000,
                        (Mode::Telemetry, _) => 20_000,
                        _ => 0,
                    };
                    runs.push(self.child(*kind, mode, connections, window, &prefix, messages)?);
                }
            }
            results.push((scenario, per_kind));
        }
        save_json(self.env, self.opts, "hub.json", &results)?;
        Ok(results)
    }

    fn latency(&mut self) -> Result<Vec<(Kind, RunResult)>, Error> {
        let n = self.opts.latency_runs;
        println!("\nlatency: {n} registrations one after the other, per client");
        let mut results = Vec::new();
        for kind in self.clients.clone() {
            let prefix = format!("{}-latency", kind.name());
            results.push((kind, self.run(kind, Mode::Latency, n, 1, &prefix)?));
        }
        save_json(self.env, self.opts, "latency.json", &results)?;
        Ok(results)
    }
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> Result<std::process::Output, Error> {
    // Read both pipes on threads so that a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().map_err(|_| "reader panicked")??,
        stderr: err.join().map_err(|_| "reader panicked")??,
    })
}

fn save_json<T: Serialize>(env: &Env, opts: &Opts, name: &str, value: &T) -> Result<(), Error> {
    if opts.no_write {
        return Ok(());
    }
    let dir = env.results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(value)?)?;
    Ok(())
}

fn median_of(runs: &[RunResult], f: impl Fn(&RunResult) -> f64) -> f64 {
    let values: Vec<f64> = runs.iter().map(f).filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        f64::NAN
    } else {
        stats::median(&values)
    }
}

/// The medians of one client's runs.
#[derive(Clone, Copy, Default)]
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    rss_mib: f64,
    cpu_s: f64,
    cpu_us: f64,
    emulator_us: f64,
    failed: f64,
    retransmits: f64,
    busy: f64,
}

fn summarize(runs: &[RunResult]) -> Summary {
    Summary {
        rate: median_of(runs, RunResult::rate),
        p50: median_of(runs, |r| r.p50_ms),
        p99: median_of(runs, |r| r.p99_ms),
        rss_mib: median_of(runs, |r| r.peak_rss_kib as f64 / 1024.0),
        cpu_s: median_of(runs, |r| r.cpu_s),
        cpu_us: median_of(runs, RunResult::cpu_us_per_registration),
        emulator_us: median_of(runs, RunResult::emulator_us_per_registration),
        failed: median_of(runs, |r| r.failed as f64),
        retransmits: median_of(runs, |r| r.retransmits as f64),
        busy: median_of(runs, |r| r.machine_busy_pct),
    }
}

fn fleet_section(results: &Fleet, opts: &Opts) -> String {
    use report::{num, table};
    let summaries: Vec<(Kind, Summary, usize)> = results
        .iter()
        .map(|(k, runs)| (*k, summarize(runs), runs.len()))
        .collect();
    let rows = summaries
        .iter()
        .map(|(k, s, n)| {
            vec![
                k.label().into(),
                num(s.rate),
                num(s.p50),
                num(s.p99),
                num(s.rss_mib),
                format!("{:.3}", s.cpu_s),
                num(s.cpu_us),
                num(s.emulator_us),
                num(s.retransmits),
                format!("{:.0} %", s.busy),
                num(s.failed),
                n.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    let mut text = format!(
        "{} group-derived symmetric-key devices, all in flight at once, MQTT over TLS, emulator \
         retry-after 0 (register, one poll). Medians over the runs.\n\n",
        opts.devices
    );
    text.push_str(&table(
        &[
            "client",
            "devices/s",
            "p50 ms",
            "p99 ms",
            "peak RSS MiB",
            "client CPU s",
            "client CPU µs/reg",
            "emulator CPU µs/reg",
            "TCP retransmits",
            "machine busy",
            "failed",
            "runs",
        ],
        &rows,
    ));
    text.push_str(&ratios_table(&summaries));
    text
}

/// Every pair of clients: the ratio of each figure (higher devices/s is better; lower latency,
/// RSS and CPU are better).
fn ratios_table(summaries: &[(Kind, Summary, usize)]) -> String {
    use report::{ratio, table};
    let find = |k: Kind| {
        summaries
            .iter()
            .find(|(kind, ..)| *kind == k)
            .map(|(_, s, _)| *s)
    };
    let pairs = [
        (Kind::Sdk, Kind::Raw),
        (Kind::Sdk, Kind::Python),
        (Kind::Raw, Kind::Python),
    ];
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .filter_map(|&(a, b)| {
            let (x, y) = (find(a)?, find(b)?);
            Some(vec![
                format!("{} / {}", a.label(), b.label()),
                ratio(x.rate, y.rate),
                ratio(x.p50, y.p50),
                ratio(x.p99, y.p99),
                ratio(x.rss_mib, y.rss_mib),
                ratio(x.cpu_us, y.cpu_us),
            ])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\nRatios (devices/s: higher is better; the others: lower is better):\n\n{}",
        table(
            &["ratio", "devices/s", "p50", "p99", "peak RSS", "CPU/reg"],
            &rows
        )
    )
}

fn curve_section(env: &Env, curve: &Curve, opts: &Opts) -> Result<String, Error> {
    use report::{num, table};
    let kinds: Vec<Kind> = curve
        .first()
        .map(|(_, p)| p.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let mut headers = vec!["in flight".to_owned()];
    for k in &kinds {
        headers.push(format!("{} devices/s", k.label()));
        headers.push(format!("{} p99 ms", k.label()));
        headers.push(format!("{} CPU µs/reg", k.label()));
        headers.push(format!("{} peak RSS MiB", k.label()));
    }
    headers.push("emulator CPU µs/reg (SDK run)".into());
    let mut rows = Vec::new();
    let mut series: Vec<Vec<plot::Series>> = vec![Vec::new(); 4];
    for k in &kinds {
        for s in &mut series {
            s.push((k.label().to_owned(), Vec::new()));
        }
    }
    for (c, point) in curve {
        let mut row = vec![c.to_string()];
        let mut emulator = f64::NAN;
        for (i, (k, runs)) in point.iter().enumerate() {
            let s = summarize(runs);
            let devices = runs.first().map_or(0, |r| r.devices);
            let failed = if s.failed > 0.0 {
                format!(" ({} failed)", num(s.failed))
            } else {
                String::new()
            };
            row.push(format!("{}{failed}", num(s.rate)));
            row.push(num(s.p99));
            row.push(num(s.cpu_us));
            row.push(num(s.rss_mib));
            if *k == Kind::Sdk {
                emulator = s.emulator_us;
            }
            let x = *c as f64;
            series[0][i].1.push((x, s.rate));
            series[1][i].1.push((x, s.p99));
            series[2][i].1.push((x, s.cpu_us));
            series[3][i].1.push((x, s.rss_mib));
            let _ = devices;
        }
        row.push(num(emulator));
        rows.push(row);
    }
    let png = env.results_dir().join("scaling.png");
    if !opts.no_write {
        std::fs::create_dir_all(env.results_dir())?;
        let titles = [
            ("registrations per second", "devices/s"),
            ("p99 registration latency", "ms"),
            ("client CPU per registration", "µs"),
            ("client peak RSS", "MiB"),
        ];
        let panels: Vec<plot::Panel> = titles
            .iter()
            .zip(series)
            .map(|((title, unit), series)| plot::Panel {
                title: (*title).into(),
                y_label: (*unit).into(),
                series,
            })
            .collect();
        plot::draw(
            &png,
            "DPS registration vs devices in flight (log-log)",
            &panels,
        )?;
    }
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let devices_note = kinds
        .iter()
        .map(|k| {
            let sizes: Vec<String> = curve
                .iter()
                .map(|(_, p)| {
                    p.iter()
                        .find(|(kk, _)| kk == k)
                        .and_then(|(_, r)| r.first())
                        .map_or(0, |r| r.devices)
                        .to_string()
                })
                .collect();
            format!("{}: {}", k.label(), sizes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(format!(
        "Devices registered per point ({devices_note}); medians over {} runs for the Rust clients, \
         one run for the Python SDK (except at the fleet size, which reuses the fleet runs).\n\n{}\n\
         ![scaling curve](benches/results/scaling.png)\n",
        opts.runs,
        table(&header_refs, &rows)
    ))
}

/// A phase of the breakdown: its name and how to read it.
type Phase = (&'static str, fn(&Breakdown) -> f64);

fn latency_section(results: &[(Kind, RunResult)], opts: &Opts) -> String {
    use report::{num, ratio, table};
    let medians: Vec<(Kind, f64)> = results
        .iter()
        .map(|(k, r)| (*k, stats::median(&r.samples_ms)))
        .collect();
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(k, r)| {
            vec![
                k.label().into(),
                num(stats::median(&r.samples_ms)),
                num(stats::quantile(&r.samples_ms, 0.1)),
                num(stats::quantile(&r.samples_ms, 0.9)),
                num(stats::quantile(&r.samples_ms, 0.0)),
                num(r.emulator_us_per_registration() / 1e3),
                r.failed.to_string(),
            ]
        })
        .collect();
    let mut text = format!(
        "{} registrations one after the other, each a new device on a new TLS connection (after one \
         warm-up), retry-after 0.\n\n",
        opts.latency_runs
    );
    text.push_str(&table(
        &[
            "client",
            "median ms",
            "p10 ms",
            "p90 ms",
            "min ms",
            "emulator CPU ms/reg",
            "failed",
        ],
        &rows,
    ));
    let get = |k: Kind| medians.iter().find(|(kk, _)| *kk == k).map(|(_, m)| *m);
    let mut ratios = Vec::new();
    for (a, b) in [
        (Kind::Sdk, Kind::Raw),
        (Kind::Python, Kind::Sdk),
        (Kind::Python, Kind::Raw),
    ] {
        if let (Some(x), Some(y)) = (get(a), get(b)) {
            ratios.push(vec![format!("{} / {}", a.label(), b.label()), ratio(x, y)]);
        }
    }
    if !ratios.is_empty() {
        text.push_str(&format!(
            "\nRatios of the medians:\n\n{}",
            table(&["ratio", "median latency"], &ratios)
        ));
    }
    if let Some((_, raw_result)) = results.iter().find(|(k, _)| *k == Kind::Raw) {
        let b = &raw_result.breakdowns;
        let phases: [Phase; 6] = [
            ("TCP connect + TLS handshake", |b| b.tcp_tls_ms),
            ("CONNECT → CONNACK", |b| b.connect_ms),
            ("SUBSCRIBE → SUBACK", |b| b.subscribe_ms),
            ("register → PUBACK + 202", |b| b.register_ms),
            ("poll → 200 assigned", |b| b.poll_ms),
            ("DISCONNECT + TLS close", |b| b.close_ms),
        ];
        let total = stats::median(&b.iter().map(Breakdown::total_ms).collect::<Vec<_>>());
        let rows: Vec<Vec<String>> = phases
            .iter()
            .map(|(name, f)| {
                let m = stats::median(&b.iter().map(f).collect::<Vec<_>>());
                vec![
                    (*name).into(),
                    format!("{m:.3}"),
                    format!("{:.0} %", 100.0 * m / total),
                ]
            })
            .collect();
        text.push_str(&format!(
            "\nBreakdown of the raw baseline's registration (medians of each phase over the {} runs; \
             the SDK performs the same exchange):\n\n{}",
            b.len(),
            table(&["phase", "median ms", "share"], &rows)
        ));
    }
    text
}

fn hub_section(results: &HubResults) -> String {
    use report::{num, ratio, table};
    let mut telemetry_rows = Vec::new();
    let mut idle_rows = Vec::new();
    let mut ratio_rows = Vec::new();
    for (scenario, per_kind) in results {
        let mut medians = Vec::new();
        for (kind, runs) in per_kind {
            let rate = median_of(runs, RunResult::rate);
            let cpu_us = median_of(runs, |r| {
                if r.ok == 0 {
                    f64::NAN
                } else {
                    r.cpu_s * 1e6 / r.ok as f64
                }
            });
            let emulator_us = median_of(runs, RunResult::emulator_us_per_registration);
            let peak = median_of(runs, |r| r.peak_rss_kib as f64 / 1024.0);
            let per_connection = median_of(runs, |r| {
                if r.ok == 0 {
                    f64::NAN
                } else {
                    (r.rss_end_kib as f64 - r.rss_start_kib as f64) / r.ok as f64
                }
            });
            let failed = median_of(runs, |r| r.failed as f64);
            let messages = runs.first().map_or(0, |r| r.ok + r.failed);
            if *scenario == HubScenario::Idle {
                idle_rows.push(vec![
                    kind.label().into(),
                    num(median_of(runs, |r| r.ok as f64)),
                    num(per_connection),
                    num(peak),
                    num(failed),
                    runs.len().to_string(),
                ]);
                medians.push((*kind, per_connection, f64::NAN));
            } else {
                telemetry_rows.push(vec![
                    scenario.label().into(),
                    kind.label().into(),
                    messages.to_string(),
                    num(rate),
                    num(cpu_us),
                    num(emulator_us),
                    num(peak),
                    num(failed),
                    runs.len().to_string(),
                ]);
                medians.push((*kind, rate, cpu_us));
            }
        }
        let get = |k: Kind| medians.iter().find(|m| m.0 == k).copied();
        for (a, b) in [(Kind::Sdk, Kind::Raw), (Kind::Sdk, Kind::Python)] {
            if let (Some(x), Some(y)) = (get(a), get(b)) {
                let what = if *scenario == HubScenario::Idle {
                    "RSS/connection"
                } else {
                    "msgs/s; CPU/msg"
                };
                let value = if *scenario == HubScenario::Idle {
                    ratio(x.1, y.1)
                } else {
                    format!("{}; {}", ratio(x.1, y.1), ratio(x.2, y.2))
                };
                ratio_rows.push(vec![
                    scenario.label().into(),
                    format!("{} / {}", a.label(), b.label()),
                    what.into(),
                    value,
                ]);
            }
        }
    }
    format!(
        "Telemetry: QoS 1, 256-byte payload, 4 system + 2 application properties, 16 messages in \
         flight per connection (the SDK's window), devices registered through DPS first. Idle: RSS \
         growth of the client process per connected device after 5 s idle (keep-alive 60 s \
         running), measured from just before connecting.\n\n{}\n{}\nRatios:\n\n{}",
        table(
            &[
                "connections",
                "client",
                "messages",
                "msgs/s",
                "client CPU µs/msg",
                "emulator CPU µs/msg",
                "peak RSS MiB",
                "failed",
                "runs"
            ],
            &telemetry_rows
        ),
        table(
            &[
                "client",
                "connected",
                "RSS growth KiB/connection",
                "peak RSS MiB",
                "failed",
                "runs"
            ],
            &idle_rows
        ),
        table(&["scenario", "ratio", "figure", "value"], &ratio_rows),
    )
}

/// Criterion (run through cargo) and the allocation counter.
fn micro(env: &Env, doc: &mut Sections) -> Result<(), Error> {
    use report::{num, table};
    println!("\nmicro: criterion (cargo bench -p dps-benches --bench core) and allocation counts");
    let status = Command::new(&env.cargo)
        .args(["bench", "-p", "dps-benches", "--bench", "core"])
        .current_dir(&env.root)
        .status()?;
    if !status.success() {
        return Err("cargo bench failed".into());
    }
    let output = Command::new(&env.cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "dps-benches",
            "--bin",
            "allocs",
        ])
        .current_dir(&env.root)
        .output()?;
    if !output.status.success() {
        return Err(format!("allocs failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let allocs: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let targets = [
        (
            "parse_response_topic",
            "parse a DPS response topic",
            "0 allocations",
        ),
        (
            "parse_response_topic_and_json",
            "parse a DPS response topic + `assigned` JSON body",
            "",
        ),
        (
            "format_telemetry_topic",
            "format a telemetry topic with 6 properties (reused buffer)",
            "",
        ),
        ("generate_sas", "generate a DPS SAS token", "< 2 µs"),
        (
            "derive_group_key",
            "derive a device key from a group key",
            "",
        ),
    ];
    let criterion_dir = env.root.join("target/criterion");
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|(name, what, target)| {
            let estimates =
                std::fs::read_to_string(criterion_dir.join(name).join("new/estimates.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            let median_ns = estimates
                .as_ref()
                .and_then(|e| e["median"]["point_estimate"].as_f64())
                .unwrap_or(f64::NAN);
            let a = allocs.iter().find(|a| a["name"] == *name);
            let blocks = a.and_then(|a| a["blocks"].as_f64()).unwrap_or(f64::NAN);
            let bytes = a.and_then(|a| a["bytes"].as_f64()).unwrap_or(f64::NAN);
            vec![
                (*what).into(),
                format!("`{name}`"),
                if median_ns >= 1000.0 {
                    format!("{:.2} µs", median_ns / 1e3)
                } else {
                    format!("{} ns", num(median_ns))
                },
                num(blocks),
                num(bytes),
                (*target).into(),
            ]
        })
        .collect();
    doc.put(
        "micro",
        &format!(
            "Criterion medians (`cargo bench -p dps-benches --bench core`) and heap allocations per \
             call counted with dhat (`cargo run --release -p dps-benches --bin allocs`); \
             load average before: {}.\n\n{}",
            measure::load_average(),
            table(&["operation", "bench", "median time", "allocations/call", "bytes/call", "target"], &rows)
        ),
    );
    Ok(())
}

/// CI: the emulator (debug build) and five devices through this SDK; no files written.
fn smoke() -> Result<(), Error> {
    let started = Instant::now();
    let env = Env::detect()?;
    let _ = measure::raise_fd_limit();
    println!("loadgen smoke: {}", measure::machine());
    let opts = Opts {
        clients: vec![Kind::Sdk],
        runs: 1,
        devices: 5,
        curve: vec![],
        latency_runs: 0,
        no_write: true,
        no_netns: true,
    };
    let emulator = Emulator::start(&env, 0)?;
    let mut bench = Bench {
        env: &env,
        emulator: Some(emulator),
        port: 0,
        python: None,
        clients: opts.clients.clone(),
        opts: &opts,
    };
    let result = bench.run(Kind::Sdk, Mode::Fleet, 5, 5, "smoke");
    if let Some(emulator) = bench.emulator.take() {
        emulator.stop();
    }
    let result = result?;
    std::io::stdout().flush()?;
    if result.ok != 5 {
        return Err(format!(
            "smoke: {} of 5 devices assigned: {:?}",
            result.ok, result.errors
        )
        .into());
    }
    println!(
        "smoke: 5 devices assigned in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
