//! The IoT Hub service REST API (`2021-04-12` shapes) and the emulator-only hub endpoints, on
//! the HTTPS port, authenticated with the `iothubowner` shared access policy.
//!
//! The hub a request addresses is the one its token's `sr` names; a token for the emulator's
//! own host name (what the printed connection string gives) addresses the first linked hub.

use std::sync::Arc;

use dps_core::sas::ParsedSas;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::hub::methods::MethodInvocation;
use crate::hub::runtime::HubRuntime;
use crate::hub::service::registry::MAX_LIST;
use crate::hub::service::view::{DeviceIdentity, ModuleIdentity};
use crate::model::MessageRequest;
use crate::net::{HttpRequest, HttpResponse};
use crate::rest::ServiceFailure;
use crate::rest::auth;
use crate::util::time;

/// Default page of `GET /emulator/hubs/{hub}/events`.
const DEFAULT_EVENTS_LIMIT: usize = 1000;

/// Serves the hub service API.
pub(crate) struct HubServiceApi {
    pub(crate) runtime: Arc<HubRuntime>,
    /// The emulator's host name (a token for it addresses the default hub).
    pub(crate) hostname: String,
    /// The key of `iothubowner` (the emulator's service key).
    pub(crate) key: dps_auth::SymmetricKey,
}

impl HubServiceApi {
    /// Whether this API serves `path`.
    pub(crate) fn serves(path: &str) -> bool {
        [
            "/devices",
            "/twins",
            "/statistics",
            "/jobs",
            "/emulator/hubs",
        ]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
    }

    pub(crate) async fn handle(&self, request: HttpRequest) -> HttpResponse {
        let hub = match self.authorize(&request) {
            Ok(hub) => hub,
            Err(failure) => {
                tracing::warn!(path = %request.path, reason = %failure.message, "hub service request refused");
                return failure.to_response();
            }
        };
        match self.route(&hub, &request).await {
            Ok(response) => response,
            Err(failure) => {
                tracing::info!(method = %request.method, path = %request.path, status = failure.status, "hub service error: {}", failure.message);
                failure.to_response()
            }
        }
    }

    /// Checks the SAS token (headers and path only: called before the body is read); the hub
    /// it addresses.
    pub(crate) fn authorize(&self, request: &HttpRequest) -> Result<String, ServiceFailure> {
        let token = request.header(http::header::AUTHORIZATION);
        let named = token
            .and_then(|t| ParsedSas::parse(t).ok())
            .and_then(|parsed| {
                let host = parsed.resource().split(['/', ':']).next()?.to_owned();
                let hub = self.runtime.hub_name(&host)?.to_owned();
                Some((host, hub))
            });
        let (host, hub) =
            named.unwrap_or_else(|| (self.hostname.clone(), self.runtime.default_hub().to_owned()));
        let path = request
            .decoded_path()
            .unwrap_or_else(|| request.path.clone());
        auth::check(
            token,
            &self.key,
            &host,
            &path,
            auth::ServiceKind::Hub,
            time::unix_now(),
        )?;
        Ok(hub)
    }

