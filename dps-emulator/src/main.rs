//! `dps-emulator`: a local Azure IoT DPS and IoT Hub for tests, examples and CI.

use std::process::ExitCode;

use clap::Parser as _;

#[derive(clap::Parser)]
#[command(name = "dps-emulator", version)]
struct Cli {
    #[command(flatten)]
    args: dps_emulator::cli::EmulatorArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    dps_emulator::cli::init_logging();
    dps_emulator::cli::run(cli.args).await
}
