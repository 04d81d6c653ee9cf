//! A generic MQTT server on the emulator's frame (real TLS and WebSocket listeners) that echoes
//! publishes and reports what happens to each session.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dps_emulator::testing::{
    Close, CloseReason, ConnectRequest, ConnectReturnCode, HttpHandler, HttpRequest, HttpResponse,
    MqttHandler, MqttSession, Outbox, PublishQoS as QoS, ServerOptions, Servers, SubscribeOutcome,
    TlsMaterial,
};
use tempfile::TempDir;
use tokio::sync::mpsc;

use super::STEP;

/// What the echo server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A client connected (its client id).
    Connected(String),
    /// A client acknowledged the server's QoS 1 publish (client id, packet id).
    PubAck(String, u16),
    /// A session ended (client id, why).
    Closed(String, CloseReason),
}

/// Echoes each publish on `echo/{topic}` with the same QoS. Topic `close-me` closes the
/// connection (no PUBACK); topic `big` is answered on `echo/big` with [`BIG_PAYLOAD`] bytes,
/// over the client's 1 MiB packet limit; filters starting with `forbidden` are refused; filters starting
/// with `slow` are never answered (the session stalls).
/// The payload size of the answer to topic `big`: past the client's 1 MiB packet limit.
pub const BIG_PAYLOAD: usize = (1 << 20) + 1;

struct EchoHandler {
    events: mpsc::UnboundedSender<Event>,
}

struct EchoSession {
    client_id: String,
    outbox: Outbox,
    events: mpsc::UnboundedSender<Event>,
}

#[async_trait]
impl MqttHandler for EchoHandler {
    async fn connect(
        &self,
        request: ConnectRequest,
        outbox: Outbox,
    ) -> Result<Box<dyn MqttSession>, ConnectReturnCode> {
        let client_id = request.client_id.clone();
        let _ = self.events.send(Event::Connected(client_id.clone()));
        Ok(Box::new(EchoSession {
            client_id,
            outbox,
            events: self.events.clone(),
        }))
    }
}

#[async_trait]
impl MqttSession for EchoSession {
    async fn subscribe(
        &mut self,
        filters: Vec<(String, QoS)>,
    ) -> Result<Vec<SubscribeOutcome>, Close> {
        if filters.iter().any(|(f, _)| f.starts_with("slow")) {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(filters
            .into_iter()
            .map(|(filter, qos)| {
                if filter.starts_with("forbidden") {
                    SubscribeOutcome::Failure
                } else {
                    SubscribeOutcome::Granted(qos)
                }
            })
            .collect())
    }

    async fn unsubscribe(&mut self, _filters: Vec<String>) -> Result<(), Close> {
        Ok(())
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: Bytes,
        qos: QoS,
        _retain: bool,
    ) -> Result<(), Close> {
        if topic == "close-me" {
            return Err(Close);
        }
        if topic == "big" {
            let big = Bytes::from(vec![b'x'; BIG_PAYLOAD]);
            return self
                .outbox
                .publish("echo/big".to_owned(), big, qos)
                .map(drop)
                .map_err(|_| Close);
        }
        self.outbox
            .publish(format!("echo/{topic}"), payload, qos)
            .map(drop)
            .map_err(|_| Close)
    }

    async fn puback(&mut self, pkid: u16) {
        let _ = self
            .events
            .send(Event::PubAck(self.client_id.clone(), pkid));
    }

    async fn closed(&mut self, reason: CloseReason) {
        let _ = self
            .events
            .send(Event::Closed(self.client_id.clone(), reason));
    }
}

struct NoHttp;

#[async_trait]
impl HttpHandler for NoHttp {
    async fn handle(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::json(http::StatusCode::NOT_FOUND, &serde_json::json!({}))
    }
}

/// A running echo server.
pub struct EchoServer {
    _dir: TempDir,
    /// The server's TLS material (its CA trusts nothing else).
    pub tls: TlsMaterial,
    /// The listeners (MQTT over TLS and HTTPS/WebSocket).
    pub servers: Servers,
    /// What happened to the sessions, in order.
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl EchoServer {
    /// Starts the server on ephemeral loopback ports, with fresh TLS material.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsMaterial::load_or_create(dir.path(), "localhost").unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        let options = ServerOptions::new(
            tls.server_config(),
            Arc::new(EchoHandler { events: tx }),
            Arc::new(NoHttp),
        );
        let servers = Servers::start(options).await.unwrap();
        Self {
            _dir: dir,
            tls,
            servers,
            events,
        }
    }

    /// Waits for the next event of `client_id` matching `want`.
    pub async fn wait_for<T>(
        &mut self,
        client_id: &str,
        mut want: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        loop {
            let event = tokio::time::timeout(STEP, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no expected event for {client_id} in time"))
                .expect("server alive");
            let id = match &event {
                Event::Connected(id) | Event::PubAck(id, _) | Event::Closed(id, _) => id,
            };
            if id == client_id {
                if let Some(found) = want(&event) {
                    return found;
                }
            }
        }
    }

    /// Waits until the session of `client_id` ends and returns why.
    pub async fn closed(&mut self, client_id: &str) -> CloseReason {
        self.wait_for(client_id, |e| match e {
            Event::Closed(_, reason) => Some(*reason),
            _ => None,
        })
        .await
    }
}
