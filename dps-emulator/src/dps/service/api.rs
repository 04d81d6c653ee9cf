//! The DPS service REST API (`2021-10-01` shapes; older api-versions are accepted) and the
//! emulator-only endpoints, on the HTTPS port.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;

use super::enrollments::{self, Kind};
use super::keys::{self, RegenerateKeys};
use super::moves;
use crate::certificates::CaIssuer;
use crate::dps::device::faults::Faults;
use crate::dps::device::runtime::DpsRuntime;
use crate::hub::runtime::HubRuntime;
use crate::model::{EnrollmentGroup, IndividualEnrollment};
use crate::net::{HttpRequest, HttpResponse};
use crate::rest::ServiceFailure;
use crate::rest::auth;
use crate::store::Store;
use crate::util::time;

/// Maximum items in one bulk operation (the service's limit).
const BULK_LIMIT: usize = 10;
/// Default page size of query results.
const DEFAULT_PAGE: usize = 100;

/// Serves the DPS service API.
pub(crate) struct ServiceApi {
    pub(crate) store: Store,
    pub(crate) hostname: String,
    pub(crate) key: dps_auth::SymmetricKey,
    pub(crate) dps: Arc<DpsRuntime>,
    /// The hubs, whose identities a device move deletes (#12).
    pub(crate) hub: Arc<HubRuntime>,
    /// The CA issuing certificates, whose lifetime is a knob (#12).
    pub(crate) issuer: Arc<CaIssuer>,
}

impl ServiceApi {
    /// Whether this API serves `path` (so the HTTPS router can send other paths elsewhere).
    pub(crate) fn serves(path: &str) -> bool {
        [
            "/enrollments",
            "/enrollmentGroups",
            "/registrations",
            "/emulator",
        ]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
    }

    /// Checks the request's token (headers and path only: called before the body is read).
    pub(crate) fn authorize(&self, request: &HttpRequest) -> Result<(), ServiceFailure> {
        let path = request
            .decoded_path()
            .unwrap_or_else(|| request.path.clone());
        auth::check(
            request.header(http::header::AUTHORIZATION),
            &self.key,
            &self.hostname,
            &path,
            auth::ServiceKind::Provisioning,
            time::unix_now(),
        )
        .inspect_err(|failure| {
            tracing::warn!(path = %request.path, reason = %failure.message, "service API request refused");
        })
    }

    pub(crate) async fn handle(&self, request: HttpRequest) -> HttpResponse {
        // The HTTPS server authorizes before reading the body; checked again here so this
        // handler is safe on its own.
        if let Err(failure) = self.authorize(&request) {
            return failure.to_response();
        }
        match self.route(&request).await {
            Ok(response) => response,
            Err(failure) => {
                tracing::info!(method = %request.method, path = %request.path, status = failure.status, "service API error: {}", failure.message);
                failure.to_response()
            }
        }
    }

    async fn route(&self, request: &HttpRequest) -> Result<HttpResponse, ServiceFailure> {
        let path = request
            .decoded_path()
            .ok_or_else(|| ServiceFailure::bad_request("the path is not valid"))?;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let if_match = request.header(http::header::IF_MATCH);
        let store = &self.store;
        let method = &request.method;
        match (method, segments.as_slice()) {
            // Individual enrollments.
            (&Method::PUT, ["enrollments", id]) => {
                let mut enrollment: IndividualEnrollment = body(request)?;
                same_id(id, &enrollment.registration_id, "registrationId")?;
                enrollment.registration_id = (*id).to_owned();
                let stored = enrollments::put_enrollment(store, enrollment, if_match).await?;
                Ok(enrollment_response(stored))
            }
            (&Method::GET, ["enrollments", id]) => {
                Ok(enrollment_response(enrollments::get_enrollment(store, id)?))
            }
            (&Method::DELETE, ["enrollments", id]) => {
                enrollments::delete(store, Kind::Individual, id, if_match).await?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            }
            (&Method::POST, ["enrollments", id, "attestationmechanism"]) => Ok(HttpResponse::json(
                StatusCode::OK,
                &enrollments::attestation(store, Kind::Individual, id)?,
            )),
            (&Method::POST, ["enrollments", "query"]) => {
                let items = enrollments::list_enrollments(store)
                    .into_iter()
                    // The service does not fill registrationState in query results.
                    .map(|mut e| {
                        e.registration_state = None;
                        enrollments::redact_certificates(&mut e.settings);
                        e
                    })
                    .collect::<Vec<_>>();
                page(request, &items, "Enrollment")
            }
            (&Method::POST, ["enrollments"]) => self.bulk_enrollments(request).await,

            // Enrollment groups.
            (&Method::PUT, ["enrollmentGroups", id]) => {
                let mut group: EnrollmentGroup = body(request)?;
                same_id(id, &group.enrollment_group_id, "enrollmentGroupId")?;
                group.enrollment_group_id = (*id).to_owned();
                Ok(group_response(
                    enrollments::put_group(store, group, if_match).await?,
                ))
            }
            (&Method::GET, ["enrollmentGroups", id]) => {
                Ok(group_response(enrollments::get_group(store, id)?))
            }
            (&Method::DELETE, ["enrollmentGroups", id]) => {
                enrollments::delete(store, Kind::Group, id, if_match).await?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            }
            (&Method::POST, ["enrollmentGroups", id, "attestationmechanism"]) => {
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &enrollments::attestation(store, Kind::Group, id)?,
                ))
            }
            (&Method::POST, ["enrollmentGroups", "query"]) => {
                let items = enrollments::list_groups(store)
                    .into_iter()
                    .map(|mut g| {
                        enrollments::redact_certificates(&mut g.settings);
                        g
                    })
                    .collect::<Vec<_>>();
                page(request, &items, "EnrollmentGroup")
            }
            (&Method::POST, ["enrollmentGroups"]) => self.bulk_groups(request).await,