    async fn route(
        &self,
        hub: &str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ServiceFailure> {
        let path = request
            .decoded_path()
            .ok_or_else(|| ServiceFailure::bad_request("the path is not valid"))?;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let if_match = request.header(http::header::IF_MATCH);
        let rt = &self.runtime;
        match (&request.method, segments.as_slice()) {
            // Identity registry: devices.
            (&Method::GET, ["devices"]) => {
                let top = request
                    .query_param("top")
                    .and_then(|t| t.parse::<usize>().ok())
                    .unwrap_or(MAX_LIST);
                Ok(HttpResponse::json(StatusCode::OK, &rt.devices(hub, top)?))
            }
            // #15: bulk operations and the twin query (hub/service/{bulk,query}.rs).
            (&Method::POST, ["devices"]) => {
                let devices: Vec<super::bulk::BulkDevice> = body(request)?;
                let result = rt.bulk_devices(hub, devices).await?;
                // The service answers 400 with the same body when a device failed.
                let status = if result.is_successful {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_REQUEST
                };
                Ok(HttpResponse::json(status, &result))
            }
            (&Method::POST, ["devices", "query"]) => query_response(rt, hub, request),
            // #15: import and export jobs (hub/jobs/).
            (&Method::POST, ["jobs", "create"]) => {
                let job = rt.create_job(hub, body(request)?).await?;
                Ok(HttpResponse::json(StatusCode::OK, &job))
            }
            (&Method::GET, ["jobs"]) => Ok(HttpResponse::json(StatusCode::OK, &rt.jobs(hub)?)),
            (&Method::GET, ["jobs", id]) => {
                Ok(HttpResponse::json(StatusCode::OK, &rt.job(hub, id)?))
            }
            (&Method::GET, ["devices", id]) => Ok(device_response(rt.device(hub, id)?)),
            (&Method::PUT, ["devices", id]) => {
                let input: DeviceIdentity = body(request)?;
                Ok(device_response(
                    rt.put_device(hub, id, input, if_match).await?,
                ))
            }
            (&Method::DELETE, ["devices", id]) => {
                rt.delete_device(hub, id, if_match).await?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            }

            // Identity registry: modules.
            (&Method::GET, ["devices", id, "modules"]) => {
                Ok(HttpResponse::json(StatusCode::OK, &rt.modules(hub, id)?))
            }
            (&Method::GET, ["devices", id, "modules", module]) => {
                Ok(module_response(rt.module(hub, id, module)?))
            }
            (&Method::PUT, ["devices", id, "modules", module]) => {
                let input: ModuleIdentity = body(request)?;
                Ok(module_response(
                    rt.put_module(hub, id, module, input, if_match).await?,
                ))
            }
            (&Method::DELETE, ["devices", id, "modules", module]) => {
                rt.delete_module(hub, id, module, if_match).await?;
                Ok(HttpResponse::empty(StatusCode::NO_CONTENT))
            }
            (&Method::GET, ["statistics", "devices"]) => {
                Ok(HttpResponse::json(StatusCode::OK, &rt.statistics(hub)?))
            }

            // Twins.
            (&Method::GET, ["twins", id]) => twin_response(rt.twin(hub, id, None)),
            (&Method::GET, ["twins", id, "modules", module]) => {
                twin_response(rt.twin(hub, id, Some(module)))
            }
            (method @ (&Method::PATCH | &Method::PUT), ["twins", id]) => {
                let twin: Value = body(request)?;
                let replace = method == Method::PUT;
                twin_response(
                    rt.update_twin(hub, id, None, &twin, if_match, replace)
                        .await,
                )
            }
            (method @ (&Method::PATCH | &Method::PUT), ["twins", id, "modules", module]) => {
                let twin: Value = body(request)?;
                let replace = method == Method::PUT;
                twin_response(
                    rt.update_twin(hub, id, Some(module), &twin, if_match, replace)
                        .await,
                )
            }

            // Direct methods.
            (&Method::POST, ["twins", id, "methods"]) => {
                let invocation: MethodInvocation = body(request)?;
                let result = rt.invoke_method(hub, id, None, &invocation).await?;
                Ok(HttpResponse::json(StatusCode::OK, &result))
            }
            (&Method::POST, ["twins", id, "modules", module, "methods"]) => {
                let invocation: MethodInvocation = body(request)?;
                let result = rt.invoke_method(hub, id, Some(module), &invocation).await?;
                Ok(HttpResponse::json(StatusCode::OK, &result))
            }

            // Emulator-only: the events feed, cloud-to-device messages, module inputs.
            (&Method::GET, ["emulator", "hubs", named, "events"]) => {
                let named = rt.require_hub(named)?;
                let number = |name: &str| {
                    request
                        .query_param(name)
                        .map(|v| {
                            v.parse::<u64>().map_err(|_| {
                                ServiceFailure::bad_request(format!("{name} must be a number"))
                            })
                        })
                        .transpose()
                };
                let since = number("since")?.unwrap_or(0);
                let limit = number("limit")?.map_or(DEFAULT_EVENTS_LIMIT, |l| {
                    usize::try_from(l).unwrap_or(usize::MAX)
                });
                let (events, last) = rt.read_events(&named, since, limit);
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "events": events, "lastSequenceNumber": last }),
                ))
            }
            (&Method::POST, ["emulator", "hubs", named, "devices", id, "c2d"]) => {
                let message = body::<MessageRequest>(request)?.into_message()?;
                let message_id = rt.send_c2d(named, id, message).await?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "messageId": message_id }),
                ))
            }
            (
                &Method::POST,
                [
                    "emulator",
                    "hubs",
                    named,
                    "devices",
                    id,
                    "modules",
                    module,
                    "inputs",
                    input,
                ],
            ) => {
                let message = body::<MessageRequest>(request)?.into_message()?;
                let message_id = rt.send_to_input(named, id, module, input, message)?;
                Ok(HttpResponse::json(
                    StatusCode::OK,
                    &json!({ "messageId": message_id }),
                ))
            }

            (_, ["devices" | "twins" | "statistics" | "emulator", ..]) => Err(ServiceFailure::new(
                405,
                405_000,
                format!("{} {path} is not supported", request.method),
            )),
            _ => Err(ServiceFailure::not_found(
                404_000,
                format!("{path} not found"),
            )),
        }
    }
}

