//! The one task per client: performs what the session asks on a real connection and feeds back
//! what happens.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dps_auth::{Authenticator, Credentials, SasResource};
use dps_transport_mqtt::os::unix_now;
use dps_transport_mqtt::{
    CloseReason, ConnectOptions, Incoming, MqttConnection, MqttSender, QoS, TlsConfig, Transport,
    TransportError,
};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use crate::proto::{self, ConnectFailure, ConnectionLoss, PublishId, Transmit};
use crate::shared::{Failure, Shared};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// A connection attempt, and the expiry of the credentials it presents.
type Attempt = (
    BoxFuture<Result<MqttConnection, TransportError>>,
    Option<u64>,
);

/// How to open a connection.
pub(crate) struct Link {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) resource: SasResource,
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) keep_alive: Duration,
    pub(crate) tls: TlsConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) subscribe_timeout: Duration,
}

impl Link {
    fn options(&self, credentials: Credentials) -> ConnectOptions {
        let mut options = ConnectOptions::new(
            self.endpoint.clone(),
            self.client_id.clone(),
            self.username.clone(),
            credentials,
        );
        options.keep_alive = self.keep_alive;
        // The hub keeps cloud-to-device messages (and subscriptions) for a persistent session.
        options.clean_session = false;
        options.connect_timeout = self.connect_timeout;
        options.subscribe_timeout = self.subscribe_timeout;
        options.tls = self.tls.clone();
        options
    }
}

/// What woke the driver.
enum Wake {
    Notified,
    Timeout,
    Connected(Result<MqttConnection, TransportError>),
    Subscribed(bool),
    Published(PublishId, Result<(), TransportError>),
    Incoming(Option<Incoming>),
}

/// The live connection and the operations running on it.
#[derive(Default)]
struct Conn {
    connection: Option<MqttConnection>,
    sender: Option<MqttSender>,
    connecting: Option<Attempt>,
    subscribing: Option<BoxFuture<bool>>,
    publishes: FuturesUnordered<BoxFuture<(PublishId, Result<(), TransportError>)>>,
}

impl Conn {
    /// Forgets the connection and everything running on it; returns the connection to close.
    fn reset(&mut self) -> Option<MqttConnection> {
        self.sender = None;
        self.connecting = None;
        self.subscribing = None;
        self.publishes = FuturesUnordered::new();
        self.connection.take()
    }
}

pub(crate) async fn run(shared: Arc<Shared>, link: Link) {
    let mut conn = Conn::default();
    loop {
        let drained = shared.drain();
        let acted = !drained.transmits.is_empty();
        for transmit in drained.transmits {
            perform(&shared, &link, &mut conn, transmit, drained.stopped).await;
        }
        if acted {
            // Performing may have fed the session (a failed credential); drain again first.
            continue;
        }
        if drained.stopped {
            break;
        }
        let deadline = drained
            .timeout
            .map(|t| tokio::time::Instant::from_std(shared.instant(t)));
        let wake = tokio::select! {
            () = shared.wake.notified() => Wake::Notified,
            () = sleep(deadline) => Wake::Timeout,
            result = connecting(&mut conn.connecting) => Wake::Connected(result),
            granted = maybe(&mut conn.subscribing) => Wake::Subscribed(granted),
            Some((id, result)) = conn.publishes.next(), if !conn.publishes.is_empty() => {
                Wake::Published(id, result)
            }
            incoming = recv(&mut conn.connection) => Wake::Incoming(incoming),
        };
        handle(&shared, &mut conn, wake);
    }
    if let Some(connection) = conn.reset() {
        connection.disconnect().await;
    }
    shared.finish();
}