            // Registration records.
            (&Method::GET, ["registrations", id]) => Ok(HttpResponse::json(
                StatusCode::OK,
                &enrollments::get_registration(store, id)?,
            )),
            (&Method::DELETE, ["registrations", id]) => {
                enrollments::delete_registration(store, id, if_match).await?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            }

            // Emulator-only: fault injection.
            (&Method::GET, ["emulator", "faults"]) => {
                Ok(HttpResponse::json(StatusCode::OK, &self.dps.faults()))
            }
            (&Method::PUT, ["emulator", "faults"]) => {
                let faults: Faults = body(request)?;
                self.dps.set_faults(faults.clone());
                tracing::info!(?faults, "faults set");
                Ok(HttpResponse::json(StatusCode::OK, &faults))
            }
            (&Method::PUT, ["emulator", "timing"]) => {
                let timing: Timing = body(request)?;
                self.dps
                    .set_timing(timing.retry_after_seconds, timing.polls_before_assignment);
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            }
            // Emulator-only: the device lifecycle paths (#12).
            (&Method::POST, ["emulator", "enrollments", id, "regenerateKeys"]) => {
                let slot = RegenerateKeys::parse(&request.body)?;
                let keys =
                    keys::regenerate_enrollment_keys(store, Kind::Individual, id, slot).await?;
                Ok(HttpResponse::json(StatusCode::OK, &keys))
            }
            (&Method::POST, ["emulator", "enrollmentGroups", id, "regenerateKeys"]) => {
                let slot = RegenerateKeys::parse(&request.body)?;
                let keys = keys::regenerate_enrollment_keys(store, Kind::Group, id, slot).await?;
                Ok(HttpResponse::json(StatusCode::OK, &keys))
            }
            (&Method::POST, ["emulator", "registrations", id, "move"]) => {
                let target: MoveTarget = body(request)?;
                let from =
                    moves::move_device(store, &self.hub, id, &target.iot_hub_host_name).await?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "registrationId": id,
                        "from": from,
                        "iotHubHostName": target.iot_hub_host_name,
                    }),
                ))
            }
            (&Method::GET, ["emulator", "certificates"]) => Ok(HttpResponse::json(
                StatusCode::OK,
                &CertificateSettings {
                    lifetime_seconds: self.issuer.lifetime().as_secs(),
                },
            )),
            (&Method::PUT, ["emulator", "certificates"]) => {
                let settings: CertificateSettings = body(request)?;
                self.issuer
                    .set_lifetime(std::time::Duration::from_secs(settings.lifetime_seconds))?;
                Ok(HttpResponse::json(StatusCode::OK, &settings))
            }
            (
                _,
                [
                    "enrollments" | "enrollmentGroups" | "registrations" | "emulator",
                    ..,
                ],
            ) => Err(ServiceFailure::new(
                405,
                405_000,
                format!("{method} {path} is not supported"),
            )),
            _ => Err(ServiceFailure::not_found(
                404_000,
                format!("{path} not found"),
            )),
        }
    }

    async fn bulk_enrollments(
        &self,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ServiceFailure> {
        let bulk: Bulk<IndividualEnrollment> = body(request)?;
        check_bulk_size(bulk.enrollments.len())?;
        let mut errors = Vec::new();
        for enrollment in bulk.enrollments {
            let id = enrollment.registration_id.clone();
            let etag = enrollment.settings.etag.clone();
            let result = match bulk.mode {
                BulkMode::Create if enrollments::get_enrollment(&self.store, &id).is_ok() => Err(
                    ServiceFailure::new(409, 409_001, format!("Enrollment {id} already exists.")),
                ),
                BulkMode::Create | BulkMode::Update => {
                    enrollments::put_enrollment(&self.store, enrollment, None)
                        .await
                        .map(drop)
                }
                BulkMode::UpdateIfMatchETag => enrollments::put_enrollment(
                    &self.store,
                    enrollment,
                    Some(etag.as_deref().unwrap_or("\"\"")),
                )
                .await
                .map(drop),
                BulkMode::Delete => {
                    enrollments::delete(&self.store, Kind::Individual, &id, None).await
                }
            };
            if let Err(failure) = result {
                errors.push(serde_json::json!({
                    "registrationId": id,
                    "errorCode": failure.error_code,
                    "errorStatus": failure.message,
                }));
            }
        }
        Ok(bulk_result(errors))
    }

    async fn bulk_groups(&self, request: &HttpRequest) -> Result<HttpResponse, ServiceFailure> {
        let bulk: BulkGroups = body(request)?;
        check_bulk_size(bulk.enrollment_groups.len())?;
        let mut errors = Vec::new();
        for group in bulk.enrollment_groups {
            let id = group.enrollment_group_id.clone();
            let etag = group.settings.etag.clone();
            let result = match bulk.mode {
                BulkMode::Create if enrollments::get_group(&self.store, &id).is_ok() => {
                    Err(ServiceFailure::new(
                        409,
                        409_001,
                        format!("Enrollment group {id} already exists."),
                    ))
                }
                BulkMode::Create | BulkMode::Update => {
                    enrollments::put_group(&self.store, group, None)
                        .await
                        .map(drop)
                }
                BulkMode::UpdateIfMatchETag => enrollments::put_group(
                    &self.store,
                    group,
                    Some(etag.as_deref().unwrap_or("\"\"")),
                )
                .await
                .map(drop),
                BulkMode::Delete => enrollments::delete(&self.store, Kind::Group, &id, None).await,
            };
            if let Err(failure) = result {
                errors.push(serde_json::json!({
                    "enrollmentGroupId": id,
                    "errorCode": failure.error_code,
                    "errorStatus": failure.message,
                }));
            }
        }
        Ok(bulk_result(errors))
    }
}

