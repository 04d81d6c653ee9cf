//! HTTP `CONNECT` tunnels through a proxy.

use std::fmt;

use base64::Engine as _;
use dps_transport_mqtt::TransportError;
use dps_transport_mqtt::net::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use zeroize::Zeroizing;

/// The largest proxy response head accepted.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// An HTTP proxy reached with `CONNECT` (the TLS session to the service runs inside the tunnel,
/// so the proxy sees only encrypted bytes).
///
/// The URL is `http://host[:port]` (port 80 by default; a bare `host:port` works too).
/// Credentials for `Proxy-Authorization: Basic` are set with
/// [`with_basic_auth`](Self::with_basic_auth) or given in the URL (`http://user:pass@host:port`).
/// `Debug` never shows them.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The proxy URL.
    pub url: String,
    credentials: Option<(String, Zeroizing<String>)>,
}

impl ProxyConfig {
    /// A proxy without authentication.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials: None,
        }
    }

    /// Authenticates to the proxy with HTTP basic authentication.
    #[must_use]
    pub fn with_basic_auth(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((username.into(), Zeroizing::new(password.into())));
        self
    }

    /// Whether basic-authentication credentials are set (here or in the URL).
    #[must_use]
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some() || self.parse().is_ok_and(|p| p.userinfo.is_some())
    }

    fn parse(&self) -> Result<ParsedProxy<'_>, TransportError> {
        let url = self.url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(TransportError::Unsupported("https proxies"));
            }
            Some(_) => return Err(TransportError::Unsupported("proxy url scheme")),
            None => url,
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        Ok(ParsedProxy {
            userinfo,
            endpoint: Endpoint::parse(hostport, 80)?,
        })
    }

    /// The `Proxy-Authorization` value, if credentials are set.
    fn authorization(&self, userinfo: Option<&str>) -> Option<Zeroizing<String>> {
        let plain = match (&self.credentials, userinfo) {
            (Some((user, password)), _) => Zeroizing::new(format!("{user}:{}", password.as_str())),
            (None, Some(userinfo)) => Zeroizing::new(userinfo.to_owned()),
            (None, None) => return None,
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
        Some(Zeroizing::new(format!("Basic {encoded}")))
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self.parse() {
            Ok(parsed) => parsed.endpoint.authority(),
            Err(_) => "<invalid>".to_owned(),
        };
        f.debug_struct("ProxyConfig")
            .field("proxy", &shown)
            .field(
                "credentials",
                &if self.has_credentials() {
                    "<redacted>"
                } else {
                    "none"
                },
            )
            .finish()
    }
}

struct ParsedProxy<'a> {
    userinfo: Option<&'a str>,
    endpoint: Endpoint,
}

impl ProxyConfig {
    /// The proxy's host and port.
    ///
    /// # Errors
    /// [`TransportError::Unsupported`] for an `https://` or unknown scheme,
    /// [`TransportError::Dns`] for an empty host or a bad port.
    pub fn endpoint(&self) -> Result<Endpoint, TransportError> {
        self.parse().map(|p| p.endpoint)
    }

    /// Asks the proxy (over `stream`, a connection to [`endpoint`](Self::endpoint)) for a
    /// tunnel to `target`; on success the stream carries the tunnel, ready for TLS. Other
    /// HTTPS clients of the workspace (file upload) reach their hosts through it too.
    ///
    /// # Errors
    /// [`TransportError::Proxy`] with the status when the proxy refuses,
    /// [`TransportError::ProtocolError`] for a malformed answer, I/O errors.
    pub async fn open_tunnel<S>(
        &self,
        stream: &mut S,
        target: &Endpoint,
    ) -> Result<(), TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let parsed = self.parse()?;
        let authority = target.authority();
        let mut request = Zeroizing::new(format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        ));
        if let Some(authorization) = self.authorization(parsed.userinfo) {
            request.push_str("Proxy-Authorization: ");
            request.push_str(&authorization);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        stream.flush().await?;

        let head = read_head(stream).await?;
        let status = parse_status(&head)?;
        if (200..300).contains(&status) {
            tracing::debug!(proxy = %parsed.endpoint.authority(), target = %authority, "proxy tunnel open");
            Ok(())
        } else {
            tracing::debug!(proxy = %parsed.endpoint.authority(), status, "proxy refused the tunnel");
            Err(TransportError::Proxy { status })
        }
    }
}

/// Reads the response head, one byte at a time so nothing of the tunnel is consumed.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, TransportError> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(TransportError::ProtocolError(
                "proxy response head is too long".into(),
            ));
        }
        let byte = stream.read_u8().await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                TransportError::ConnectionClosed
            } else {
                TransportError::from(e)
            }
        })?;
        head.push(byte);
    }
    Ok(head)
}

/// The status code of `HTTP/1.x NNN reason`.
fn parse_status(head: &[u8]) -> Result<u16, TransportError> {
    let malformed = || TransportError::ProtocolError("malformed proxy response".into());
    let line = head.split(|b| *b == b'\n').next().ok_or_else(malformed)?;
    let line = std::str::from_utf8(line).map_err(|_| malformed())?;
    let mut parts = line.split_whitespace();
    let version = parts.next().ok_or_else(malformed)?;
    if !version.starts_with("HTTP/1.") {
        return Err(malformed());
    }
    parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..1000).contains(code))
        .ok_or_else(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_redaction() {
        let proxy = ProxyConfig::new("http://proxy.local:3128").with_basic_auth("alice", "s3cret");
        assert_eq!(proxy.endpoint().unwrap().authority(), "proxy.local:3128");
        let debug = format!("{proxy:?}");
        assert!(
            !debug.contains("alice") && !debug.contains("s3cret"),
            "{debug}"
        );
        assert!(debug.contains("<redacted>"));
        assert_eq!(
            proxy.authorization(None).unwrap().as_str(),
            "Basic YWxpY2U6czNjcmV0"
        );

        let inline = ProxyConfig::new("http://bob:pw@10.0.0.1:8080/");
        assert!(inline.has_credentials());
        assert!(!format!("{inline:?}").contains("pw"));
        assert_eq!(inline.endpoint().unwrap().authority(), "10.0.0.1:8080");
        let parsed = inline.parse().unwrap();
        assert_eq!(
            inline.authorization(parsed.userinfo).unwrap().as_str(),
            "Basic Ym9iOnB3"
        );

        assert_eq!(ProxyConfig::new("proxy").endpoint().unwrap().port, 80);
        assert!(matches!(
            ProxyConfig::new("https://p:443").endpoint(),
            Err(TransportError::Unsupported(_))
        ));
        assert!(matches!(
            ProxyConfig::new("socks5://p:1080").endpoint(),
            Err(TransportError::Unsupported(_))
        ));
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap(),
            200
        );
        assert_eq!(parse_status(b"HTTP/1.0 407 Auth\r\n\r\n").unwrap(), 407);
        for bad in [
            &b"SSH-2.0\r\n\r\n"[..],
            b"HTTP/1.1 abc\r\n\r\n",
            b"\xff\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(
                parse_status(bad),
                Err(TransportError::ProtocolError(_))
            ));
        }
    }
}
