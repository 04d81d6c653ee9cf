//! CONNECT-time authentication of DPS devices: the username, the SAS token or the client
//! certificate chain, and which enrollment they match.

use dps_auth::{GroupKey, SasVerifyError, SymmetricKey, verify_sas};
use dps_core::sas::SasResource;
use rustls_pki_types::CertificateDer;

use crate::model::{AttestationType, EnrollmentSettings, X509Certificates};
use crate::store::StoreData;
use crate::util::x509;

/// The enrollment a device matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnrollmentRef {
    /// An individual enrollment, by lower-case registration id.
    Individual(String),
    /// An enrollment group, by lower-case group id.
    Group(String),
}

/// How the device proved itself.
#[derive(Debug, Clone)]
pub(crate) enum Proof {
    /// A SAS token, verified with one of the enrollment's keys.
    Sas,
    /// A certificate chain (leaf first), verified against an enrolled certificate.
    X509 {
        chain: Vec<CertificateDer<'static>>,
        /// The enrolled certificate that matched (the leaf for individual enrollments).
        matched: CertificateDer<'static>,
    },
}

/// The outcome of CONNECT for a DPS client.
#[derive(Debug, Clone)]
pub(crate) struct DpsIdentity {
    /// The registration id as the device sent it.
    pub(crate) registration_id: String,
    /// The api-version from the username.
    pub(crate) api_version: String,
    /// The matched enrollment; `None` for an unknown device (answered 401 at registration).
    pub(crate) enrollment: Option<EnrollmentRef>,
    /// How it authenticated.
    pub(crate) proof: Option<Proof>,
}

/// Why CONNECT is refused. The variants map to CONNACK codes and are logged, never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Username or client id malformed or inconsistent (CONNACK 2).
    #[error("identifier rejected: {0}")]
    Identifier(&'static str),
    /// Bad, expired or misdirected credentials (CONNACK 5).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
}

/// Splits `{idScope}/registrations/{id}/api-version={v}[&k=v...]`.
pub(crate) fn parse_username<'a>(
    username: &'a str,
    id_scope: &str,
) -> Result<(&'a str, &'a str), Refusal> {
    let mut parts = username.splitn(4, '/');
    let (Some(scope), Some("registrations"), Some(id), Some(params)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Identifier(
            "username is not {idScope}/registrations/{id}/api-version=..",
        ));
    };
    if !scope.eq_ignore_ascii_case(id_scope) {
        return Err(Refusal::NotAuthorized(format!(
            "unknown id scope {scope:?}"
        )));
    }
    let api_version = dps_core::query::Params::new(params)
        .get("api-version")
        .flatten()
        .ok_or(Refusal::Identifier("username has no api-version"))?;
    Ok((id, api_version))
}