/// `POST /devices/query`: `{"query": "..."}`, page size in `x-ms-max-item-count`, the next
/// page's token in `x-ms-continuation` both ways; `x-ms-item-type: Twin` as the service sends.
fn query_response(
    rt: &HubRuntime,
    hub: &str,
    request: &HttpRequest,
) -> Result<HttpResponse, ServiceFailure> {
    #[derive(serde::Deserialize)]
    struct QuerySpecification {
        query: String,
    }
    let spec: QuerySpecification = body(request)?;
    let page_size = request
        .header("x-ms-max-item-count")
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| ServiceFailure::bad_request("x-ms-max-item-count must be a number"))
        })
        .transpose()?;
    let continuation = request
        .header("x-ms-continuation")
        .filter(|t| !t.trim().is_empty());
    let page = rt.query_twins(hub, &spec.query, page_size, continuation)?;
    let mut response = HttpResponse::json(StatusCode::OK, &page.twins).with_header(
        HeaderName::from_static("x-ms-item-type"),
        HeaderValue::from_static("Twin"),
    );
    if let Some(token) = page.continuation {
        if let Ok(value) = HeaderValue::from_str(&token) {
            response = response.with_header(HeaderName::from_static("x-ms-continuation"), value);
        }
    }
    Ok(response)
}

fn body<T: DeserializeOwned>(request: &HttpRequest) -> Result<T, ServiceFailure> {
    serde_json::from_slice(&request.body)
        .map_err(|e| ServiceFailure::bad_request(format!("the request body is not valid: {e}")))
}

/// A JSON answer with the entity's `ETag` header (quoted, as the service sends it).
fn with_etag(response: HttpResponse, etag: &str) -> HttpResponse {
    match HeaderValue::from_str(&format!("\"{etag}\"")) {
        Ok(value) => response.with_header(http::header::ETAG, value),
        Err(_) => response,
    }
}

fn device_response(device: DeviceIdentity) -> HttpResponse {
    let etag = device.etag.clone();
    with_etag(HttpResponse::json(StatusCode::OK, &device), &etag)
}

fn module_response(module: ModuleIdentity) -> HttpResponse {
    let etag = module.etag.clone();
    with_etag(HttpResponse::json(StatusCode::OK, &module), &etag)
}

fn twin_response(
    twin: Result<super::view::DeviceTwin, ServiceFailure>,
) -> Result<HttpResponse, ServiceFailure> {
    let twin = twin?;
    let etag = twin.etag.clone();
    Ok(with_etag(HttpResponse::json(StatusCode::OK, &twin), &etag))
}
