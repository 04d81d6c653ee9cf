//! The listeners: MQTT over TLS on the MQTT port, HTTPS (REST + MQTT over WebSocket) on the
//! HTTPS port. Each accepted connection runs as one task; shutdown stops accepting, tells every
//! connection to close, and waits (bounded) for them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::gate::{Admission, Gate};
use super::http::HttpHandler;
use super::https_server::{HttpsContext, serve_https};
use super::mqtt::{ListenerTransport, MqttHandler};
use super::mqtt_connection::{ConnectionContext, MqttLimits, run_connection};
use super::packet_io::StreamIo;
use super::wait_shutdown;

/// Default limit on an incoming MQTT packet's remaining length: 256 KiB (IoT Hub's largest
/// message) plus 1 KiB for the topic and header fields.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 256 * 1024 + 1024;
/// Default limit on an HTTP request body (larger bodies get 413).
pub const DEFAULT_MAX_HTTP_BODY_SIZE: usize = 4 * 1024 * 1024;
/// Default time allowed for the TLS handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After shutdown is signalled, connections get this long to close before they are aborted.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How to start [`Servers`]. Build it with [`ServerOptions::new`] and adjust the public fields.
#[derive(Clone)]
pub struct ServerOptions {
    /// Address to bind both listeners to (default 127.0.0.1).
    pub bind: IpAddr,
    /// MQTT-over-TLS port (production 8883; 0 = any free port, the default).
    pub mqtt_port: u16,
    /// HTTPS port for REST and MQTT over WebSocket (production 443; 0 = any free port, the
    /// default).
    pub https_port: u16,
    /// The TLS configuration, normally [`crate::tls::TlsMaterial::server_config`].
    pub tls: Arc<ServerConfig>,
    /// Accepts MQTT connections from both listeners.
    pub mqtt: Arc<dyn MqttHandler>,
    /// Answers HTTPS requests other than WebSocket upgrades.
    pub http: Arc<dyn HttpHandler>,
    /// Largest accepted remaining length of an incoming MQTT packet; larger closes the connection.
    pub max_packet_size: usize,
    /// Largest accepted HTTP request body; larger gets 413.
    pub max_http_body_size: usize,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed between the TLS handshake (or WebSocket upgrade) and a complete CONNECT.
    pub mqtt_connect_timeout: Duration,
    /// Time allowed for writing one MQTT packet before the client is considered gone.
    pub mqtt_write_timeout: Duration,
    /// Largest first packet (CONNECT) read before authentication; larger closes the connection.
    pub mqtt_max_connect_packet_size: usize,
    /// Silence after which a connection with keep-alive 0 is closed.
    pub mqtt_idle_timeout: Duration,
    /// Open connections on both listeners together; beyond, new ones are closed at once.
    pub max_connections: usize,
    /// Connections not authenticated yet; beyond, new ones are closed at once.
    pub max_unauthenticated_connections: usize,
    /// Time allowed for an HTTP request's headers.
    pub http_header_timeout: Duration,
    /// Time allowed for an HTTP request's body.
    pub http_body_timeout: Duration,
    /// Time an HTTPS write may stall (a client that does not read) before the connection is
    /// closed.
    pub http_write_timeout: Duration,
}

impl ServerOptions {
    /// Options with the defaults: 127.0.0.1, ephemeral ports, the default limits and timeouts.
    pub fn new(
        tls: Arc<ServerConfig>,
        mqtt: Arc<dyn MqttHandler>,
        http: Arc<dyn HttpHandler>,
    ) -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mqtt_port: 0,
            https_port: 0,
            tls,
            mqtt,
            http,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_http_body_size: DEFAULT_MAX_HTTP_BODY_SIZE,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            mqtt_connect_timeout: Duration::from_secs(30),
            mqtt_write_timeout: Duration::from_secs(30),
            mqtt_max_connect_packet_size: 16 * 1024,
            mqtt_idle_timeout: Duration::from_secs(1800),
            max_connections: 50_000,
            max_unauthenticated_connections: 10_000,
            http_header_timeout: Duration::from_secs(30),
            http_body_timeout: Duration::from_secs(30),
            http_write_timeout: Duration::from_secs(30),
        }
    }
}

/// The running listeners. Dropping it signals shutdown without waiting; prefer
/// [`Servers::shutdown`].
#[derive(Debug)]
pub struct Servers {
    mqtt_addr: SocketAddr,
    https_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Which protocol a listener speaks after TLS.
#[derive(Clone, Copy, Debug)]
enum Service {
    Mqtt,
    Https,
}

/// What every connection of a listener shares.
struct ListenerContext {
    service: Service,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    mqtt: Arc<dyn MqttHandler>,
    mqtt_limits: MqttLimits,
    https: Arc<HttpsContext>,
    gate: Arc<Gate>,
}

/// Binds one listener; a failure names the address, what it was for and how to pick another
/// port (#15: "Address already in use" alone does not say which of the two ports is taken).
fn bind(ip: IpAddr, port: u16, what: &str, flag: &str) -> io::Result<TcpListener> {
    listen(SocketAddr::new(ip, port)).map_err(|e| {
        let addr = SocketAddr::new(ip, port);
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => {
                format!(" (another program listens there; choose another port with {flag})")
            }
            io::ErrorKind::PermissionDenied => format!(
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or choose another \
                 port with {flag})"
            ),
            _ => String::new(),
        };
        io::Error::new(e.kind(), format!("{what} port {addr}: {e}{hint}"))
    })
}

