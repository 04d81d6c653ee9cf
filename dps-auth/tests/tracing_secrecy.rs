//! `tracing` events never carry keys, signatures or tokens.
//!
//! Kept alone in its own test binary: tracing caches per-callsite interest globally, so events
//! emitted by tests running in parallel threads could race with the scoped subscriber.
#![cfg(all(feature = "sas", feature = "x509"))]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use dps_auth::{Authenticator, GroupKey, SasAuthenticator, SasResource, X509Identity};

const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
const DERIVED_KEY: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";
const REGISTRATION_ID: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";

/// Fails when `text` contains any 8-character piece of `secret`.
fn assert_no_leak(text: &str, secret: &str) {
    for window in secret.as_bytes().windows(8) {
        let piece = std::str::from_utf8(window).unwrap();
        assert!(
            !text.contains(piece),
            "{piece:?} of a secret leaked in {text:?}"
        );
    }
}

fn signature_of(token: &str) -> String {
    let parsed = dps_auth::ParsedSas::parse(token).unwrap();
    parsed.signature_base64().to_owned()
}

/// Records every tracing event's fields as text.
struct Recorder(Mutex<String>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        span.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn tracing_events_never_carry_secrets() {
    let recorder = Arc::new(Recorder(Mutex::new(String::new())));
    let mut signatures = Vec::new();
    tracing::subscriber::with_default(recorder.clone(), || {
        let group = GroupKey::from_base64(GROUP_KEY).unwrap();
        let key = group.derive(REGISTRATION_ID).unwrap();
        let auth = SasAuthenticator::new(key);
        for resource in [
            SasResource::dps("0ne00000A0A", REGISTRATION_ID),
            SasResource::hub_device("h.azure-devices.net", REGISTRATION_ID),
        ] {
            let credentials = auth.credentials(&resource, 1_700_000_000).unwrap();
            signatures.push(signature_of(credentials.password().unwrap()));
        }
        let cert = rcgen::generate_simple_self_signed(vec!["dev".to_owned()]).unwrap();
        let key_pem = cert.signing_key.serialize_pem();
        X509Identity::from_pem(cert.cert.pem().as_bytes(), key_pem.as_bytes()).unwrap();
    });
    let log = recorder.0.lock().unwrap().clone();
    assert!(log.contains("minted SAS token"), "{log}");
    assert!(log.contains(REGISTRATION_ID), "{log}");
    assert!(log.contains("loaded X.509 identity"), "{log}");
    assert_no_leak(&log, GROUP_KEY);
    assert_no_leak(&log, DERIVED_KEY);
    for signature in &signatures {
        assert_no_leak(&log, signature);
    }
}
