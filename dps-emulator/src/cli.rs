//! The command line of `dps-emulator` (also `dps emulator`).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{ConfigFile, DEFAULT_ID_SCOPE, EmulatorConfig};
use crate::emulator::Emulator;

/// Run a local Azure IoT DPS and IoT Hub emulator.
///
/// When ready it prints one line of JSON on stdout (endpoints, CA file, id scope, service
/// connection strings), then logs on stderr (`RUST_LOG` sets the level).
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Exit codes:\n  0  stopped by SIGINT/SIGTERM\n  1  could not start (bad config, port in use, unreadable data dir)\n  2  usage error"
)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The DPS endpoint name and the default hub name (also in the server certificate).
    #[arg(long, default_value = "localhost")]
    pub hostname: String,
    /// MQTT over TLS port.
    #[arg(long, default_value_t = 8883)]
    pub mqtt_port: u16,
    /// HTTPS port: MQTT over WebSocket (`/$iothub/websocket`) and the service REST APIs.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Where the CA, keys and state are kept.
    #[arg(long, default_value = "./.dps-emulator")]
    pub data_dir: PathBuf,
    /// The DPS id scope.
    #[arg(long, default_value = DEFAULT_ID_SCOPE)]
    pub id_scope: String,
    /// Base64 shared access key of `provisioningserviceowner` and `iothubowner` (default:
    /// generated once and kept in the data dir).
    #[arg(long)]
    pub service_key: Option<String>,
    /// Enrollments, linked hubs and behaviour knobs (JSON if it ends in .json, else TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the emulator until SIGINT or SIGTERM.
pub async fn run(args: EmulatorArgs) -> ExitCode {
    let file = match args.config.as_deref().map(ConfigFile::load).transpose() {
        Ok(file) => file.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut config = EmulatorConfig::new(args.data_dir);
    config.bind = args.bind;
    config.hostname = args.hostname;
    config.mqtt_port = args.mqtt_port;
    config.https_port = args.https_port;
    config.id_scope = args.id_scope;
    config.service_key = args.service_key;
    config.file = file;

    let emulator = match Emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let ready = serde_json::to_string(emulator.info()).unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{ready}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        tracing::warn!("could not print the ready line");
    }
    drop(stdout);

    wait_for_signal().await;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Log targets never enabled, whatever `RUST_LOG` asks: tungstenite traces every WebSocket
/// frame with its payload (as text and hex), and a device's MQTT CONNECT frame carries its SAS
/// token (#11).
const SECRET_TARGETS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// The emulator's log filter: `directives` (`RUST_LOG` syntax, e.g. `info` or
/// `dps_emulator=trace`) with the targets that would print secrets turned off.
pub fn log_filter(directives: &str) -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::builder().parse_lossy(directives);
    for target in SECRET_TARGETS {
        // Added last, so they override a broader or equal directive of `RUST_LOG`.
        if let Ok(off) = format!("{target}=off").parse() {
            filter = filter.add_directive(off);
        }
    }
    filter
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`) through [`log_filter`].
pub fn init_logging() {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = log_filter(&directives);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
