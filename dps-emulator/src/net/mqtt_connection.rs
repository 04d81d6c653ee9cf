//! One MQTT 3.1.1 connection, server side, over any [`PacketIo`]: CONNECT/CONNACK, the packet
//! loop, acknowledgements, keep-alive, limits. Packets are decoded and encoded with rumqttc's
//! codec; nothing here panics on network input (malformed input closes the connection).

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, Packet, PubAck, PubComp, PubRec, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, Protocol};
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::gate::Unauthenticated;
use super::mqtt::{
    CloseReason, ConnectRequest, ConnectReturnCode, ListenerTransport, MqttHandler, MqttSession,
    Outbox, Outgoing, QoS, SubscribeOutcome,
};
use super::packet_io::PacketIo;
use super::wait_shutdown;

/// Largest remaining length MQTT can encode; the bound for packets the emulator itself writes.
const MAX_ENCODABLE: usize = 268_435_455 + 5;

/// Limits and timeouts of MQTT connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MqttLimits {
    /// Largest accepted remaining length of an incoming packet; larger closes the connection.
    pub(crate) max_packet_size: usize,
    /// Time allowed between the transport being ready and a complete CONNECT.
    pub(crate) connect_timeout: Duration,
    /// Time allowed for writing one packet (a client that stops reading is dropped).
    pub(crate) write_timeout: Duration,
    /// Largest first packet (CONNECT): a client that has not authenticated gets no more
    /// buffer than a CONNECT needs.
    pub(crate) max_connect_packet_size: usize,
    /// Silence after which a connection with keep-alive 0 is closed.
    pub(crate) idle_timeout: Duration,
}

/// Everything a connection needs besides its transport.
pub(crate) struct ConnectionContext {
    pub(crate) handler: Arc<dyn MqttHandler>,
    pub(crate) peer_certificates: Vec<CertificateDer<'static>>,
    pub(crate) transport: ListenerTransport,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) limits: MqttLimits,
    /// Released once CONNECT is accepted.
    pub(crate) unauthenticated: Arc<Unauthenticated>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Why reading the next packet stopped.
enum ReadError {
    Eof,
    Io(io::Error),
    TooLarge(usize),
    Malformed(mqttbytes::Error),
}

impl ReadError {
    fn close_reason(&self) -> CloseReason {
        match self {
            Self::Eof => CloseReason::Network,
            Self::Io(e) if e.kind() == io::ErrorKind::InvalidData => CloseReason::ProtocolError,
            Self::Io(_) => CloseReason::Network,
            Self::TooLarge(_) | Self::Malformed(_) => CloseReason::ProtocolError,
        }
    }
}

/// Reads until `buf` holds one complete packet and decodes it. Cancel-safe: bytes already read
/// stay in `buf`, and a decoded packet is returned in the same poll that decodes it.
async fn next_packet<T: PacketIo>(
    io: &mut T,
    buf: &mut BytesMut,
    max_packet_size: usize,
) -> Result<Packet, ReadError> {
    loop {
        match Packet::read(buf, max_packet_size) {
            Ok(packet) => return Ok(packet),
            Err(mqttbytes::Error::InsufficientBytes(_)) => match io.read_into(buf).await {
                Ok(true) => {}
                Ok(false) => return Err(ReadError::Eof),
                Err(e) => return Err(ReadError::Io(e)),
            },
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                return Err(ReadError::TooLarge(size));
            }
            Err(e) => return Err(ReadError::Malformed(e)),
        }
    }
}