async fn perform(shared: &Shared, link: &Link, conn: &mut Conn, transmit: Transmit, stopped: bool) {
    match transmit {
        Transmit::Connect => {
            if let Some(old) = conn.reset() {
                old.disconnect().await;
            }
            // Fresh credentials for every connection: a token never outlives a reconnect.
            match link.authenticator.credentials(&link.resource, unix_now()) {
                Ok(credentials) => {
                    let expiry = credentials.expiry_unix();
                    let options = link.options(credentials);
                    let transport = Arc::clone(&link.transport);
                    tracing::debug!(endpoint = %link.endpoint, transport = transport.name(), "connecting");
                    conn.connecting = Some((
                        Box::pin(async move { transport.connect(&options).await }),
                        expiry,
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot produce credentials");
                    let failure = if error.is_retriable() {
                        ConnectFailure::Network
                    } else {
                        ConnectFailure::Unrecoverable
                    };
                    shared.update(|inner, now| {
                        inner.last_failure = Some(Failure::Credentials(error));
                        inner.session.handle_connect_failed(now, failure);
                    });
                }
            }
        }
        Transmit::Subscribe { filters } => {
            let Some(sender) = conn.sender.clone() else {
                return;
            };
            conn.subscribing = Some(Box::pin(async move {
                let filters: Vec<(&str, QoS)> = filters
                    .iter()
                    .map(|f| (f.as_str(), QoS::AtLeastOnce))
                    .collect();
                match sender.subscribe(&filters).await {
                    Ok(granted) => granted.iter().all(Option::is_some),
                    Err(error) => {
                        tracing::debug!(%error, "subscribe failed");
                        false
                    }
                }
            }));
        }
        Transmit::Publish {
            id,
            topic,
            payload,
            qos,
        } => {
            let qos = match qos {
                proto::QoS::AtMostOnce => QoS::AtMostOnce,
                proto::QoS::AtLeastOnce => QoS::AtLeastOnce,
            };
            let sender = conn.sender.clone();
            conn.publishes
                .push(Box::pin(publish(sender, id, topic, payload, qos)));
        }
        Transmit::Disconnect => {
            if let Some(connection) = conn.reset() {
                if stopped {
                    connection.disconnect().await;
                } else {
                    // Let the session task send DISCONNECT on its own; reconnecting is urgent.
                    drop(connection);
                }
            }
        }
    }
}

async fn publish(
    sender: Option<MqttSender>,
    id: PublishId,
    topic: String,
    payload: Bytes,
    qos: QoS,
) -> (PublishId, Result<(), TransportError>) {
    match sender {
        Some(sender) => (id, sender.publish(&topic, payload, qos).await),
        None => (id, Err(TransportError::ConnectionClosed)),
    }
}

fn handle(shared: &Shared, conn: &mut Conn, wake: Wake) {
    match wake {
        Wake::Notified => {}
        Wake::Timeout => shared.update(|inner, now| inner.session.handle_timeout(now)),
        Wake::Connected(result) => {
            let expiry = conn.connecting.take().and_then(|(_, expiry)| expiry);
            match result {
                Ok(connection) => {
                    let session_present = connection.session_present();
                    tracing::debug!(session_present, "connack");
                    conn.sender = Some(connection.sender());
                    conn.connection = Some(connection);
                    shared.update(|inner, now| {
                        inner.last_failure = None;
                        // Rounded up: the token was minted with the time rounded down, so
                        // the renewal errs on the early side.
                        inner.session.handle_connected(
                            now,
                            session_present,
                            expiry,
                            unix_now() + 1,
                        );
                    });
                }
                Err(error) => {
                    let failure = match &error {
                        TransportError::Refused { code } => ConnectFailure::Refused { code: *code },
                        e if e.is_retriable() => ConnectFailure::Network,
                        _ => ConnectFailure::Unrecoverable,
                    };
                    match failure {
                        ConnectFailure::Network => {
                            tracing::info!(%error, "connection attempt failed")
                        }
                        _ => tracing::warn!(%error, "connection refused or unusable"),
                    }
                    shared.update(|inner, now| {
                        inner.last_failure = Some(Failure::Transport(error));
                        inner.session.handle_connect_failed(now, failure);
                    });
                }
            }
        }
        Wake::Subscribed(granted) => {
            conn.subscribing = None;
            if granted {
                shared.update(|inner, now| inner.session.handle_subscribed(now));
            } else {
                tracing::info!("subscription failed: reconnecting");
                drop(conn.reset());
                shared.update(|inner, now| {
                    inner
                        .session
                        .handle_disconnected(now, ConnectionLoss::Network);
                });
            }
        }
        Wake::Published(id, result) => match result {
            Ok(()) => shared.update(|inner, now| inner.session.handle_published(now, id)),
            Err(error) => {
                tracing::debug!(%error, "publish failed");
                drop(conn.reset());
                shared.update(|inner, now| inner.session.handle_publish_failed(now, id));
            }
        },
        Wake::Incoming(Some(Incoming::Publish {
            topic,
            payload,
            packet_id,
            ..
        })) => {
            if let (Some(packet_id), Some(sender)) = (packet_id, &conn.sender) {
                let _ = sender.ack(packet_id);
            }
            shared.update(|inner, now| inner.session.handle_message(now, &topic, &payload));
        }
        Wake::Incoming(Some(_)) => {}
        Wake::Incoming(None) => {
            let reason = conn
                .connection
                .as_ref()
                .and_then(MqttConnection::close_reason);
            tracing::info!(reason = ?reason, "connection lost");
            let loss = match reason {
                Some(CloseReason::ClosedByPeer) => ConnectionLoss::ClosedByService,
                _ => ConnectionLoss::Network,
            };
            drop(conn.reset());
            shared.update(|inner, now| inner.session.handle_disconnected(now, loss));
        }
    }
}

async fn sleep(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn maybe<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn connecting(attempt: &mut Option<Attempt>) -> Result<MqttConnection, TransportError> {
    match attempt {
        Some((f, _)) => f.await,
        None => std::future::pending().await,
    }
}

async fn recv(connection: &mut Option<MqttConnection>) -> Option<Incoming> {
    match connection {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}
