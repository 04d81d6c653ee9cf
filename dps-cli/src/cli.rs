//! The command line, declared with clap.

use clap::{Args, Parser, Subcommand};

use crate::exit::EXIT_CODES_HELP;

/// Tools for Azure IoT Device Provisioning Service (DPS) and IoT Hub devices.
#[derive(Debug, Parser)]
#[command(name = "dps", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Derive a device's key from its enrollment group's key.
    ///
    /// Prints base64(HMAC-SHA256(group key, registration id)), the key DPS expects the device to
    /// use with a symmetric-key enrollment group, followed by a newline.
    #[command(after_help = EXIT_CODES_HELP)]
    DeriveKey(DeriveKeyArgs),
    /// Mint a SAS token for a DPS registration or an IoT Hub device.
    ///
    /// Prints `SharedAccessSignature sr=...&sig=...&se=...[&skn=...]` in the documented form
    /// (resource percent-encoded with upper-case hex, fields in the order sr, sig, se, skn),
    /// followed by a newline.
    #[command(after_help = EXIT_CODES_HELP)]
    Sas(SasArgs),
}

/// Arguments of `dps derive-key`.
#[derive(Debug, Args)]
pub(crate) struct DeriveKeyArgs {
    /// The enrollment group's primary or secondary key, in base64; `-` reads it from the first
    /// line of standard input (keeps it out of the process list and shell history).
    #[arg(long, value_name = "BASE64")]
    pub(crate) group_key: String,
    /// The device's registration id.
    #[arg(long, value_name = "ID")]
    pub(crate) registration_id: String,
}

/// Arguments of `dps sas`.
#[derive(Debug, Args)]
pub(crate) struct SasArgs {
    /// The resource URI, not encoded: `{idScope}/registrations/{registrationId}` for DPS,
    /// `{hub host}/devices/{deviceId}` for an IoT Hub device.
    #[arg(long, value_name = "URI")]
    pub(crate) resource: String,
    /// The signing key, in base64; `-` reads it from the first line of standard input.
    #[arg(long, value_name = "BASE64")]
    pub(crate) key: String,
    /// When the token expires, in seconds since the Unix epoch.
    #[arg(long, value_name = "UNIX-SECONDS")]
    pub(crate) expiry: u64,
    /// The key (policy) name to send as `skn`, e.g. `registration` for DPS; omitted by default.
    #[arg(long, value_name = "NAME")]
    pub(crate) key_name: Option<String>,
}
