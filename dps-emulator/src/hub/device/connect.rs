//! CONNECT-time authentication of hub devices and modules: the username, the client id, and
//! the SAS token or the client certificate checked against the identity registry.

use dps_auth::{SasVerifyError, SymmetricKey, verify_sas};
use dps_core::sas::SasResource;
use rustls_pki_types::CertificateDer;

use crate::hub::live::IdentityKey;
use crate::model::{AttestationType, DeviceStatus, HubAuthType, HubAuthentication};
use crate::store::StoreData;
use crate::util::x509;

/// A hub username: `{host}/{device}[/{module}]/?api-version=...[&...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HubUsername<'a> {
    pub(crate) host: &'a str,
    pub(crate) device_id: &'a str,
    pub(crate) module_id: Option<&'a str>,
}

/// Why CONNECT is refused. The variants map to CONNACK codes and are logged, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Username or client id malformed or inconsistent (CONNACK 2).
    #[error("identifier rejected: {0}")]
    Identifier(&'static str),
    /// Unknown hub or identity, disabled device, bad or expired credentials (CONNACK 5).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
}

/// Who connected, once authenticated.
#[derive(Debug, Clone)]
pub(crate) struct HubIdentity {
    pub(crate) key: IdentityKey,
    /// The SAS token's expiry (seconds since the Unix epoch): the connection is closed then.
    pub(crate) sas_expiry: Option<u64>,
    /// How it authenticated, for the `iothub-connection-auth-method` property.
    pub(crate) method: &'static str,
    /// Whether its api-version offers `$iothub/credentials` (set once accepted, #12).
    pub(crate) credentials_api: bool,
}

/// Splits a hub username. The query part (api-version, DeviceClientType, model-id) is not
/// interpreted: SDKs send different api-versions and the emulator serves them all alike.
pub(crate) fn parse_username(username: &str) -> Option<HubUsername<'_>> {
    let path = match username.split_once('?') {
        Some((path, _query)) => path.strip_suffix('/').unwrap_or(path),
        None => username.strip_suffix('/').unwrap_or(username),
    };
    let mut parts = path.split('/');
    let host = parts.next().filter(|h| !h.is_empty())?;
    let device_id = parts.next().filter(|d| !d.is_empty())?;
    let module_id = match parts.next() {
        Some("") => return None,
        other => other,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(HubUsername {
        host,
        device_id,
        module_id,
    })
}

/// What authentication needs from the emulator.
pub(crate) struct AuthContext<'a> {
    pub(crate) data: &'a StoreData,
    /// The hub the username names, as configured.
    pub(crate) hub: &'a str,
    /// CAs trusted for `certificateAuthority` identities besides enrollment groups' signing
    /// certificates (the emulator's own CA, which signs certificates DPS issues).
    pub(crate) trusted_cas: &'a [CertificateDer<'static>],
    pub(crate) now_unix: u64,
}

