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
    /// Register a device with DPS and print its assignment as JSON.
    ///
    /// Exits 0 when the device is assigned; otherwise prints one line on standard error and
    /// exits with the code of the failure class (see below).
    #[command(after_help = EXIT_CODES_HELP)]
    Provision(ProvisionArgs),
    /// Send telemetry to IoT Hub as a device (or module).
    ///
    /// Connects with a device connection string, or with the JSON `dps provision` printed plus
    /// the device key, sends --count messages (QoS 1, each acknowledged by the hub), closes, and
    /// prints a JSON summary. Progress goes to standard error.
    #[command(after_help = EXIT_CODES_HELP)]
    Send(SendArgs),
    /// Upload a file (or standard input) through a device's hub and print the blob's URL.
    ///
    /// Asks the hub for a blob SAS URI, uploads to that blob (in blocks when large), and
    /// notifies the hub, also on failure. Progress goes to standard error.
    #[command(after_help = EXIT_CODES_HELP)]
    Upload(crate::commands::upload::UploadArgs),
    /// Run the local DPS and IoT Hub emulator (the same as the `dps-emulator` binary).
    Emulator(dps_emulator::cli::EmulatorArgs),
    /// Create, read or delete DPS enrollments (individual or group; symmetric key or X.509).
    Enroll(crate::commands::enroll::EnrollArgs),
    /// Create, read, disable, enable or delete device identities in an IoT Hub.
    Registry(crate::commands::registry::RegistryArgs),
}

/// How `provision` authenticates.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub(crate) struct Credential {
    /// The device's symmetric key (individual enrollment), base64; `-` reads standard input.
    #[arg(long, value_name = "BASE64")]
    pub(crate) symmetric_key: Option<String>,
    /// The enrollment group's key, base64; the device key is derived from it. `-` reads
    /// standard input.
    #[arg(long, value_name = "BASE64")]
    pub(crate) group_key: Option<String>,
    /// The device certificate chain (PEM, leaf first); needs --key or --key-uri.
    #[arg(long, value_name = "PEM")]
    pub(crate) cert: Option<std::path::PathBuf>,
    /// The enrollment group's key in a PKCS#11 token (RFC 7512 URI, e.g.
    /// `pkcs11:token=gw;object=group?pin-source=file:/etc/pin`); the device key is derived
    /// inside the token.
    #[arg(long, value_name = "URI")]
    pub(crate) group_key_uri: Option<String>,
}

/// The PKCS#11 options shared by `provision` and `send`.
#[derive(Debug, Args)]
pub(crate) struct Pkcs11Args {
    /// The device key in a PKCS#11 token (RFC 7512 URI, e.g.
    /// `pkcs11:token=gw;object=dev-1?pin-value=1234`): a secret key signs SAS tokens, a
    /// private key (EC P-256, RSA) authenticates with its certificate (--cert, else the
    /// token's certificate with the key's label). The PIN may also come from DPS_PKCS11_PIN.
    #[arg(long, value_name = "URI")]
    pub(crate) key_uri: Option<String>,
    /// The PKCS#11 module (shared library) of --key-uri/--group-key-uri, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so; default: DPS_PKCS11_MODULE.
    #[arg(long, value_name = "PATH")]
    pub(crate) pkcs11_module: Option<std::path::PathBuf>,
}

/// The transports `provision` can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TransportKind {
    /// MQTT over TLS (port 8883).
    Mqtt,
    /// MQTT over WebSocket over TLS (port 443).
    Ws,
}

/// Arguments of `dps provision`.
#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// The DPS id scope.
    #[arg(long, value_name = "SCOPE")]
    pub(crate) id_scope: String,
    /// The device's registration id.
    #[arg(long, value_name = "ID")]
    pub(crate) registration_id: String,
    #[command(flatten)]
    pub(crate) credential: Credential,
    /// The private key of --cert (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) pkcs11: Pkcs11Args,
    /// The DPS endpoint, HOST or HOST:PORT.
    #[arg(
        long,
        value_name = "HOST[:PORT]",
        default_value = "global.azure-devices-provisioning.net"
    )]
    pub(crate) endpoint: String,
    /// The transport.
    #[arg(long, value_enum, default_value = "mqtt")]
    pub(crate) transport: TransportKind,
    /// An extra trusted root (PEM), e.g. the emulator's ca.pem; the public roots stay trusted.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// A custom payload (JSON) for custom allocation.
    #[arg(long, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// Ask DPS to issue a certificate: generate a key and CSR, and write the key and the issued
    /// chain to DIR (`{id}.key.pem`, `{id}.cert.pem`).
    #[arg(long, value_name = "DIR")]
    pub(crate) csr_out: Option<std::path::PathBuf>,
    /// Ask DPS to issue a certificate for a key generated in a PKCS#11 token (EC P-256): the
    /// key pair is created under this URI's `object` label (and `id`), the token signs the CSR,
    /// and the issued chain is stored back in the token as certificate objects next to the key,
    /// so `--key-uri` with the same URI authenticates with it afterwards.
    #[arg(long, value_name = "URI", conflicts_with = "csr_out")]
    pub(crate) csr_key_uri: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub(crate) timeout: u64,
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

/// Where `send` gets its identity.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SendIdentity {
    /// A device or module connection string
    /// (`HostName=..;DeviceId=..;SharedAccessKey=..[;ModuleId=..][;GatewayHostName=..]`); `-`
    /// reads standard input.
    #[arg(long, value_name = "CS")]
    pub(crate) connection_string: Option<String>,
    /// The JSON `dps provision` printed (`assignedHub`, `deviceId`); needs --symmetric-key,
    /// --key-uri or --group-key-uri.
    #[arg(long, value_name = "FILE")]
    pub(crate) from_registration: Option<std::path::PathBuf>,
}

/// Arguments of `dps send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) identity: SendIdentity,
    /// The device key (base64) for --from-registration; `-` reads standard input.
    #[arg(long, value_name = "BASE64", requires = "from_registration")]
    pub(crate) symmetric_key: Option<String>,
    /// The enrollment group's key in a PKCS#11 token, for --from-registration; the device key
    /// is derived inside the token.
    #[arg(long, value_name = "URI", requires = "from_registration")]
    pub(crate) group_key_uri: Option<String>,
    /// The certificate chain (PEM) of an X.509 --key-uri; default: the token's certificate.
    #[arg(long, value_name = "PEM", requires = "key_uri")]
    pub(crate) cert: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) pkcs11: Pkcs11Args,
    /// How many messages to send.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) count: u32,
    /// The body of every message (JSON); default `{"messageNumber": n}`.
    #[arg(long, value_name = "JSON")]
    pub(crate) payload: Option<String>,
    /// An application property, `KEY=VALUE` (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub(crate) properties: Vec<String>,
    /// The transport.
    #[arg(long, value_enum, default_value = "mqtt")]
    pub(crate) transport: TransportKind,
    /// Connect to `HOST[:PORT]` instead of the hub (a gateway, or the local emulator); the token
    /// and user name still name the hub.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub(crate) endpoint: Option<String>,
    /// An extra trusted root (PEM), e.g. the emulator's ca.pem; the public roots stay trusted.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) timeout: u64,
}
