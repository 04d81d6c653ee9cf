//! One HTTPS connection: HTTP/1.1 with hyper, requests to the [`HttpHandler`], and the WebSocket
//! upgrade that turns the connection into an MQTT connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::gate::Unauthenticated;
use super::http::{HttpHandler, HttpRequest, HttpResponse};
use super::mqtt::{ListenerTransport, MqttHandler};
use super::mqtt_connection::{ConnectionContext, MqttLimits, run_connection};
use super::packet_io::WebSocketIo;
use super::read_budget::ReadBudget;
use super::wait_shutdown;
use super::websocket::{
    check_upgrade, is_websocket_path, is_websocket_upgrade, upgrade_headers, websocket_config,
};
use super::write_timeout::WriteTimeout;

/// After shutdown is signalled, in-flight requests get this long to finish.
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(5);

/// What every HTTPS connection shares.
pub(crate) struct HttpsContext {
    pub(crate) http: Arc<dyn HttpHandler>,
    pub(crate) mqtt: Arc<dyn MqttHandler>,
    pub(crate) mqtt_limits: MqttLimits,
    pub(crate) max_body_size: usize,
    /// A client gets this long to send a request's headers (slow-loris protection).
    pub(crate) header_timeout: Duration,
    /// ... and this long to send its body.
    pub(crate) body_timeout: Duration,
    /// A write that stalls this long (a client that does not read) closes the connection.
    pub(crate) write_timeout: Duration,
}

/// Per-connection facts the request handler needs.
struct ConnectionInfo {
    context: Arc<HttpsContext>,
    peer_addr: SocketAddr,
    peer_certificates: Vec<CertificateDer<'static>>,
    /// Released by the first authorized request (or, after a WebSocket upgrade, by CONNECT).
    unauthenticated: Arc<Unauthenticated>,
    /// Set when a request was answered 101: the connection continues as MQTT over WebSocket.
    upgrade: Mutex<Option<OnUpgrade>>,
}

/// Serves one TLS connection on the HTTPS port until it ends (or is upgraded and that ends).
pub(crate) async fn serve_https<S>(
    io: S,
    peer_addr: SocketAddr,
    peer_certificates: Vec<CertificateDer<'static>>,
    unauthenticated: Arc<Unauthenticated>,
    context: Arc<HttpsContext>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let write_timeout = context.write_timeout;
    let header_timeout = context.header_timeout;
    let info = Arc::new(ConnectionInfo {
        context,
        peer_addr,
        peer_certificates,
        unauthenticated,
        upgrade: Mutex::new(None),
    });
    let service_info = Arc::clone(&info);
    let service = service_fn(move |request| {
        let info = Arc::clone(&service_info);
        async move { Ok::<_, Infallible>(handle_request(request, &info).await) }
    });

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder
        .serve_connection(TokioIo::new(WriteTimeout::new(io, write_timeout)), service)
        .with_upgrades();
    tokio::pin!(connection);

    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = wait_shutdown(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(GRACEFUL_TIMEOUT, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer_addr, error = %e, "HTTPS connection ended with an error");
    }

    let pending = info
        .upgrade
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some(pending) = pending else { return };
    if *shutdown.borrow() {
        return;
    }
    let upgraded = match pending.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(peer = %peer_addr, error = %e, "WebSocket upgrade failed");
            return;
        }
    };
    let limits = info.context.mqtt_limits;
    // WebSocket framing around the CONNECT costs a few bytes per message; 1 KiB leaves room
    // for a client that splits it into many small messages.
    let budget = limits.max_connect_packet_size.saturating_add(1024);
    let io = ReadBudget::new(
        TokioIo::new(upgraded),
        Arc::clone(&info.unauthenticated),
        budget,
    );
    let ws = WebSocketStream::from_raw_socket(
        io,
        Role::Server,
        Some(websocket_config(limits.max_packet_size)),
    )
    .await;
    let ctx = ConnectionContext {
        handler: Arc::clone(&info.context.mqtt),
        peer_certificates: info.peer_certificates.clone(),
        transport: ListenerTransport::WebSocket,
        peer_addr,
        limits,
        unauthenticated: Arc::clone(&info.unauthenticated),
        shutdown,
    };
    run_connection(WebSocketIo(ws), ctx).await;
}

async fn handle_request(
    mut request: Request<Incoming>,
    info: &ConnectionInfo,
) -> Response<Full<Bytes>> {
    let peer = info.peer_addr;
    if is_websocket_path(request.uri().path()) {
        return match check_upgrade(request.method(), request.version(), request.headers()) {
            Ok(accept) => {
                let pending = hyper::upgrade::on(&mut request);
                *info.upgrade.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
                tracing::debug!(%peer, "WebSocket upgrade for MQTT");
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                *response.headers_mut() = upgrade_headers(accept);
                response
            }
            Err(why) => {
                tracing::debug!(%peer, reason = why, "WebSocket upgrade refused");
                into_hyper(HttpResponse::text(StatusCode::BAD_REQUEST, why))
            }
        };
    }

    if is_websocket_upgrade(request.headers()) {
        // Azure only upgrades on the MQTT path; REST handlers never see upgrade requests.
        tracing::debug!(%peer, path = request.uri().path(), "WebSocket upgrade on another path refused");
        return into_hyper(HttpResponse::text(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrades are only accepted on /$iothub/websocket",
        ));
    }

    let (parts, body) = request.into_parts();
    let mut http_request = HttpRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body: Bytes::new(),
        peer_certificates: info.peer_certificates.clone(),
        peer_addr: peer,
    };
    // Authenticate before reading the body (#11): a client without a valid token cannot make
    // the server read and hold up to the body limit.
    if let Err(refusal) = info.context.http.authorize(&http_request) {
        return close_after(into_hyper(*refusal));
    }
    info.unauthenticated.authenticated();

    let max = info.context.max_body_size;
    let declared = http_request
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return too_large(peer, max);
    }
    let read = tokio::time::timeout(info.context.body_timeout, Limited::new(body, max).collect());
    http_request.body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(peer, max),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "reading a request body failed");
            return into_hyper(HttpResponse::empty(StatusCode::BAD_REQUEST));
        }
        Err(_) => {
            tracing::debug!(%peer, "request body not received in time");
            return close_after(into_hyper(HttpResponse::empty(StatusCode::REQUEST_TIMEOUT)));
        }
    };
    into_hyper(info.context.http.handle(http_request).await)
}

fn too_large(peer: SocketAddr, max: usize) -> Response<Full<Bytes>> {
    tracing::debug!(%peer, max, "request body too large");
    close_after(into_hyper(HttpResponse::empty(
        StatusCode::PAYLOAD_TOO_LARGE,
    )))
}

/// Marks the response as the connection's last: the unread body is still on the wire, so
/// close rather than try to skip it.
fn close_after(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn into_hyper(response: HttpResponse) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(response.body));
    *out.status_mut() = response.status;
    *out.headers_mut() = response.headers;
    out
}
