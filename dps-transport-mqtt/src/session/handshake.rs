//! CONNECT / CONNACK, then the session takes the stream over.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::driver::Driver;
use super::{MqttConnection, MqttSender, PublishOutcomes, Session, Shared};
use crate::error::TransportError;
use crate::options::ConnectOptions;

/// The largest packet accepted from the server (IoT Hub messages are at most 256 KiB).
pub(super) const MAX_INCOMING_PACKET: usize = 1 << 20;
/// The largest packet this client sends.
pub(super) const MAX_OUTGOING_PACKET: usize = 1 << 20;

impl MqttConnection {
    /// Runs the MQTT handshake over an already open (TLS) `stream`: sends CONNECT built from
    /// `options` (client id, user name, the SAS token as password, keep-alive, clean session),
    /// waits for CONNACK, then hands the stream to the session (a task of its own, or the
    /// [`Session`](crate::Session) an inline connection hands out).
    ///
    /// This is what every [`Transport`](crate::Transport) ends with; it has no timeout of its
    /// own (transports bound it by the connect timeout). It must run inside a tokio runtime.
    /// The future holds `stream` once: it is not an `async fn`, which would keep its argument
    /// and the moved copy side by side (a TLS stream is ~1 KB, per device connecting, #16).
    ///
    /// # Errors
    /// [`TransportError::Refused`] with the CONNACK code, [`TransportError::ConnectionClosed`]
    /// when the server closes before answering, [`TransportError::ProtocolError`] when it
    /// answers something else, [`TransportError::Io`] (or `Tls`) when the stream fails.
    pub fn handshake<S>(
        stream: S,
        options: &ConnectOptions,
    ) -> impl Future<Output = Result<Self, TransportError>> + Send + use<'_, S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut stream = stream;
        async move {
            let keep_alive = options.keep_alive_secs();
            let out = connect_packet(options, keep_alive)?;
            stream.write_all(&out).await?;
            stream.flush().await?;
            // Not kept while the service takes its time to answer.
            drop(out);
            tracing::debug!(
                client_id = %options.client_id,
                keep_alive,
                clean_session = options.clean_session,
                password = options.credentials.password().is_some_and(|p| !p.is_empty()),
                "mqtt connect sent"
            );

            let mut buffer = BytesMut::with_capacity(1024);
            let connack = loop {
                match v4::Packet::read(&mut buffer, MAX_INCOMING_PACKET) {
                    Ok(v4::Packet::ConnAck(connack)) => break connack,
                    Ok(other) => {
                        return Err(TransportError::ProtocolError(format!(
                            "expected connack, got {}",
                            super::driver::packet_name(&other)
                        )));
                    }
                    Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                        return Err(TransportError::TooLarge {
                            size,
                            limit: MAX_INCOMING_PACKET,
                        });
                    }
                    Err(mqttbytes::Error::InvalidConnectReturnCode(code)) => {
                        return Err(TransportError::Refused { code });
                    }
                    Err(e) => {
                        return Err(TransportError::ProtocolError(format!(
                            "malformed connack: {e}"
                        )));
                    }
                }
                if stream.read_buf(&mut buffer).await? == 0 {
                    return Err(TransportError::ConnectionClosed);
                }
            };
            if connack.code != v4::ConnectReturnCode::Success {
                let code = connack.code as u8;
                tracing::debug!(client_id = %options.client_id, code, "mqtt connect refused");
                return Err(TransportError::Refused { code });
            }
            tracing::debug!(
                client_id = %options.client_id,
                session_present = connack.session_present,
                "mqtt connected"
            );

            let shared = Arc::new(Shared::default());
            let keep_alive = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)));
            let driver = Driver::new(stream, buffer, Arc::clone(&shared), keep_alive);
            let (task, session) = if options.inline_session {
                (None, Some(Session(Box::pin(driver.run()))))
            } else {
                (Some(tokio::spawn(driver.run())), None)
            };
            Ok(Self {
                sender: MqttSender {
                    shared: Arc::clone(&shared),
                    subscribe_timeout: options.subscribe_timeout,
                },
                session_present: connack.session_present,
                outcomes: Some(PublishOutcomes {
                    shared: Arc::clone(&shared),
                }),
                shared,
                task,
                session,
            })
        }
    }
}

/// CONNECT built from `options`: client id, user name, the SAS token as password, keep-alive,
/// clean session.
fn connect_packet(options: &ConnectOptions, keep_alive: u16) -> Result<BytesMut, TransportError> {
    let mut connect = v4::Connect::new(options.client_id.as_str());
    connect.keep_alive = keep_alive;
    connect.clean_session = options.clean_session;
    let password = options.credentials.password().unwrap_or_default();
    if !options.username.is_empty() || !password.is_empty() {
        connect.login = Some(v4::Login::new(options.username.as_str(), password));
    }
    let mut out = BytesMut::new();
    v4::Packet::Connect(connect)
        .write(&mut out, MAX_OUTGOING_PACKET)
        .map_err(|e| TransportError::ProtocolError(format!("cannot encode connect: {e}")))?;
    Ok(out)
}