async fn write<T: PacketIo>(io: &mut T, packet: &Packet, timeout: Duration) -> io::Result<()> {
    let mut bytes = BytesMut::with_capacity(packet.size());
    packet
        .write(&mut bytes, MAX_ENCODABLE)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tokio::time::timeout(timeout, io.write_packet(bytes.freeze()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
}

/// Runs one connection to its end.
pub(crate) async fn run_connection<T: PacketIo>(mut io: T, mut ctx: ConnectionContext) {
    let peer = ctx.peer_addr;
    let transport = ctx.transport;
    let mut buf = BytesMut::new();

    let connect = tokio::select! {
        biased;
        _ = wait_shutdown(&mut ctx.shutdown) => None,
        read = tokio::time::timeout(
            ctx.limits.connect_timeout,
            // The remaining length is checked from the fixed header, before the body is read.
            next_packet(
                &mut io,
                &mut buf,
                ctx.limits.max_connect_packet_size.min(ctx.limits.max_packet_size),
            ),
        ) => match read {
            Err(_) => {
                tracing::debug!(%peer, ?transport, "no CONNECT in time");
                None
            }
            Ok(Ok(Packet::Connect(connect))) => Some(connect),
            Ok(Ok(other)) => {
                tracing::warn!(%peer, ?transport, packet = ?packet_kind(&other), "first packet is not CONNECT");
                None
            }
            Ok(Err(ReadError::Malformed(mqttbytes::Error::InvalidProtocolLevel(level)))) => {
                refuse_protocol(&mut io, &ctx, level).await;
                None
            }
            Ok(Err(e)) => {
                log_read_error(peer, &e, "before CONNECT");
                None
            }
        }
    };
    let Some(connect) = connect else {
        io.close().await;
        return;
    };
    if connect.protocol != Protocol::V4 {
        refuse_protocol(&mut io, &ctx, 5).await;
        io.close().await;
        return;
    }

    let keep_alive = connect.keep_alive;
    let (outbox, outgoing) = Outbox::channel();
    let request = connect_request(connect, &ctx);
    tracing::debug!(%peer, ?transport, client_id = %request.client_id, keep_alive, "CONNECT");

    let session = match ctx.handler.connect(request, outbox.clone()).await {
        Ok(session) => {
            ctx.unauthenticated.authenticated();
            session
        }
        Err(code) => {
            let code = match code {
                // "Refused" with code 0 would read as success to the client.
                ConnectReturnCode::Success => ConnectReturnCode::ServiceUnavailable,
                code => code,
            };
            tracing::debug!(%peer, ?code, "CONNECT refused");
            let connack = Packet::ConnAck(ConnAck::new(code, false));
            let _ = write(&mut io, &connack, ctx.limits.write_timeout).await;
            io.close().await;
            return;
        }
    };
    let connack = Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        session.session_present(),
    ));

    let mut connection = Connection {
        io,
        buf,
        session,
        outbox,
        outgoing,
        incoming_qos2: HashSet::new(),
        limits: ctx.limits,
        peer,
    };
    let reason = match connection.send(&connack).await {
        Ok(()) => connection.run(keep_alive, &mut ctx.shutdown).await,
        Err(reason) => reason,
    };
    tracing::debug!(%peer, ?transport, %reason, "connection closed");
    connection.session.closed(reason).await;
    connection.io.close().await;
}

fn connect_request(connect: Connect, ctx: &ConnectionContext) -> ConnectRequest {
    // rumqttc folds "absent" and "empty" together for user name and password; Azure clients
    // never send empty ones, so empty is reported as absent.
    let (username, password) = match connect.login {
        Some(login) => (
            Some(login.username).filter(|u| !u.is_empty()),
            Some(login.password.into_bytes()).filter(|p| !p.is_empty()),
        ),
        None => (None, None),
    };
    ConnectRequest {
        client_id: connect.client_id,
        username,
        password,
        clean_session: connect.clean_session,
        keep_alive: connect.keep_alive,
        peer_certificates: ctx.peer_certificates.clone(),
        transport: ctx.transport,
        peer_addr: ctx.peer_addr,
    }
}

/// CONNACK 1 (unacceptable protocol version), as MQTT 3.1.1 §3.1.2.2 asks.
async fn refuse_protocol<T: PacketIo>(io: &mut T, ctx: &ConnectionContext, level: u8) {
    tracing::debug!(peer = %ctx.peer_addr, level, "unsupported MQTT protocol level");
    let connack = Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::RefusedProtocolVersion,
        false,
    ));
    let _ = write(io, &connack, ctx.limits.write_timeout).await;
}

