//! Byte transports under the MQTT connection logic: a TLS stream, or a WebSocket whose binary
//! messages carry the MQTT bytes. The connection logic is written once against [`PacketIo`].

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long closing a transport (TLS close_notify, WebSocket close handshake) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Read granularity for stream transports.
const READ_CHUNK: usize = 8 * 1024;

/// A bidirectional byte transport for MQTT packets.
pub(crate) trait PacketIo: Send {
    /// Appends received bytes to `buf`. `Ok(false)` means the peer closed the connection.
    /// Must be cancel-safe: dropping the future loses no bytes.
    fn read_into(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<bool>> + Send;

    /// Writes one encoded MQTT packet and flushes it.
    fn write_packet(&mut self, packet: Bytes) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the transport politely (bounded in time; errors are irrelevant by then).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// MQTT directly on a byte stream (MQTT over TLS).
pub(crate) struct StreamIo<S>(pub(crate) S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> PacketIo for StreamIo<S> {
    async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        // read_buf reads into spare capacity only; with none it would report a false EOF.
        buf.reserve(READ_CHUNK);
        Ok(self.0.read_buf(buf).await? > 0)
    }

    async fn write_packet(&mut self, packet: Bytes) -> io::Result<()> {
        self.0.write_all(&packet).await?;
        self.0.flush().await
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.0.shutdown()).await;
    }
}

/// MQTT over WebSocket: binary messages carry MQTT bytes. A packet may span messages and a
/// message may carry several packets, so incoming messages are simply appended to the buffer.
pub(crate) struct WebSocketIo<S>(pub(crate) WebSocketStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> PacketIo for WebSocketIo<S> {
    async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        loop {
            match self.0.next().await {
                None => return Ok(false),
                Some(Ok(Message::Binary(data))) => {
                    buf.extend_from_slice(&data);
                    return Ok(true);
                }
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite queues the pong; flushing sends it now rather than with the
                    // next outgoing message.
                    self.0.flush().await.map_err(ws_error)?;
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) => return Ok(false),
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message on an MQTT connection",
                    ));
                }
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => {
                    return Ok(false);
                }
                Some(Err(e)) => return Err(ws_error(e)),
            }
        }
    }

    async fn write_packet(&mut self, packet: Bytes) -> io::Result<()> {
        self.0.send(Message::Binary(packet)).await.map_err(ws_error)
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.0.close(None)).await;
    }
}

/// Maps WebSocket errors to I/O errors; protocol violations (bad frames, oversized messages)
/// become `InvalidData`, which the connection reports as a protocol error.
fn ws_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::Protocol(_)
        | tungstenite::Error::Capacity(_)
        | tungstenite::Error::Utf8(_) => io::Error::new(io::ErrorKind::InvalidData, error),
        other => io::Error::other(other),
    }
}
