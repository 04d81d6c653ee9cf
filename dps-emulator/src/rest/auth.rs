//! Service-API authentication: SAS tokens signed with the shared access policy key.

use dps_auth::{SymmetricKey, verify_sas};
use dps_core::sas::{ParsedSas, SasResource};

use super::failure::ServiceFailure;

/// The policies whose key the emulator's service key is.
pub(crate) const POLICIES: [&str; 2] = ["provisioningserviceowner", "iothubowner"];

/// Checks `Authorization: SharedAccessSignature sr=..&sig=..&se=..&skn=..`.
///
/// `sr` must name this service: its host name, with or without a port (SDKs put the port of a
/// local endpoint in it), ignoring case and anything after the host.
pub(crate) fn check(
    authorization: Option<&str>,
    key: &SymmetricKey,
    hostname: &str,
    now_unix: u64,
) -> Result<(), ServiceFailure> {
    let unauthorized =
        |why: &str| ServiceFailure::new(401, 401_002, format!("Unauthorized: {why}"));
    let token = authorization.ok_or_else(|| unauthorized("no Authorization header"))?;
    let parsed = ParsedSas::parse(token).map_err(|e| unauthorized(&e.to_string()))?;
    let resource = parsed.resource().to_owned();
    let host = resource.split(['/', ':']).next().unwrap_or_default();
    if !host.eq_ignore_ascii_case(hostname) {
        return Err(unauthorized("the token is for another service"));
    }
    if !parsed
        .key_name()
        .is_some_and(|name| POLICIES.iter().any(|p| p.eq_ignore_ascii_case(name)))
    {
        return Err(unauthorized("unknown shared access policy"));
    }
    verify_sas(token, key, &SasResource::custom(resource), now_unix)
        .map(|_| ())
        .map_err(|e| unauthorized(&e.to_string()))
}
