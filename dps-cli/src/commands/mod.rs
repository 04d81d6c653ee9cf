//! One module per command.

mod derive_key;
mod emulator;
pub(crate) mod enroll;
mod provision;
pub(crate) mod registry;
mod sas;
mod send;
mod service_api;
mod token_key;
pub(crate) mod upload;

use std::io::{self, BufRead as _, Write as _};

use dps_auth::{KeyError, Zeroizing};

use crate::cli::Command;
use crate::exit::CliError;

/// Runs `command`.
pub(crate) fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::DeriveKey(args) => derive_key::run(&args),
        Command::Sas(args) => sas::run(&args),
        Command::Provision(args) => provision::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Upload(args) => upload::run(&args),
        Command::Emulator(args) => emulator::run(args),
        Command::Enroll(args) => enroll::run(&args),
        Command::Registry(args) => registry::run(&args),
    }
}

/// The value of a secret argument: the text itself, or for `-` the first line of standard input.
fn secret_argument(value: &str, option: &str) -> Result<Zeroizing<String>, CliError> {
    if value != "-" {
        return Ok(Zeroizing::new(value.to_owned()));
    }
    let mut line = Zeroizing::new(String::new());
    io::stdin().lock().read_line(&mut line).map_err(|e| {
        CliError::failure(format_args!(
            "cannot read {option} from standard input: {e}"
        ))
    })?;
    Ok(line)
}

/// The message for a key that cannot be used; never quotes the key.
fn bad_key(option: &str, error: KeyError) -> CliError {
    CliError::invalid_input(format_args!("{option} is not a usable key: {error}"))
}

/// Prints `text` and a newline on standard output.
fn print_line(text: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::failure(format_args!("cannot write to standard output: {e}")))
}