/// The body of `POST /emulator/registrations/{id}/move`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MoveTarget {
    iot_hub_host_name: String,
}

/// The body of `GET`/`PUT /emulator/certificates`.
#[derive(serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CertificateSettings {
    lifetime_seconds: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Timing {
    retry_after_seconds: u32,
    polls_before_assignment: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum BulkMode {
    Create,
    Update,
    UpdateIfMatchETag,
    Delete,
}

#[derive(Deserialize)]
struct Bulk<T> {
    enrollments: Vec<T>,
    mode: BulkMode,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkGroups {
    enrollment_groups: Vec<EnrollmentGroup>,
    mode: BulkMode,
}

fn check_bulk_size(n: usize) -> Result<(), ServiceFailure> {
    if n == 0 || n > BULK_LIMIT {
        return Err(ServiceFailure::bad_request(format!(
            "a bulk operation takes 1 to {BULK_LIMIT} items, got {n}"
        )));
    }
    Ok(())
}

fn bulk_result(errors: Vec<serde_json::Value>) -> HttpResponse {
    HttpResponse::json(
        StatusCode::OK,
        &serde_json::json!({ "isSuccessful": errors.is_empty(), "errors": errors }),
    )
}

fn body<T: for<'de> Deserialize<'de>>(request: &HttpRequest) -> Result<T, ServiceFailure> {
    serde_json::from_slice(&request.body)
        .map_err(|e| ServiceFailure::bad_request(format!("the request body is not valid: {e}")))
}

fn same_id(path_id: &str, body_id: &str, field: &str) -> Result<(), ServiceFailure> {
    if body_id.is_empty() || body_id.eq_ignore_ascii_case(path_id) {
        Ok(())
    } else {
        Err(ServiceFailure::bad_request(format!(
            "{field} in the body differs from the path"
        )))
    }
}

fn enrollment_response(mut enrollment: IndividualEnrollment) -> HttpResponse {
    enrollments::redact_certificates(&mut enrollment.settings);
    with_etag(
        HttpResponse::json(StatusCode::OK, &enrollment),
        enrollment.settings.etag.as_deref(),
    )
}

fn group_response(mut group: EnrollmentGroup) -> HttpResponse {
    enrollments::redact_certificates(&mut group.settings);
    with_etag(
        HttpResponse::json(StatusCode::OK, &group),
        group.settings.etag.as_deref(),
    )
}

fn with_etag(response: HttpResponse, etag: Option<&str>) -> HttpResponse {
    match etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        Some(value) => response.with_header(http::header::ETAG, value),
        None => response,
    }
}

/// One page of a query: `x-ms-max-item-count` items from the `x-ms-continuation` offset.
fn page<T: serde::Serialize>(
    request: &HttpRequest,
    items: &[T],
    item_type: &'static str,
) -> Result<HttpResponse, ServiceFailure> {
    let max = request
        .header("x-ms-max-item-count")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_PAGE);
    let start = match request.header("x-ms-continuation") {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| ServiceFailure::bad_request("invalid continuation token"))?,
        None => 0,
    };
    let end = start.saturating_add(max).min(items.len());
    let slice = items.get(start.min(items.len())..end).unwrap_or_default();
    let mut response = HttpResponse::json(StatusCode::OK, slice)
        .with_header(
            HeaderName::from_static("x-ms-item-type"),
            HeaderValue::from_static(item_type),
        )
        .with_header(
            HeaderName::from_static("x-ms-max-item-count"),
            HeaderValue::from(max),
        );
    if end < items.len() {
        response = response.with_header(
            HeaderName::from_static("x-ms-continuation"),
            HeaderValue::from(end),
        );
    }
    Ok(response)
}
