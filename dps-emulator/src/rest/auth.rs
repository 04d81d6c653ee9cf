//! Service-API authentication: SAS tokens signed with a shared access policy's key, checked as
//! the services do (service-behaviour "Service authentication"): the token's `sr` must cover
//! the resource requested, as a URI prefix by segment of host and path, and its `skn` must name
//! a policy of the service it is presented to.

use dps_auth::{SymmetricKey, verify_sas};
use dps_core::sas::{ParsedSas, SasResource};

use super::failure::ServiceFailure;

/// The service a request is addressed to; it decides which policies exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceKind {
    /// The DPS service API (`/enrollments`, `/enrollmentGroups`, `/registrations`, and the
    /// emulator's DPS knobs).
    Provisioning,
    /// The IoT Hub service API (`/devices`, `/twins`, `/emulator/hubs/..`).
    Hub,
}

impl ServiceKind {
    /// The shared access policies of this service whose key is the emulator's service key:
    /// what the printed connection strings name.
    pub(crate) fn policies(self) -> &'static [&'static str] {
        match self {
            Self::Provisioning => &["provisioningserviceowner"],
            Self::Hub => &["iothubowner"],
        }
    }
}

/// Checks `Authorization: SharedAccessSignature sr=..&sig=..&se=..&skn=..` for a request of
/// `path` (decoded, without the query) on the service `host`.
///
/// `sr` names the service by its host name, with or without a port (SDKs put the port of a
/// local endpoint in it), ignoring case; a path after the host restricts the token to that
/// resource and what is under it, by whole segments (`localhost/devices/a` covers
/// `/devices/a/modules/m`, not `/devices/ab`).
pub(crate) fn check(
    authorization: Option<&str>,
    key: &SymmetricKey,
    host: &str,
    path: &str,
    service: ServiceKind,
    now_unix: u64,
) -> Result<(), ServiceFailure> {
    let unauthorized =
        |why: &str| ServiceFailure::new(401, 401_002, format!("Unauthorized: {why}"));
    let token = authorization.ok_or_else(|| unauthorized("no Authorization header"))?;
    let parsed = ParsedSas::parse(token).map_err(|e| unauthorized(&e.to_string()))?;
    let resource = parsed.resource().to_owned();
    let (sr_host, sr_path) = resource.split_once('/').unwrap_or((&resource, ""));
    let sr_host = sr_host.split(':').next().unwrap_or_default();
    if !sr_host.eq_ignore_ascii_case(host) {
        return Err(unauthorized("the token is for another service"));
    }
    if !covers(sr_path, path) {
        return Err(unauthorized(
            "the token's resource does not cover this request",
        ));
    }
    match parsed.key_name() {
        None => {
            return Err(unauthorized(
                "the token names no shared access policy (skn)",
            ));
        }
        Some(name)
            if !service
                .policies()
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name)) =>
        {
            return Err(unauthorized(&format!(
                "this service has no shared access policy named {name:?}"
            )));
        }
        Some(_) => {}
    }
    verify_sas(token, key, &SasResource::custom(resource), now_unix)
        .map(|_| ())
        .map_err(|e| unauthorized(&e.to_string()))
}

/// Whether the token path `scope` (after the host) is a prefix of `path` by whole segments,
/// ignoring case as the service does when it compares resource URIs.
fn covers(scope: &str, path: &str) -> bool {
    let mut requested = path.split('/').filter(|s| !s.is_empty());
    scope.split('/').filter(|s| !s.is_empty()).all(|segment| {
        requested
            .next()
            .is_some_and(|r| r.eq_ignore_ascii_case(segment))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_covers_by_whole_segments() {
        assert!(covers("", "/enrollments/a"));
        assert!(covers("/", "/enrollments/a"));
        assert!(covers("devices", "/devices/a"));
        assert!(covers("devices/a", "/devices/a/modules/m"));
        assert!(covers("DEVICES/a/", "/devices/a"));
        assert!(!covers("devices/a", "/devices/ab"));
        assert!(!covers("devices/a", "/devices"));
        assert!(!covers("devices/x", "/enrollments"));
    }
}
