//! Runs the `dps` binary.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
const REGISTRATION_ID: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
const DERIVED_KEY: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";

fn dps(args: &[&str]) -> Output {
    dps_with_stdin(args, "")
}

fn dps_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dps"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).unwrap()
}

/// Succeeded, printed exactly `expected` and a newline, and nothing on stderr.
fn assert_prints(output: &Output, expected: &str) {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(output));
    assert_eq!(stdout(output), format!("{expected}\n"));
    assert_eq!(stderr(output), "");
}

/// Failed with `code`, printed nothing on stdout and one `error: ` line on stderr.
fn assert_fails(output: &Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr(output)
    );
    assert_eq!(stdout(output), "");
    let err = stderr(output);
    assert!(err.starts_with("error: ") && err.ends_with('\n'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    err.to_owned()
}

#[test]
fn derive_key_reproduces_the_documented_vector() {
    let output = dps(&[
        "derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        REGISTRATION_ID,
    ]);
    assert_prints(&output, DERIVED_KEY);
}

#[test]
fn derive_key_reads_the_key_from_stdin() {
    let args = [
        "derive-key",
        "--group-key",
        "-",
        "--registration-id",
        REGISTRATION_ID,
    ];
    let output = dps_with_stdin(&args, &format!("{GROUP_KEY}\n"));
    assert_prints(&output, DERIVED_KEY);
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~`, upper-case hex.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The documented token, computed here from scratch.
fn independent_token(resource: &str, key: &str, expiry: u64, key_name: Option<&str>) -> String {
    let sr = url_encode(resource);
    let mut mac = Hmac::<Sha256>::new_from_slice(&STANDARD.decode(key).unwrap()).unwrap();
    mac.update(format!("{sr}\n{expiry}").as_bytes());
    let sig = url_encode(&STANDARD.encode(mac.finalize().into_bytes()));
    let skn = key_name.map(|n| format!("&skn={n}")).unwrap_or_default();
    format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}{skn}")
}

#[test]
fn sas_matches_the_library_and_an_independent_computation() {
    let cases: [(&str, &str, u64, Option<&str>); 4] = [
        (
            "0neFEEDC0DE/registrations/myRegistrationId",
            DERIVED_KEY,
            1_578_941_692,
            Some("registration"),
        ),
        (
            "0ne00000A0A/registrations/dev:1.a_b-",
            GROUP_KEY,
            1_700_000_000,
            None,
        ),
        (
            "myhub.azure-devices.net/devices/my_device",
            DERIVED_KEY,
            4_102_444_800,
            None,
        ),
        (
            "myhub.azure-devices.net/devices/d/modules/m",
            "a2V5MQ==",
            0,
            Some("iothubowner"),
        ),
    ];
    for (resource, key, expiry, key_name) in cases {
        let expiry_text = expiry.to_string();
        let mut args = vec![
            "sas",
            "--resource",
            resource,
            "--key",
            key,
            "--expiry",
            &expiry_text,
        ];
        if let Some(name) = key_name {
            args.extend(["--key-name", name]);
        }
        let output = dps(&args);
        let expected = independent_token(resource, key, expiry, key_name);
        assert_prints(&output, &expected);

        let mut style = dps_auth::SasStyle::hub();
        if let Some(name) = key_name {
            style = style.with_key_name(name.to_owned());
        }
        let library = dps_auth::generate_sas(
            &dps_auth::SymmetricKey::from_base64(key).unwrap(),
            &dps_auth::SasResource::custom(resource),
            &style,
            expiry,
        )
        .unwrap();
        assert_eq!(library.expose(), expected);
    }
}

#[test]
fn sas_for_dps_equals_the_documented_dps_form() {
    let output = dps(&[
        "sas",
        "--resource",
        "0neFEEDC0DE/registrations/myRegistrationId",
        "--key",
        DERIVED_KEY,
        "--expiry",
        "1578941692",
        "--key-name",
        "registration",
    ]);
    let token = dps_auth::generate_sas(
        &dps_auth::SymmetricKey::from_base64(DERIVED_KEY).unwrap(),
        &dps_auth::SasResource::dps("0neFEEDC0DE", "myRegistrationId"),
        &dps_auth::SasStyle::documented_dps(),
        1_578_941_692,
    )
    .unwrap();
    assert_prints(&output, token.expose());
}

#[test]
fn bad_keys_fail_without_echoing_them() {
    let bad_group = format!("{GROUP_KEY}!!");
    let output = dps(&[
        "derive-key",
        "--group-key",
        &bad_group,
        "--registration-id",
        "dev1",
    ]);
    let err = assert_fails(&output, 3);
    assert!(!err.contains(&GROUP_KEY[..16]), "{err}");
    assert!(err.contains("--group-key"), "{err}");

    let bad_key = format!("{DERIVED_KEY}*");
    let output = dps(&[
        "sas",
        "--resource",
        "r/x",
        "--key",
        &bad_key,
        "--expiry",
        "1",
    ]);
    let err = assert_fails(&output, 3);
    assert!(!err.contains(&DERIVED_KEY[..16]), "{err}");

    let output = dps(&["sas", "--resource", "r/x", "--key", "", "--expiry", "1"]);
    assert_fails(&output, 3);
}

#[test]
fn other_bad_inputs() {
    let output = dps(&[
        "derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        "bad id",
    ]);
    let err = assert_fails(&output, 3);
    assert!(err.contains("registration id"), "{err}");
    assert!(!err.contains(&GROUP_KEY[..16]), "{err}");

    let output = dps(&[
        "sas",
        "--resource",
        "",
        "--key",
        DERIVED_KEY,
        "--expiry",
        "1",
    ]);
    assert_fails(&output, 3);
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        vec!["derive-key", "--group-key", GROUP_KEY],
        vec![
            "sas",
            "--resource",
            "r",
            "--key",
            DERIVED_KEY,
            "--expiry",
            "soon",
        ],
        vec!["no-such-command"],
        vec![],
    ] {
        let output = dps(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(stdout(&output), "");
        assert!(!stderr(&output).contains(&GROUP_KEY[..16]));
    }
}

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    for args in [
        vec!["--help"],
        vec!["derive-key", "--help"],
        vec!["sas", "--help"],
        vec!["help", "sas"],
    ] {
        let output = dps(&args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let help = stdout(&output);
        assert!(help.contains("Exit codes:"), "{args:?}: {help}");
        assert!(help.contains("3  invalid input"), "{args:?}: {help}");
    }
    let output = dps(&["--help"]);
    assert!(stdout(&output).contains("derive-key"));
    assert!(stdout(&output).contains("sas"));
}

#[test]
fn provisioning_to_a_refused_port_fails_in_seconds_with_a_sentence() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("127.0.0.1:{port}");
    let output = dps(&[
        "provision",
        "--id-scope",
        "0ne00000000",
        "--registration-id",
        "refused-1",
        "--symmetric-key",
        DERIVED_KEY,
        "--endpoint",
        &endpoint,
        "--timeout",
        "600",
    ]);
    // Exit 17 (transport), long before the ten-minute timeout, naming host, port and the
    // operating system's error, without Debug text and without the key.
    let err = assert_fails(&output, 17);
    assert!(
        err.contains(
            "cannot reach the provisioning service: 3 connection attempts in a row failed"
        ) && err.contains(&format!("connecting to {endpoint} failed"))
            && err.contains("os error"),
        "{err}"
    );
    assert!(
        !err.contains("ConnectFailed") && !err.contains("Network"),
        "{err}"
    );
    assert!(!err.contains(&DERIVED_KEY[..16]), "{err}");
}
