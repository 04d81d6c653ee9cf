//! The `dps` command: derive device keys and mint SAS tokens for Azure IoT DPS and IoT Hub.
//!
//! Every command prints its result, and nothing else, on standard output. Failures print one
//! line, `error: …`, on standard error and exit with a code from [`exit::ExitCode`]; neither ever
//! contains a key.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod commands;
mod exit;

use std::io::Write as _;

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` (printed on stdout, success) or a usage error (stderr).
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                exit::ExitCode::Usage.into()
            } else {
                exit::ExitCode::Success.into()
            };
        }
    };
    match commands::run(cli.command) {
        Ok(()) => exit::ExitCode::Success.into(),
        Err(error) => {
            let _ = writeln!(std::io::stderr().lock(), "error: {}", error.message());
            error.code().into()
        }
    }
}