/// Authenticates a DPS CONNECT.
pub(crate) fn authenticate(
    data: &StoreData,
    id_scope: &str,
    client_id: &str,
    username: &str,
    password: Option<&str>,
    chain: &[CertificateDer<'static>],
    now_unix: u64,
) -> Result<DpsIdentity, Refusal> {
    let (registration_id, api_version) = parse_username(username, id_scope)?;
    if !client_id.eq_ignore_ascii_case(registration_id) {
        return Err(Refusal::Identifier(
            "client id differs from the registration id",
        ));
    }
    if dps_core::ids::validate_registration_id(registration_id).is_err() {
        return Err(Refusal::Identifier("invalid registration id"));
    }
    let (enrollment, proof) = match password.filter(|p| !p.is_empty()) {
        Some(token) => sas(data, id_scope, registration_id, token, now_unix)?,
        None if !chain.is_empty() => x509(data, registration_id, chain)?,
        None => {
            return Err(Refusal::NotAuthorized(
                "no SAS token and no client certificate".into(),
            ));
        }
    };
    Ok(DpsIdentity {
        registration_id: registration_id.to_owned(),
        api_version: api_version.to_owned(),
        enrollment,
        proof,
    })
}

type Matched = (Option<EnrollmentRef>, Option<Proof>);

fn sas(
    data: &StoreData,
    id_scope: &str,
    registration_id: &str,
    token: &str,
    now_unix: u64,
) -> Result<Matched, Refusal> {
    let resource = SasResource::dps(id_scope, registration_id);
    let key_of = |text: &Option<String>| {
        text.as_deref()
            .and_then(|k| SymmetricKey::from_base64(k).ok())
    };
    let check = |key: &SymmetricKey| verify_sas(token, key, &resource, now_unix);

    let lower = registration_id.to_ascii_lowercase();
    if let Some(enrollment) = data.enrollments.get(&lower) {
        let keys = symmetric_keys(&enrollment.settings).ok_or_else(|| {
            Refusal::NotAuthorized("the enrollment does not use symmetric keys".into())
        })?;
        try_keys(&[key_of(&keys.0), key_of(&keys.1)], check).map_err(KeyCheck::into_refusal)?;
        return Ok((Some(EnrollmentRef::Individual(lower)), Some(Proof::Sas)));
    }

    let mut any_group = false;
    for (id, group) in &data.groups {
        let Some(keys) = symmetric_keys(&group.settings) else {
            continue;
        };
        any_group = true;
        let derive = |text: &Option<String>| {
            text.as_deref()
                .and_then(|k| GroupKey::from_base64(k).ok())
                .and_then(|g| g.derive(registration_id).ok())
        };
        match try_keys(&[derive(&keys.0), derive(&keys.1)], check) {
            Ok(()) => {
                return Ok((Some(EnrollmentRef::Group(id.clone())), Some(Proof::Sas)));
            }
            // A right signature with a past expiry (or a token for another resource) is final;
            // another group cannot fix it.
            Err(KeyCheck::Final(refusal)) => return Err(refusal),
            Err(KeyCheck::Mismatch(_)) => {}
        }
    }
    if any_group {
        return Err(Refusal::NotAuthorized(
            "the SAS token verifies with no enrollment group key".into(),
        ));
    }
    // No enrollment could apply: the token cannot be checked, and registration answers 401.
    dps_core::sas::ParsedSas::parse(token)
        .map_err(|e| Refusal::NotAuthorized(format!("malformed SAS token: {e}")))?;
    Ok((None, None))
}

/// Why no key verified a token.
enum KeyCheck {
    /// The token is wrong whatever the key: expired (with a right signature), for another
    /// resource, or malformed.
    Final(Refusal),
    /// The signature matched none of the keys tried.
    Mismatch(Refusal),
}

impl KeyCheck {
    fn into_refusal(self) -> Refusal {
        match self {
            Self::Final(r) | Self::Mismatch(r) => r,
        }
    }
}

/// Tries each key (primary, then secondary).
fn try_keys(
    keys: &[Option<SymmetricKey>],
    check: impl Fn(&SymmetricKey) -> Result<dps_auth::VerifiedSas, SasVerifyError>,
) -> Result<(), KeyCheck> {
    let mut last = KeyCheck::Mismatch(Refusal::NotAuthorized(
        "the enrollment has no usable key".into(),
    ));
    for key in keys {
        let Some(key) = key else { continue };
        match check(key) {
            Ok(_) => return Ok(()),
            Err(
                e @ (SasVerifyError::Expired { .. }
                | SasVerifyError::ResourceMismatch { .. }
                | SasVerifyError::Malformed(_)),
            ) => {
                return Err(KeyCheck::Final(Refusal::NotAuthorized(e.to_string())));
            }
            Err(e) => last = KeyCheck::Mismatch(Refusal::NotAuthorized(e.to_string())),
        }
    }
    Err(last)
}

fn symmetric_keys(settings: &EnrollmentSettings) -> Option<(Option<String>, Option<String>)> {
    let attestation = &settings.attestation;
    if attestation.kind != AttestationType::SymmetricKey {
        return None;
    }
    let keys = attestation.symmetric_key.as_ref()?;
    Some((keys.primary_key.clone(), keys.secondary_key.clone()))
}

fn x509(
    data: &StoreData,
    registration_id: &str,
    chain: &[CertificateDer<'static>],
) -> Result<Matched, Refusal> {
    let leaf = &chain[0];
    let cn = x509::common_name(leaf).ok_or_else(|| {
        Refusal::NotAuthorized("the client certificate has no common name".into())
    })?;
    if !cn.eq_ignore_ascii_case(registration_id) {
        return Err(Refusal::NotAuthorized(format!(
            "certificate CN {cn:?} differs from the registration id"
        )));
    }

    let lower = registration_id.to_ascii_lowercase();
    if let Some(enrollment) = data.enrollments.get(&lower) {
        let certificates =
            x509_certificates(&enrollment.settings, |x| x.client_certificates.as_ref())
                .ok_or_else(|| {
                    Refusal::NotAuthorized(
                        "the enrollment does not use X.509 device certificates".into(),
                    )
                })?;
        let matched = certificates
            .into_iter()
            .find(|c| c.as_ref() == leaf.as_ref())
            .ok_or_else(|| {
                Refusal::NotAuthorized("the certificate is not the enrolled one".into())
            })?;
        if !x509::currently_valid(leaf) {
            return Err(Refusal::NotAuthorized(
                "the certificate is expired or not yet valid".into(),
            ));
        }
        return Ok((
            Some(EnrollmentRef::Individual(lower)),
            Some(Proof::X509 {
                chain: chain.to_vec(),
                matched,
            }),
        ));
    }

    let groups: Vec<(&String, Vec<CertificateDer<'static>>)> = data
        .groups
        .iter()
        .filter_map(|(id, g)| {
            Some((
                id,
                x509_certificates(&g.settings, |x| x.signing_certificates.as_ref())?,
            ))
        })
        .collect();

    // The first certificate of the presented chain that is enrolled decides the group.
    for (position, presented) in chain.iter().enumerate().skip(1) {
        for (id, enrolled) in &groups {
            if let Some(anchor) = enrolled.iter().find(|c| c.as_ref() == presented.as_ref()) {
                return verified_group(id, chain, &chain[1..position], anchor);
            }
        }
    }
    // Otherwise an enrolled certificate may be the issuer of the last presented one.
    for (id, enrolled) in &groups {
        for anchor in enrolled {
            if x509::verify_chain(leaf, &chain[1..], anchor).is_ok() {
                return Ok((
                    Some(EnrollmentRef::Group((*id).clone())),
                    Some(Proof::X509 {
                        chain: chain.to_vec(),
                        matched: anchor.clone(),
                    }),
                ));
            }
        }
    }
    // No enrollment knows this chain: registration answers 401.
    Ok((None, None))
}

fn verified_group(
    id: &str,
    chain: &[CertificateDer<'static>],
    intermediates: &[CertificateDer<'static>],
    anchor: &CertificateDer<'static>,
) -> Result<Matched, Refusal> {
    x509::verify_chain(&chain[0], intermediates, anchor)
        .map_err(|e| Refusal::NotAuthorized(format!("certificate chain rejected: {e}")))?;
    Ok((
        Some(EnrollmentRef::Group(id.to_owned())),
        Some(Proof::X509 {
            chain: chain.to_vec(),
            matched: anchor.clone(),
        }),
    ))
}

fn x509_certificates(
    settings: &EnrollmentSettings,
    pick: impl Fn(&crate::model::X509Attestation) -> Option<&X509Certificates>,
) -> Option<Vec<CertificateDer<'static>>> {
    let attestation = &settings.attestation;
    if attestation.kind != AttestationType::X509 {
        return None;
    }
    let certificates = pick(attestation.x509.as_ref()?)?;
    Some(
        certificates
            .iter()
            .filter_map(|c| c.certificate.as_deref().and_then(x509::decode_certificate))
            .collect(),
    )
}
