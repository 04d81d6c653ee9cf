//! Authenticators hand out fresh credentials on every connect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dps_auth::{
    AuthError, Authenticator, Credentials, SIGNATURE_LEN, SasAuthenticator, SasResource, SasStyle,
    SignError, Signer,
};

/// A stand-in for a key held in hardware: signs with a fixed answer and counts calls, or fails.
#[derive(Debug, Default)]
struct FakeHsm {
    calls: AtomicUsize,
    busy: bool,
}

impl Signer for FakeHsm {
    fn sign(&self, _message: &[u8]) -> Result<[u8; SIGNATURE_LEN], SignError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.busy {
            return Err(SignError::unavailable("secure element busy"));
        }
        Ok([0xAB; SIGNATURE_LEN])
    }
}

fn dps() -> SasResource {
    SasResource::dps("0ne00000A0A", "dev1")
}

fn hub() -> SasResource {
    SasResource::hub_device("myhub.azure-devices.net", "dev1")
}

fn token(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Sas(token) => token.expose().to_owned(),
        other => panic!("expected a SAS token, got {other:?}"),
    }
}

#[test]
fn defaults_per_resource_kind() {
    let auth = SasAuthenticator::new(FakeHsm::default());
    assert_eq!(auth.token_lifetime(), Duration::from_secs(3600));
    let dps_token = token(&auth.credentials(&dps(), 1_000).unwrap());
    assert_eq!(
        dps_token,
        "SharedAccessSignature sr=0ne00000A0A%2Fregistrations%2Fdev1\
         &sig=q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s%3D&se=4600&skn=registration"
    );
    let hub_token = token(&auth.credentials(&hub(), 1_000).unwrap());
    assert_eq!(
        hub_token,
        "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1\
         &sig=q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s%3D&se=4600"
    );
}

#[test]
fn every_connect_gets_a_fresh_token() {
    let auth = SasAuthenticator::new(FakeHsm::default())
        .with_token_lifetime(Duration::from_secs(60))
        .with_dps_style(SasStyle::embedded_c())
        .with_hub_style(SasStyle::hub().with_key_name("device"));
    let first = auth.credentials(&dps(), 1_000).unwrap();
    let second = auth.credentials(&dps(), 2_000).unwrap();
    assert_eq!(first.expiry_unix(), Some(1_060));
    assert_eq!(second.expiry_unix(), Some(2_060));
    assert_eq!(auth.signer().calls.load(Ordering::Relaxed), 2);
    assert!(token(&first).contains("%2fregistrations%2f"));
    assert!(token(&auth.credentials(&hub(), 0).unwrap()).ends_with("&se=60&skn=device"));
    // The expiry saturates instead of overflowing.
    let late = auth.credentials(&dps(), u64::MAX).unwrap();
    assert_eq!(late.expiry_unix(), Some(u64::MAX));
}

#[test]
fn signer_failures_are_classified() {
    let auth = SasAuthenticator::new(FakeHsm {
        busy: true,
        ..FakeHsm::default()
    });
    let err = auth.credentials(&dps(), 0).unwrap_err();
    assert!(matches!(err, AuthError::Sign(SignError::Unavailable(_))));
    assert!(err.is_retriable());
    assert_eq!(err.to_string(), "signing key is temporarily unavailable");
    let failed = AuthError::from(SignError::failed("no such key"));
    assert!(!failed.is_retriable());
}

#[test]
fn authenticators_compose_behind_pointers() {
    let shared: Arc<dyn Signer> = Arc::new(FakeHsm::default());
    let auth: Box<dyn Authenticator> = Box::new(SasAuthenticator::new(shared.clone()));
    let by_ref: &dyn Authenticator = &auth;
    assert!(by_ref.credentials(&dps(), 0).is_ok());
    let arc: Arc<dyn Authenticator> = Arc::new(SasAuthenticator::new(Box::new(FakeHsm::default())));
    assert!(arc.credentials(&hub(), 0).is_ok());
}

#[cfg(feature = "sas")]
#[test]
fn a_symmetric_key_is_an_authenticator_with_the_defaults() {
    use dps_auth::{SymmetricKey, verify_sas};
    let key = SymmetricKey::from_base64("a2V5MQ==").unwrap();
    let credentials = key.credentials(&dps(), 1_000).unwrap();
    let password = credentials.password().unwrap();
    assert!(
        password.ends_with("&se=4600&skn=registration"),
        "{password}"
    );
    assert!(verify_sas(password, &key, &dps(), 1_000).is_ok());
    let hub_credentials = key.credentials(&hub(), 1_000).unwrap();
    assert!(hub_credentials.password().unwrap().ends_with("&se=4600"));
    let same = SasAuthenticator::new(key.clone())
        .credentials(&dps(), 1_000)
        .unwrap();
    assert_eq!(same.password(), credentials.password());
}