/// A listening socket with room for a fleet's connections arriving at once: tokio's `bind`
/// queues at most 1,024 of them, and the connections past that wait for a retransmitted SYN
/// (one second each), which is all a burst of a thousand devices measures otherwise.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // The kernel caps it at net.core.somaxconn.
    socket.listen(LISTEN_BACKLOG)
}

/// The accept queue asked for (see [`listen`]).
const LISTEN_BACKLOG: u32 = 8192;

impl Servers {
    /// Binds both listeners and starts accepting. Fails if a port cannot be bound.
    pub async fn start(options: ServerOptions) -> io::Result<Self> {
        let mqtt_listener = bind(options.bind, options.mqtt_port, "MQTT", "--mqtt-port")?;
        let https_listener = bind(options.bind, options.https_port, "HTTPS", "--https-port")?;
        let mqtt_addr = mqtt_listener.local_addr()?;
        let https_addr = https_listener.local_addr()?;

        let acceptor = TlsAcceptor::from(Arc::clone(&options.tls));
        let mqtt_limits = MqttLimits {
            max_packet_size: options.max_packet_size,
            connect_timeout: options.mqtt_connect_timeout,
            write_timeout: options.mqtt_write_timeout,
            max_connect_packet_size: options.mqtt_max_connect_packet_size,
            idle_timeout: options.mqtt_idle_timeout,
        };
        let gate = Arc::new(Gate::new(
            options.max_connections,
            options.max_unauthenticated_connections,
        ));
        let https = Arc::new(HttpsContext {
            http: Arc::clone(&options.http),
            mqtt: Arc::clone(&options.mqtt),
            mqtt_limits,
            max_body_size: options.max_http_body_size,
            header_timeout: options.http_header_timeout,
            body_timeout: options.http_body_timeout,
            write_timeout: options.http_write_timeout,
        });
        let context = |service| {
            Arc::new(ListenerContext {
                service,
                acceptor: acceptor.clone(),
                handshake_timeout: options.tls_handshake_timeout,
                mqtt: Arc::clone(&options.mqtt),
                mqtt_limits,
                https: Arc::clone(&https),
                gate: Arc::clone(&gate),
            })
        };

        let (shutdown, _) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(accept_loop(
                mqtt_listener,
                context(Service::Mqtt),
                shutdown.subscribe(),
            )),
            tokio::spawn(accept_loop(
                https_listener,
                context(Service::Https),
                shutdown.subscribe(),
            )),
        ];
        tracing::info!(%mqtt_addr, %https_addr, "listening");
        Ok(Self {
            mqtt_addr,
            https_addr,
            shutdown,
            tasks,
        })
    }

    /// The bound MQTT-over-TLS address (with the actual port when 0 was asked for).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    /// The bound HTTPS address (with the actual port when 0 was asked for).
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Stops accepting, closes every connection (sessions get [`super::CloseReason::Shutdown`]),
    /// and waits for them (at most a few seconds before aborting stragglers).
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a listener task failed");
            }
        }
        tracing::info!("servers stopped");
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    context: Arc<ListenerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = wait_shutdown(&mut shutdown) => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a connection task panicked");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Over a cap: closed before any TLS work (the gate logs it).
                    let Some(admission) = context.gate.admit() else {
                        drop(tcp);
                        continue;
                    };
                    // MQTT acknowledgements are tiny; do not let Nagle hold them back.
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(serve_connection(tcp, peer, admission, Arc::clone(&context), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, service = ?context.service, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!(service = ?context.service, "connections did not close in time; aborting them");
        connections.shutdown().await;
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    // Held until the connection ends: it counts against the open-connection cap.
    admission: Admission,
    context: Arc<ListenerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(context.handshake_timeout, context.acceptor.accept(tcp));
    let tls: TlsStream<TcpStream> = tokio::select! {
        () = wait_shutdown(&mut shutdown) => return,
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        }
    };
    let (_, session) = tls.get_ref();
    let peer_certificates: Vec<CertificateDer<'static>> = session
        .peer_certificates()
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    tracing::trace!(
        %peer,
        version = ?session.protocol_version(),
        suite = ?session.negotiated_cipher_suite().map(|s| s.suite()),
        client_certificates = peer_certificates.len(),
        "TLS established"
    );

    match context.service {
        Service::Mqtt => {
            let ctx = ConnectionContext {
                handler: Arc::clone(&context.mqtt),
                peer_certificates,
                transport: ListenerTransport::Tcp,
                peer_addr: peer,
                limits: context.mqtt_limits,
                unauthenticated: Arc::clone(&admission.unauthenticated),
                shutdown,
            };
            run_connection(StreamIo(tls), ctx).await;
        }
        Service::Https => {
            serve_https(
                tls,
                peer,
                peer_certificates,
                Arc::clone(&admission.unauthenticated),
                Arc::clone(&context.https),
                shutdown,
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_named_with_the_flag_that_moves_it() {
        let first = bind(IpAddr::from([127, 0, 0, 1]), 0, "MQTT", "--mqtt-port").unwrap();
        let port = first.local_addr().unwrap().port();
        let error = bind(IpAddr::from([127, 0, 0, 1]), port, "MQTT", "--mqtt-port").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("MQTT port 127.0.0.1:{port}: ")),
            "{text}"
        );
        assert!(text.contains("--mqtt-port"), "{text}");
        // The listener still takes connections.
        let (accepted, connected) = tokio::join!(
            first.accept(),
            tokio::net::TcpStream::connect(("127.0.0.1", port))
        );
        accepted.unwrap();
        connected.unwrap();
    }
}
