//! Calls to the DPS and IoT Hub service REST APIs for `dps enroll` and `dps registry`:
//! connection strings, SAS tokens minted from them, and one HTTPS request per call.
//!
//! The token is minted as the official service SDKs do (`sr` = the host name, `skn` = the
//! policy, one hour), so the same command works against Azure and against the emulator (whose
//! printed connection strings carry `HostName=localhost:PORT` when the port is not 443).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dps_auth::{SasResource, SasStyle, SymmetricKey, Zeroizing, generate_sas};
use dps_client::TlsConfig;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::secret_argument;
use crate::exit::{CliError, ExitCode};

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a minted token is valid.
const TOKEN_LIFETIME: u64 = 3600;

/// A parsed service connection string
/// (`HostName=..;SharedAccessKeyName=..;SharedAccessKey=..`).
pub(super) struct ServiceConnection {
    host: String,
    key_name: String,
    key: SymmetricKey,
    tls: TlsConfig,
}

impl ServiceConnection {
    /// Parses `value` (`-` reads standard input); `ca_file` adds a trusted root (PEM).
    pub(super) fn new(
        value: &str,
        option: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, CliError> {
        let text = secret_argument(value, option)?;
        let field = |name: &str| {
            text.trim()
                .split(';')
                .filter_map(|part| part.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let missing = |name: &str| {
            CliError::invalid_input(format_args!(
                "{option} has no {name} (expected HostName=..;SharedAccessKeyName=..;SharedAccessKey=..)"
            ))
        };
        let host = field("HostName").ok_or_else(|| missing("HostName"))?;
        let key_name =
            field("SharedAccessKeyName").ok_or_else(|| missing("SharedAccessKeyName"))?;
        let key_text =
            Zeroizing::new(field("SharedAccessKey").ok_or_else(|| missing("SharedAccessKey"))?);
        let key = SymmetricKey::from_base64(&key_text)
            .map_err(|e| super::bad_key(&format!("the SharedAccessKey of {option}"), e))?;
        let mut tls = TlsConfig::default();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::invalid_input(format_args!(
                    "cannot read --ca-file {}: {e}",
                    path.display()
                ))
            })?;
            tls = tls.add_root_pem(&pem).map_err(|e| {
                CliError::invalid_input(format_args!("--ca-file {}: {e}", path.display()))
            })?;
        }
        Ok(Self {
            host,
            key_name,
            key,
            tls,
        })
    }

    /// A SAS token for the whole service, valid for an hour.
    fn token(&self) -> Result<String, CliError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = self.host.split(':').next().unwrap_or_default();
        let style = SasStyle::hub().with_key_name(self.key_name.clone());
        let token = generate_sas(
            &self.key,
            &SasResource::custom(host),
            &style,
            now + TOKEN_LIFETIME,
        )
        .map_err(|e| CliError::failure(format_args!("cannot sign the token: {e}")))?;
        Ok(token.expose().to_owned())
    }

    /// Sends one request; the JSON body of a 2xx answer (`Null` for none), or an error naming
    /// the service's status and message.
    pub(super) async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Value, CliError> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.call_once(method, path_and_query, body, if_match),
        )
        .await
        .map_err(|_| {
            CliError::new(
                ExitCode::Timeout,
                format_args!("{} did not answer in time", self.host),
            )
        })?
    }

    async fn call_once(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Value, CliError> {
        let transport = |what: &str, e: &dyn std::fmt::Display| {
            CliError::new(
                ExitCode::Transport,
                format_args!("{what} {}: {e}", self.host),
            )
        };
        let (name, port) = match self.host.rsplit_once(':') {
            Some((name, port)) => (
                name,
                port.parse::<u16>().map_err(|_| {
                    CliError::invalid_input(format_args!("bad port in HostName {}", self.host))
                })?,
            ),
            None => (self.host.as_str(), 443),
        };
        let config = self
            .tls
            .client_config(None)
            .map_err(|e| transport("TLS configuration for", &e))?;
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| CliError::invalid_input(format_args!("HostName {name}: {e}")))?;
        let tcp = TcpStream::connect((name, port))
            .await
            .map_err(|e| transport("cannot connect to", &e))?;
        let tls = TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| transport("TLS handshake with", &e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| transport("HTTP with", &e))?;
        tokio::spawn(connection);

        let bytes = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| CliError::failure(format_args!("cannot encode the request: {e}")))?,
            None => Vec::new(),
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, self.host.as_str())
            .header(http::header::AUTHORIZATION, self.token()?)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(http::header::CONTENT_LENGTH, bytes.len());
        if let Some(etag) = if_match {
            request = request.header(http::header::IF_MATCH, etag);
        }
        let request = request.body(Full::new(Bytes::from(bytes))).map_err(|e| {
            CliError::invalid_input(format_args!("bad request {path_and_query}: {e}"))
        })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport("request to", &e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transport("reading the answer of", &e))?
            .to_bytes();
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        if status.is_success() {
            return Ok(json);
        }
        let message = json
            .get("Message")
            .or_else(|| json.get("message"))
            .and_then(Value::as_str)
            .map_or_else(|| json.to_string(), str::to_owned);
        let code = match status.as_u16() {
            401 | 403 => ExitCode::Unauthorized,
            400..=499 => ExitCode::Rejected,
            _ => ExitCode::Failed,
        };
        Err(CliError::new(
            code,
            format_args!(
                "{method} {} answered {status}: {message}",
                path_only(path_and_query)
            ),
        ))
    }
}

/// The path without its query (which carries nothing secret, but is noise in a message).
fn path_only(path_and_query: &str) -> &str {
    path_and_query.split('?').next().unwrap_or(path_and_query)
}

/// Percent-encodes an id for a path segment (ids may hold `:`, `@`, `$`, ...).
pub(super) fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Runs `future` on a fresh single-threaded runtime.
pub(super) fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format_args!("cannot start the async runtime: {e}")))?
        .block_on(future)
}
