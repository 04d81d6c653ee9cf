//! Building blocks shared by the transports: endpoint parsing, TCP connect, stage deadlines.

use std::future::Future;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::{TimeoutStage, TransportError};
use crate::resolve::Resolver;

/// An endpoint parsed from [`ConnectOptions::host`](crate::ConnectOptions::host).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Host name or IP address (without brackets): the TCP host and the TLS server name.
    pub host: String,
    /// The port: the one given, or the transport's default.
    pub port: u16,
    /// The path given after the authority (`wss://host/path`), if any.
    pub path: Option<String>,
}

impl Endpoint {
    /// Parses `host`, `host:port`, `[v6]:port` or `scheme://host[:port][/path]`.
    ///
    /// # Errors
    /// [`TransportError::InsecureUrl`] for plaintext schemes (`ws`, `http`, `mqtt`, `tcp`),
    /// [`TransportError::Unsupported`] for unknown schemes, [`TransportError::Dns`] for an empty
    /// host or an invalid port.
    pub fn parse(text: &str, default_port: u16) -> Result<Self, TransportError> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) => {
                match scheme.to_ascii_lowercase().as_str() {
                    "mqtts" | "ssl" | "tls" | "wss" | "https" => {}
                    "ws" | "http" | "mqtt" | "tcp" => {
                        return Err(TransportError::InsecureUrl(text.to_owned()));
                    }
                    _ => return Err(TransportError::Unsupported("unknown url scheme")),
                }
                rest
            }
            None => text,
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(rest[at..].to_owned())),
            None => (rest, None),
        };
        let invalid = |message: &str| TransportError::Dns {
            host: authority.to_owned(),
            message: message.to_owned(),
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '[' in the host"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| invalid("unexpected text after ']'"))?,
                ),
            };
            (host, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host, Some(port)),
                // A bare IPv6 address.
                Some(_) => (authority, None),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("empty host name"));
        }
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("invalid port"))?,
            None => default_port,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.filter(|p| p != "/"),
        })
    }

    /// `host:port`, with brackets around IPv6 addresses (for HTTP `Host` and `CONNECT`).
    #[must_use]
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Opens a TCP connection to `host` at the address `tls` fixes for it
/// ([`TlsConfig::connect_address`](crate::TlsConfig::connect_address)), or else as
/// [`tcp_connect`] does.
///
/// # Errors
/// As [`tcp_connect`].
pub async fn tcp_connect_with(
    tls: &crate::TlsConfig,
    host: &str,
    port: u16,
) -> Result<TcpStream, TransportError> {
    let Some(addr) = tls.address_for(host) else {
        return tcp_connect(host, port).await;
    };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| TransportError::from_io(&e))?;
    let _ = stream.set_nodelay(true);
    tracing::debug!(%addr, host, "tcp connected at the fixed address");
    Ok(stream)
}

/// Resolves `host` (once for all connections to it, see the `resolve` module) and opens a TCP
/// connection to the first address that answers (no Nagle).
///
/// # Errors
/// [`TransportError::Dns`] when resolution fails, [`TransportError::Io`] when no address
/// accepts the connection.
pub async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, TransportError> {
    let resolver = Resolver::global();
    let addrs = resolver.resolve(host, port).await?;
    let mut last = None;
    for addr in addrs.iter() {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                tracing::debug!(%addr, "tcp connected");
                return Ok(stream);
            }
            Err(e) => {
                tracing::debug!(%addr, error = %e, "tcp connect failed");
                last = Some(TransportError::from_io(&e));
            }
        }
    }
    // No address took the connection: the next attempt asks the resolver again (the host
    // may have moved).
    resolver.forget(host, port);
    Err(last.unwrap_or_else(|| TransportError::Dns {
        host: host.to_owned(),
        message: "no addresses".into(),
    }))
}

/// Runs `stage` of a connection until `deadline`; past it, fails with
/// [`TransportError::Timeout`] naming the stage.
///
/// A combinator, not an `async fn`: an `async fn` would keep `work` twice, as its argument
/// and as what it awaits, and a connection attempt's stages are most of a device's memory
/// while thousands connect at once (#16).
///
/// # Errors
/// The stage's error, or the timeout.
pub fn within<T, F>(
    deadline: Instant,
    stage: TimeoutStage,
    work: F,
) -> impl Future<Output = Result<T, TransportError>> + use<T, F>
where
    F: Future<Output = Result<T, TransportError>>,
{
    use futures_util::FutureExt as _;
    tokio::time::timeout_at(deadline, work)
        .map(move |outcome| outcome.unwrap_or(Err(TransportError::Timeout { stage })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(String, u16, Option<String>), TransportError> {
        Endpoint::parse(text, 8883).map(|e| (e.host, e.port, e.path))
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse("h.example").unwrap(),
            ("h.example".into(), 8883, None)
        );
        assert_eq!(parse("h:1234").unwrap(), ("h".into(), 1234, None));
        assert_eq!(parse("[::1]:99").unwrap(), ("::1".into(), 99, None));
        assert_eq!(parse("::1").unwrap(), ("::1".into(), 8883, None));
        assert_eq!(
            parse("wss://h:443/$iothub/websocket").unwrap(),
            ("h".into(), 443, Some("/$iothub/websocket".into()))
        );
        assert_eq!(parse("mqtts://h/").unwrap(), ("h".into(), 8883, None));
        for insecure in ["ws://h/x", "http://h", "mqtt://h:1883", "TCP://h"] {
            assert!(matches!(
                parse(insecure),
                Err(TransportError::InsecureUrl(_))
            ));
        }
        assert!(matches!(
            parse("gopher://h"),
            Err(TransportError::Unsupported(_))
        ));
        for bad in ["", ":80", "h:0", "h:x", "h:70000", "[::1", "[::1]x"] {
            assert!(
                matches!(parse(bad), Err(TransportError::Dns { .. })),
                "{bad}"
            );
        }
        let e = Endpoint::parse("[::1]:5", 1).unwrap();
        assert_eq!(e.authority(), "[::1]:5");
    }
}
