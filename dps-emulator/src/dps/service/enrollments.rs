//! Enrollment, enrollment group and registration record operations, shared by the REST API and
//! the Rust admin API.

use crate::model::{
    AttestationMechanism, AttestationType, DeviceRegistrationState, EnrollmentGroup,
    EnrollmentSettings, IndividualEnrollment, SymmetricKeyAttestation, X509Certificates,
};
use crate::store::Store;
use crate::util::x509;
use crate::util::{ids, time};

use crate::rest::ServiceFailure;

/// Which kind of record an operation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Individual,
    Group,
}

/// Creates or replaces an individual enrollment. `if_match` (an etag or `*`) must match the
/// stored record's etag when given.
pub(crate) async fn put_enrollment(
    store: &Store,
    mut enrollment: IndividualEnrollment,
    if_match: Option<&str>,
) -> Result<IndividualEnrollment, ServiceFailure> {
    dps_core::ids::validate_registration_id(&enrollment.registration_id)
        .map_err(|e| ServiceFailure::bad_request(format!("invalid registrationId: {e}")))?;
    if let Some(device_id) = &enrollment.device_id {
        dps_core::ids::validate_device_id(device_id)
            .map_err(|e| ServiceFailure::bad_request(format!("invalid deviceId: {e}")))?;
    }
    prepare(&mut enrollment.settings)?;
    enrollment.registration_state = None;
    let key = enrollment.registration_id.to_ascii_lowercase();
    let stored = store
        .mutate_durable(|data| {
            let existing = data.enrollments.get(&key);
            check_etag(existing.map(|e| &e.settings), if_match)?;
            stamp(&mut enrollment.settings, existing.map(|e| &e.settings));
            data.enrollments.insert(key.clone(), enrollment.clone());
            Ok::<_, ServiceFailure>(enrollment)
        })
        .await?;
    Ok(with_state(store, stored))
}

/// Creates or replaces an enrollment group.
pub(crate) async fn put_group(
    store: &Store,
    mut group: EnrollmentGroup,
    if_match: Option<&str>,
) -> Result<EnrollmentGroup, ServiceFailure> {
    if group.enrollment_group_id.is_empty() || group.enrollment_group_id.len() > 128 {
        return Err(ServiceFailure::bad_request("invalid enrollmentGroupId"));
    }
    prepare(&mut group.settings)?;
    if group.settings.attestation.kind == AttestationType::X509
        && group
            .settings
            .attestation
            .x509
            .as_ref()
            .and_then(|x| x.signing_certificates.as_ref())
            .is_none()
        && group
            .settings
            .attestation
            .x509
            .as_ref()
            .and_then(|x| x.ca_references.as_ref())
            .is_none()
    {
        return Err(ServiceFailure::bad_request(
            "an X.509 enrollment group needs signingCertificates or caReferences",
        ));
    }
    let key = group.enrollment_group_id.to_ascii_lowercase();
    store
        .mutate_durable(|data| {
            let existing = data.groups.get(&key);
            check_etag(existing.map(|g| &g.settings), if_match)?;
            stamp(&mut group.settings, existing.map(|g| &g.settings));
            data.groups.insert(key.clone(), group.clone());
            Ok(group)
        })
        .await
}

/// Reads an individual enrollment (with its registration state).
pub(crate) fn get_enrollment(
    store: &Store,
    registration_id: &str,
) -> Result<IndividualEnrollment, ServiceFailure> {
    let enrollment = store
        .read(|data| {
            data.enrollments
                .get(&registration_id.to_ascii_lowercase())
                .cloned()
        })
        .ok_or_else(|| {
            ServiceFailure::not_found(404_202, format!("Enrollment {registration_id} not found."))
        })?;
    Ok(with_state(store, enrollment))
}

/// Reads an enrollment group.
pub(crate) fn get_group(store: &Store, group_id: &str) -> Result<EnrollmentGroup, ServiceFailure> {
    store
        .read(|data| data.groups.get(&group_id.to_ascii_lowercase()).cloned())
        .ok_or_else(|| {
            ServiceFailure::not_found(404_202, format!("Enrollment group {group_id} not found."))
        })
}