fn log_read_error(peer: SocketAddr, error: &ReadError, phase: &'static str) {
    match error {
        ReadError::Eof => tracing::debug!(%peer, phase, "peer closed the connection"),
        ReadError::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!(%peer, phase, error = %e, "transport protocol error; closing");
        }
        ReadError::Io(e) => tracing::debug!(%peer, phase, error = %e, "read failed"),
        ReadError::TooLarge(size) => {
            tracing::warn!(%peer, phase, size, "oversized MQTT packet; closing");
        }
        ReadError::Malformed(e) => {
            tracing::warn!(%peer, phase, error = %e, "malformed MQTT packet; closing");
        }
    }
}

fn packet_kind(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// An accepted connection.
struct Connection<T> {
    io: T,
    buf: BytesMut,
    session: Box<dyn MqttSession>,
    /// Kept so the queue never reports "all senders gone" while the connection lives.
    outbox: Outbox,
    outgoing: mpsc::UnboundedReceiver<Outgoing>,
    /// Packet ids of incoming QoS 2 messages delivered but not yet released by PUBREL.
    incoming_qos2: HashSet<u16>,
    limits: MqttLimits,
    peer: SocketAddr,
}

impl<T: PacketIo> Connection<T> {
    async fn run(&mut self, keep_alive: u16, shutdown: &mut watch::Receiver<bool>) -> CloseReason {
        // MQTT 3.1.1 §3.1.2.10: the server may close after 1.5 × keep-alive of silence.
        // Keep-alive 0 turns that off; the idle limit still bounds a silent connection (#11).
        let grace = Some(if keep_alive > 0 {
            Duration::from_millis(u64::from(keep_alive) * 1500)
        } else {
            self.limits.idle_timeout
        });
        let mut deadline = grace.map(|g| Instant::now() + g);
        loop {
            tokio::select! {
                biased;
                _ = wait_shutdown(shutdown) => return CloseReason::Shutdown,
                message = self.outgoing.recv() => {
                    // `self.outbox` keeps a sender alive, so the queue never ends here.
                    let Some(message) = message else { return CloseReason::ClosedByServer };
                    if let Err(reason) = self.send_outgoing(message).await {
                        return reason;
                    }
                }
                () = sleep_until_opt(deadline) => {
                    tracing::debug!(peer = %self.peer, keep_alive, "keep-alive expired");
                    return CloseReason::KeepAliveTimeout;
                }
                read = next_packet(&mut self.io, &mut self.buf, self.limits.max_packet_size) => {
                    let packet = match read {
                        Ok(packet) => packet,
                        Err(e) => {
                            log_read_error(self.peer, &e, "connected");
                            return e.close_reason();
                        }
                    };
                    deadline = grace.map(|g| Instant::now() + g);
                    if let Err(reason) = self.handle(packet).await {
                        return reason;
                    }
                }
            }
        }
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), CloseReason> {
        write(&mut self.io, packet, self.limits.write_timeout)
            .await
            .map_err(|e| {
                tracing::debug!(peer = %self.peer, error = %e, "write failed");
                CloseReason::Network
            })
    }

    async fn send_outgoing(&mut self, message: Outgoing) -> Result<(), CloseReason> {
        match message {
            Outgoing::Publish {
                topic,
                payload,
                qos,
                pkid,
            } => {
                if topic.len() > usize::from(u16::MAX) {
                    // The codec would silently truncate the length prefix and corrupt the stream.
                    tracing::error!(peer = %self.peer, len = topic.len(), "outgoing topic too long; message dropped");
                    return Ok(());
                }
                let mut publish = rumqttc::mqttbytes::v4::Publish::from_bytes(topic, qos, payload);
                publish.pkid = pkid.unwrap_or(0);
                self.send(&Packet::Publish(publish)).await
            }
            Outgoing::Close => Err(CloseReason::ClosedByServer),
        }
    }

    /// Handles one packet from the client; `Err` ends the connection.
    async fn handle(&mut self, packet: Packet) -> Result<(), CloseReason> {
        match packet {
            Packet::Publish(publish) => {
                let (qos, pkid) = (publish.qos, publish.pkid);
                if qos == QoS::ExactlyOnce && self.incoming_qos2.contains(&pkid) {
                    // A retransmission of a message already delivered: acknowledge only.
                    return self.send(&Packet::PubRec(PubRec::new(pkid))).await;
                }
                self.session
                    .publish(publish.topic, publish.payload, qos, publish.retain)
                    .await
                    .map_err(|_| CloseReason::ClosedByServer)?;
                match qos {
                    QoS::AtMostOnce => Ok(()),
                    QoS::AtLeastOnce => self.send(&Packet::PubAck(PubAck::new(pkid))).await,
                    QoS::ExactlyOnce => {
                        self.incoming_qos2.insert(pkid);
                        self.send(&Packet::PubRec(PubRec::new(pkid))).await
                    }
                }
            }
            Packet::PubRel(pubrel) => {
                self.incoming_qos2.remove(&pubrel.pkid);
                self.send(&Packet::PubComp(PubComp::new(pubrel.pkid))).await
            }
            Packet::PubAck(puback) => {
                if self.outbox.acknowledge(puback.pkid) {
                    self.session.puback(puback.pkid).await;
                } else {
                    tracing::debug!(peer = %self.peer, pkid = puback.pkid, "PUBACK for no message in flight");
                }
                Ok(())
            }
            Packet::Subscribe(subscribe) => {
                let count = subscribe.filters.len();
                let filters = subscribe
                    .filters
                    .into_iter()
                    .map(|f| (f.path, f.qos))
                    .collect();
                let mut outcomes = self
                    .session
                    .subscribe(filters)
                    .await
                    .map_err(|_| CloseReason::ClosedByServer)?;
                if outcomes.len() != count {
                    tracing::warn!(peer = %self.peer, expected = count, got = outcomes.len(), "session returned the wrong number of SUBSCRIBE outcomes");
                    outcomes.resize(count, SubscribeOutcome::Failure);
                }
                let codes = outcomes
                    .into_iter()
                    .map(|o| match o {
                        SubscribeOutcome::Granted(qos) => SubscribeReasonCode::Success(qos),
                        SubscribeOutcome::Failure => SubscribeReasonCode::Failure,
                    })
                    .collect();
                self.send(&Packet::SubAck(SubAck::new(subscribe.pkid, codes)))
                    .await
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.session
                    .unsubscribe(unsubscribe.topics)
                    .await
                    .map_err(|_| CloseReason::ClosedByServer)?;
                self.send(&Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)))
                    .await
            }
            Packet::PingReq => self.send(&Packet::PingResp).await,
            Packet::Disconnect => Err(CloseReason::ClientDisconnect),
            // The emulator never sends QoS 2, so these acknowledge nothing; harmless.
            Packet::PubRec(_) | Packet::PubComp(_) => Ok(()),
            other @ (Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => {
                tracing::warn!(peer = %self.peer, packet = packet_kind(&other), "unexpected packet from a client; closing");
                Err(CloseReason::ProtocolError)
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random bytes (xorshift) so the test needs no extra dependency and is reproducible.
    fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes() {
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        for round in 0..20_000 {
            let len = 1 + round % 64;
            let mut bytes = noise(&mut seed, len);
            // Bias towards valid packet types and small remaining lengths to reach the parsers.
            bytes[0] = (bytes[0] & 0xF0) | ((bytes[0] & 0x0F) % 4);
            if len > 1 {
                bytes[1] = (len as u8 - 2) & 0x7F;
            }
            let mut buf = BytesMut::from(&bytes[..]);
            while !buf.is_empty() {
                if Packet::read(&mut buf, 1024).is_err() {
                    break;
                }
            }
        }
    }
}