/// Authenticates a hub CONNECT whose username is already parsed.
pub(crate) fn authenticate(
    ctx: &AuthContext<'_>,
    username: &HubUsername<'_>,
    client_id: &str,
    password: Option<&str>,
    chain: &[CertificateDer<'static>],
) -> Result<HubIdentity, Refusal> {
    let expected_client_id = match username.module_id {
        Some(module_id) => format!("{}/{module_id}", username.device_id),
        None => username.device_id.to_owned(),
    };
    if client_id != expected_client_id {
        return Err(Refusal::Identifier(
            "client id differs from the username's device (and module) id",
        ));
    }
    if dps_core::ids::validate_device_id(username.device_id).is_err()
        || username
            .module_id
            .is_some_and(|m| dps_core::ids::validate_module_id(m).is_err())
    {
        return Err(Refusal::Identifier("invalid device or module id"));
    }

    let device = ctx
        .data
        .hub_devices
        .get(&StoreData::hub_device_key(ctx.hub, username.device_id))
        .ok_or_else(|| Refusal::NotAuthorized("no such device in the hub's registry".into()))?;
    if device.status == DeviceStatus::Disabled {
        return Err(Refusal::NotAuthorized("the device is disabled".into()));
    }
    let (key, authentication, resource) = match username.module_id {
        Some(module_id) => {
            let module = device.modules.get(module_id).ok_or_else(|| {
                Refusal::NotAuthorized("no such module in the hub's registry".into())
            })?;
            (
                IdentityKey::module(ctx.hub, username.device_id, module_id),
                &module.authentication,
                SasResource::hub_module(username.host, username.device_id, module_id),
            )
        }
        None => (
            IdentityKey::device(ctx.hub, username.device_id),
            &device.authentication,
            SasResource::hub_device(username.host, username.device_id),
        ),
    };

    match password.filter(|p| !p.is_empty()) {
        Some(token) => {
            let expiry = sas(authentication, token, &resource, ctx.now_unix)?;
            Ok(HubIdentity {
                key,
                sas_expiry: Some(expiry),
                method: "sas",
                credentials_api: false,
            })
        }
        None if !chain.is_empty() => {
            let method = x509(ctx, authentication, &key, chain)?;
            Ok(HubIdentity {
                key,
                sas_expiry: None,
                method,
                credentials_api: false,
            })
        }
        None => Err(Refusal::NotAuthorized(
            "no SAS token and no client certificate".into(),
        )),
    }
}

/// Verifies a SAS token with the identity's primary, then secondary key; its expiry.
fn sas(
    authentication: &HubAuthentication,
    token: &str,
    resource: &SasResource,
    now_unix: u64,
) -> Result<u64, Refusal> {
    if authentication.kind != HubAuthType::Sas {
        return Err(Refusal::NotAuthorized(
            "the identity does not use SAS authentication".into(),
        ));
    }
    let keys = authentication.symmetric_key.clone().unwrap_or_default();
    let mut last = Refusal::NotAuthorized("the identity has no usable key".into());
    for key in [keys.primary_key, keys.secondary_key].iter().flatten() {
        let Ok(key) = SymmetricKey::from_base64(key) else {
            continue;
        };
        match verify_sas(token, &key, resource, now_unix) {
            Ok(verified) => return Ok(verified.expiry_unix),
            // Wrong whatever the key: the other key cannot fix it.
            Err(
                e @ (SasVerifyError::Expired { .. }
                | SasVerifyError::ResourceMismatch { .. }
                | SasVerifyError::Malformed(_)),
            ) => return Err(Refusal::NotAuthorized(e.to_string())),
            Err(e) => last = Refusal::NotAuthorized(e.to_string()),
        }
    }
    Err(last)
}

/// Verifies a client certificate chain: by thumbprint for `selfSigned` identities, by chain
/// (and CN = device id) for `certificateAuthority` ones.
fn x509(
    ctx: &AuthContext<'_>,
    authentication: &HubAuthentication,
    key: &IdentityKey,
    chain: &[CertificateDer<'static>],
) -> Result<&'static str, Refusal> {
    let leaf = &chain[0];
    match authentication.kind {
        HubAuthType::SelfSigned => {
            let thumbprints = authentication.x509_thumbprint.clone().unwrap_or_default();
            let sha1 = x509::sha1_thumbprint(leaf);
            let sha256 = x509::sha256_thumbprint(leaf);
            let matches = [
                thumbprints.primary_thumbprint,
                thumbprints.secondary_thumbprint,
            ]
            .iter()
            .flatten()
            .map(|t| t.replace(':', ""))
            .any(|t| t.eq_ignore_ascii_case(&sha1) || t.eq_ignore_ascii_case(&sha256));
            if !matches {
                return Err(Refusal::NotAuthorized(
                    "the certificate's thumbprint is not the registered one".into(),
                ));
            }
            if !x509::currently_valid(leaf) {
                return Err(Refusal::NotAuthorized(
                    "the certificate is expired or not yet valid".into(),
                ));
            }
            Ok("x509Certificate")
        }
        HubAuthType::CertificateAuthority => {
            let expected = key.module_id.as_deref().unwrap_or(&key.device_id);
            let cn = x509::common_name(leaf).unwrap_or_default();
            if cn != expected {
                return Err(Refusal::NotAuthorized(format!(
                    "certificate CN {cn:?} is not the identity's id"
                )));
            }
            let intermediates = &chain[1..];
            let verified = trusted_anchors(ctx)
                .iter()
                .any(|anchor| x509::verify_chain(leaf, intermediates, anchor).is_ok());
            if verified {
                Ok("x509CertificateAuthority")
            } else {
                Err(Refusal::NotAuthorized(
                    "the certificate chain leads to no CA the hub trusts".into(),
                ))
            }
        }
        HubAuthType::Sas | HubAuthType::None => Err(Refusal::NotAuthorized(
            "the identity does not use X.509 authentication".into(),
        )),
    }
}

/// The CAs a `certificateAuthority` identity may chain to: the signing certificates of the
/// X.509 enrollment groups (the hub's "verified CAs" of a DPS setup) and the emulator's CA.
fn trusted_anchors(ctx: &AuthContext<'_>) -> Vec<CertificateDer<'static>> {
    let mut anchors: Vec<CertificateDer<'static>> = ctx.trusted_cas.to_vec();
    for group in ctx.data.groups.values() {
        let attestation = &group.settings.attestation;
        if attestation.kind != AttestationType::X509 {
            continue;
        }
        let Some(signing) = attestation
            .x509
            .as_ref()
            .and_then(|x| x.signing_certificates.as_ref())
        else {
            continue;
        };
        anchors.extend(
            signing
                .iter()
                .filter_map(|c| c.certificate.as_deref().and_then(x509::decode_certificate)),
        );
    }
    anchors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        let u = parse_username("hub.example/dev-1/?api-version=2021-04-12&DeviceClientType=x%2F1")
            .unwrap();
        assert_eq!(
            (u.host, u.device_id, u.module_id),
            ("hub.example", "dev-1", None)
        );
        let u = parse_username("h/d/m/?api-version=2020-09-30").unwrap();
        assert_eq!(u.module_id, Some("m"));
        let u = parse_username("h/d").unwrap();
        assert_eq!((u.host, u.device_id), ("h", "d"));
        for bad in ["", "h", "h/", "/d/?x", "h//?x", "h/d//?x", "h/d/m/x/?a"] {
            assert_eq!(parse_username(bad), None, "{bad}");
        }
    }
}