/// Deletes an enrollment or group; `if_match` as for writes.
pub(crate) async fn delete(
    store: &Store,
    kind: Kind,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ServiceFailure> {
    let key = id.to_ascii_lowercase();
    store
        .mutate_durable(|data| {
            let existing = match kind {
                Kind::Individual => data.enrollments.get(&key).map(|e| &e.settings),
                Kind::Group => data.groups.get(&key).map(|g| &g.settings),
            };
            let Some(existing) = existing else {
                return Err(ServiceFailure::not_found(
                    404_202,
                    format!("Enrollment {id} not found."),
                ));
            };
            check_etag(Some(existing), if_match)?;
            match kind {
                Kind::Individual => data.enrollments.remove(&key).map(drop),
                Kind::Group => data.groups.remove(&key).map(drop),
            };
            Ok(())
        })
        .await
}

/// The attestation mechanism of an enrollment or group, keys included.
pub(crate) fn attestation(
    store: &Store,
    kind: Kind,
    id: &str,
) -> Result<AttestationMechanism, ServiceFailure> {
    match kind {
        Kind::Individual => get_enrollment(store, id).map(|e| e.settings.attestation),
        Kind::Group => get_group(store, id).map(|g| g.settings.attestation),
    }
}

/// All individual enrollments, in registration id order.
pub(crate) fn list_enrollments(store: &Store) -> Vec<IndividualEnrollment> {
    store.read(|data| data.enrollments.values().cloned().collect())
}

/// All enrollment groups, in id order.
pub(crate) fn list_groups(store: &Store) -> Vec<EnrollmentGroup> {
    store.read(|data| data.groups.values().cloned().collect())
}

/// A registration record.
pub(crate) fn get_registration(
    store: &Store,
    registration_id: &str,
) -> Result<DeviceRegistrationState, ServiceFailure> {
    store
        .read(|data| {
            data.registrations
                .get(&registration_id.to_ascii_lowercase())
                .cloned()
        })
        .ok_or_else(|| {
            ServiceFailure::not_found(
                404_201,
                format!("Registration {registration_id} not found."),
            )
        })
}

/// Deletes a registration record (the device registers as new next time).
pub(crate) async fn delete_registration(
    store: &Store,
    registration_id: &str,
    if_match: Option<&str>,
) -> Result<(), ServiceFailure> {
    let key = registration_id.to_ascii_lowercase();
    store
        .mutate_durable(|data| {
            let existing = data.registrations.get(&key).ok_or_else(|| {
                ServiceFailure::not_found(
                    404_201,
                    format!("Registration {registration_id} not found."),
                )
            })?;
            if let Some(expected) = if_match.filter(|m| *m != "*") {
                if !existing
                    .etag
                    .as_deref()
                    .is_some_and(|actual| same_etag(actual, expected))
                {
                    return Err(ServiceFailure::precondition_failed());
                }
            }
            data.registrations.remove(&key);
            Ok(())
        })
        .await
}

fn with_state(store: &Store, mut enrollment: IndividualEnrollment) -> IndividualEnrollment {
    enrollment.registration_state = store.read(|data| {
        data.registrations
            .get(&enrollment.registration_id.to_ascii_lowercase())
            .cloned()
    });
    enrollment
}

/// Validates the attestation and fills what the service fills: generated keys, certificate info.
fn prepare(settings: &mut EnrollmentSettings) -> Result<(), ServiceFailure> {
    let attestation = &mut settings.attestation;
    match attestation.kind {
        AttestationType::SymmetricKey => {
            let keys = attestation
                .symmetric_key
                .get_or_insert_with(SymmetricKeyAttestation::default);
            for key in [&mut keys.primary_key, &mut keys.secondary_key] {
                match key {
                    Some(text) => {
                        dps_auth::SymmetricKey::from_base64(text).map_err(|_| {
                            ServiceFailure::bad_request("symmetric keys must be non-empty base64")
                        })?;
                    }
                    None => *key = Some(ids::symmetric_key()),
                }
            }
        }
        AttestationType::X509 => {
            let x509 = attestation.x509.as_mut().ok_or_else(|| {
                ServiceFailure::bad_request("x509 attestation without certificates")
            })?;
            for certificates in [
                &mut x509.client_certificates,
                &mut x509.signing_certificates,
            ]
            .into_iter()
            .flatten()
            {
                fill_info(certificates)?;
            }
        }
        AttestationType::Tpm | AttestationType::None => {}
    }
    Ok(())
}

fn fill_info(certificates: &mut X509Certificates) -> Result<(), ServiceFailure> {
    for slot in [&mut certificates.primary, &mut certificates.secondary]
        .into_iter()
        .flatten()
    {
        let Some(text) = slot.certificate.as_deref() else {
            continue;
        };
        let der = x509::decode_certificate(text).ok_or_else(|| {
            ServiceFailure::bad_request("a certificate is neither PEM nor base64 DER")
        })?;
        slot.info = Some(
            x509::certificate_info(&der)
                .ok_or_else(|| ServiceFailure::bad_request("a certificate does not parse"))?,
        );
    }
    Ok(())
}

fn check_etag(
    existing: Option<&EnrollmentSettings>,
    if_match: Option<&str>,
) -> Result<(), ServiceFailure> {
    let Some(expected) = if_match.filter(|m| *m != "*") else {
        return Ok(());
    };
    match existing.and_then(|e| e.etag.as_deref()) {
        Some(actual) if same_etag(actual, expected) => Ok(()),
        _ => Err(ServiceFailure::precondition_failed()),
    }
}

/// Etags compare with or without their quotes (SDKs differ in whether they strip them).
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

fn stamp(settings: &mut EnrollmentSettings, existing: Option<&EnrollmentSettings>) {
    let now = time::now_utc();
    settings.created_date_time_utc = existing
        .and_then(|e| e.created_date_time_utc.clone())
        .or_else(|| Some(now.clone()));
    settings.last_updated_date_time_utc = Some(now);
    settings.etag = Some(format!("\"{}\"", uuid::Uuid::new_v4()));
}

/// What the service returns for an enrollment: certificates are summarized, never echoed.
pub(crate) fn redact_certificates(settings: &mut EnrollmentSettings) {
    if let Some(x509) = settings.attestation.x509.as_mut() {
        for certificates in [
            &mut x509.client_certificates,
            &mut x509.signing_certificates,
        ]
        .into_iter()
        .flatten()
        {
            for slot in [&mut certificates.primary, &mut certificates.secondary]
                .into_iter()
                .flatten()
            {
                slot.certificate = None;
            }
        }
    }
}
