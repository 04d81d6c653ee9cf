//! `dps emulator`: the local DPS and IoT Hub emulator.

use crate::exit::CliError;

/// Runs the emulator until SIGINT/SIGTERM.
pub(crate) fn run(args: dps_emulator::cli::EmulatorArgs) -> Result<(), CliError> {
    dps_emulator::cli::init_logging();
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| CliError::failure(format_args!("cannot start the async runtime: {e}")))?;
    let code = runtime.block_on(dps_emulator::cli::run(args));
    if code == std::process::ExitCode::SUCCESS {
        Ok(())
    } else {
        // `run` already printed the reason.
        std::process::exit(1)
    }
}
