//! The async driver: performs what the `dps-core` registration state machine asks, on a real
//! connection, and feeds back what happens.

use std::time::Instant;

use dps_core::Timestamp;
use dps_core::dps::DpsConnectInfo;
use dps_core::dps::registration::{Assignment, Event, Registration, RegistrationConfig};
use dps_core::mqtt::{
    ConnectFailure, Connected, ConnectionLoss, IncomingPublish, Machine as _, Transmit,
};
use dps_core::sas::SasResource;
use dps_transport_mqtt::os::{random_seed, unix_now};
use dps_transport_mqtt::{ConnectOptions, Incoming, MqttConnection, QoS, TransportError};
use tracing::Instrument as _;

use crate::client::ProvisioningClient;
use crate::error::ProvisioningError;

/// Runs one registration to its end.
pub(crate) async fn run(
    client: &ProvisioningClient,
    connect: &DpsConnectInfo,
    config: RegistrationConfig,
) -> Result<Assignment, ProvisioningError> {
    let span = tracing::info_span!(
        "dps_register",
        registration_id = %client.registration_id,
        id_scope = %client.id_scope,
        transport = client.transport.name(),
    );
    Driver {
        client,
        connect,
        origin: Instant::now(),
        connection: None,
    }
    .run(config)
    .instrument(span)
    .await
}

struct Driver<'a> {
    client: &'a ProvisioningClient,
    connect: &'a DpsConnectInfo,
    origin: Instant,
    connection: Option<MqttConnection>,
}

impl Driver<'_> {
    fn now(&self) -> Timestamp {
        Timestamp::from_instants(self.origin, Instant::now())
    }

    async fn run(mut self, config: RegistrationConfig) -> Result<Assignment, ProvisioningError> {
        let request_timeout = config.timing_policy().request_timeout;
        let seed = self.client.seed.unwrap_or_else(random_seed);
        let mut reg = Registration::new(config, self.now(), seed);
        loop {
            while let Some(transmit) = reg.poll_transmit() {
                match transmit {
                    Transmit::Connect { .. } => self.connect(&mut reg).await?,
                    Transmit::Subscribe { filters } => {
                        let filters: Vec<(&str, QoS)> = filters
                            .iter()
                            .map(|f| (f.as_str(), QoS::AtLeastOnce))
                            .collect();
                        let granted = match &self.connection {
                            Some(c) => {
                                tokio::time::timeout(request_timeout, c.subscribe(&filters)).await
                            }
                            None => Ok(Err(TransportError::ConnectionClosed)),
                        };
                        match granted {
                            Ok(Ok(granted)) if granted.first().is_some_and(Option::is_some) => {
                                reg.handle_subscribed(self.now(), true);
                            }
                            outcome => {
                                tracing::debug!(?outcome, "subscription failed");
                                self.drop_connection(&mut reg);
                            }
                        }
                    }
                    Transmit::Publish { topic, payload, .. } => {
                        let sent = match &self.connection {
                            Some(c) => {
                                tokio::time::timeout(
                                    request_timeout,
                                    c.publish(&topic, payload, QoS::AtLeastOnce),
                                )
                                .await
                            }
                            None => Ok(Err(TransportError::ConnectionClosed)),
                        };
                        if !matches!(sent, Ok(Ok(()))) {
                            tracing::debug!(?sent, "publish failed");
                            self.drop_connection(&mut reg);
                        }
                    }
                    Transmit::Disconnect => {
                        if let Some(connection) = self.connection.take() {
                            connection.disconnect().await;
                        }
                    }
                    Transmit::Ack { packet_id } => {
                        if let Some(c) = &self.connection {
                            let _ = c.ack(packet_id);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(event) = reg.poll_event() {
                if let Event::Finished(outcome) = event {
                    if let Some(connection) = self.connection.take() {
                        connection.disconnect().await;
                    }
                    return match outcome {
                        Ok(assignment) => {
                            tracing::info!(
                                hub = assignment.assigned_hub(),
                                device_id = assignment.device_id(),
                                "assigned"
                            );
                            Ok(assignment)
                        }
                        Err(error) => {
                            tracing::warn!(%error, "registration ended without an assignment");
                            Err(error.into())
                        }
                    };
                }
                log_event(&event);
            }
            self.wait(&mut reg).await;
        }
    }

    /// Waits for a message, a lost connection, or the machine's next timeout.
    async fn wait(&mut self, reg: &mut Registration) {
        let deadline = reg
            .poll_timeout()
            .map(|t| self.origin + t.as_duration())
            .map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let incoming = async {
            match self.connection.as_mut() {
                Some(c) => c.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = incoming => match message {
                Some(Incoming::Publish { topic, payload, packet_id, .. }) => {
                    reg.handle_publish(self.now(), IncomingPublish::new(topic, payload, packet_id));
                }
                Some(_) => {}
                None => {
                    let reason = self.connection.as_ref().and_then(MqttConnection::close_reason);
                    tracing::debug!(?reason, "connection lost");
                    self.drop_connection(reg);
                }
            },
            () = sleep => reg.handle_timeout(self.now()),
        }
    }

    async fn connect(&mut self, reg: &mut Registration) -> Result<(), ProvisioningError> {
        let resource = SasResource::dps(self.connect.id_scope(), self.connect.registration_id());
        // Fresh credentials for every connection: a token never outlives a reconnect.
        let credentials = self
            .client
            .authenticator
            .credentials(&resource, unix_now())
            .map_err(ProvisioningError::Credentials)?;
        let mut options = ConnectOptions::new(
            self.client.endpoint.clone(),
            self.connect.client_id().to_owned(),
            self.connect.username().to_string(),
            credentials,
        );
        options.keep_alive = self.client.keep_alive;
        options.tls = self.client.tls.clone();
        options.connect_timeout = self.client.timing.request_timeout;
        match self.client.transport.connect(&options).await {
            Ok(connection) => {
                tracing::debug!("connected");
                let session_present = connection.session_present();
                self.connection = Some(connection);
                reg.handle_connected(
                    self.now(),
                    Connected::new(session_present, None, unix_now()),
                );
            }
            Err(TransportError::Refused { code }) => {
                reg.handle_connect_failed(self.now(), ConnectFailure::Refused { code });
            }
            Err(error) if error.is_retriable() => {
                tracing::debug!(%error, "connection attempt failed");
                reg.handle_connect_failed(self.now(), ConnectFailure::Network);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot connect");
                return Err(ProvisioningError::Transport(error));
            }
        }
        Ok(())
    }

    fn drop_connection(&mut self, reg: &mut Registration) {
        // Dropping the connection closes the socket.
        self.connection = None;
        reg.handle_disconnected(self.now(), ConnectionLoss::Network);
    }
}

fn log_event(event: &Event) {
    match event {
        Event::RequestSent { kind, rid } => tracing::debug!(?kind, rid, "request sent"),
        Event::Assigning {
            operation_id,
            retry_in,
        } => {
            tracing::debug!(operation_id = %operation_id, ?retry_in, "assigning");
        }
        Event::Retrying {
            reason,
            attempt,
            retry_in,
        } => {
            tracing::info!(?reason, attempt, ?retry_in, "retrying");
        }
        Event::Ignored { reason, rid } => tracing::warn!(?reason, ?rid, "ignored a message"),
        _ => tracing::debug!(?event, "event"),
    }
}
