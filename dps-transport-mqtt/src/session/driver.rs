//! The task that owns a connection's stream.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use super::handshake::{MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET};
use super::shared::{Command, Done, Outbox, Reply, Shared, Tagged, closed};
use super::{CLOSE_TIMEOUT, CloseReason, Incoming, QoS};
use crate::alarm::Alarm;
use crate::error::TransportError;

/// How much room to make in the read buffer while data streams in.
const READ_CHUNK: usize = 16 * 1024;
/// How much room an idle connection keeps: a gateway holds thousands of mostly idle
/// connections, and 16 KiB each is most of their memory. Reads that fill it grow it again.
const IDLE_READ: usize = 1024;

/// How many passes with progress one poll of the session makes before it lets the runtime's
/// other tasks run: a stream that never goes quiet must not starve them (tokio's cooperative
/// budget also bounds the socket's reads).
const PASSES_PER_POLL: usize = 32;

/// How a session's serving ended.
enum End {
    /// The connection was dropped: say goodbye.
    Goodbye,
    /// The session is over, for this reason.
    Closed(CloseReason),
}

/// What waits for each packet id in flight. Packet ids are this side's own numbers (a
/// server's acknowledgement only looks one up), so a fast hasher: SipHash, made for keys an
/// attacker chooses, was three hashes per telemetry message (#16).
type PacketIds<T> = HashMap<u16, T, foldhash::fast::RandomState>;

/// What a SUBACK grants, filter by filter.
type Granted = Vec<Option<QoS>>;

/// The session task's state.
pub(super) struct Driver<S> {
    /// The stream, read and written from this one task (no split halves and their lock).
    stream: S,
    rbuf: BytesMut,
    /// Whether the last read filled the room it had (data is streaming: keep a large buffer).
    streaming: bool,
    wbuf: BytesMut,
    /// The queues last taken from the outbox, empty, kept for their room.
    spare: Outbox,
    /// Whether reading is paused because the application lets the inbox fill.
    paused: bool,
    shared: Arc<Shared>,
    keep_alive: Option<Duration>,
    last_sent: Instant,
    last_received: Instant,
    /// Whether a packet was queued, or bytes read, since the clocks above were last set.
    sent: bool,
    received: bool,
    ping_outstanding: bool,
    next_pkid: u16,
    publishes: PacketIds<Done>,
    /// Outstanding subscribes: the number of filters and who waits for the SUBACK.
    subscribes: PacketIds<(usize, Reply<Granted>)>,
    unsubscribes: PacketIds<Reply<()>>,
    /// Bytes handed to the stream so far.
    written: u64,
    /// Bytes queued so far (written + still in `wbuf`).
    queued: u64,
    /// Whether everything written has been flushed.
    flushed: bool,
    /// QoS 0 publishes waiting for their last byte (an offset in `queued`) to be flushed.
    write_waiters: VecDeque<(u64, Done)>,
}

/// The name of a packet type, for logs and errors.
pub(super) fn packet_name(packet: &v4::Packet) -> &'static str {
    match packet {
        v4::Packet::Connect(_) => "connect",
        v4::Packet::ConnAck(_) => "connack",
        v4::Packet::Publish(_) => "publish",
        v4::Packet::PubAck(_) => "puback",
        v4::Packet::PubRec(_) => "pubrec",
        v4::Packet::PubRel(_) => "pubrel",
        v4::Packet::PubComp(_) => "pubcomp",
        v4::Packet::Subscribe(_) => "subscribe",
        v4::Packet::SubAck(_) => "suback",
        v4::Packet::Unsubscribe(_) => "unsubscribe",
        v4::Packet::UnsubAck(_) => "unsuback",
        v4::Packet::PingReq => "pingreq",
        v4::Packet::PingResp => "pingresp",
        v4::Packet::Disconnect => "disconnect",
    }
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub(super) fn new(
        stream: S,
        rbuf: BytesMut,
        shared: Arc<Shared>,
        keep_alive: Option<Duration>,
    ) -> Self {
        let now = Instant::now();
        Self {
            stream,
            rbuf,
            streaming: false,
            // Grows with the first packet: an idle connection need not hold a write buffer.
            wbuf: BytesMut::new(),
            spare: Outbox::default(),
            paused: false,
            shared,
            keep_alive,
            last_sent: now,
            last_received: now,
            sent: false,
            received: false,
            ping_outstanding: false,
            next_pkid: 0,
            publishes: PacketIds::default(),
            subscribes: PacketIds::default(),
            unsubscribes: PacketIds::default(),
            written: 0,
            queued: 0,
            flushed: true,
            write_waiters: VecDeque::new(),
        }
    }

    /// Runs the session until it ends, then fails whatever is outstanding.
    ///
    /// Not an `async fn`: that would keep the driver twice (the argument and its mutable
    /// copy) for the connection's whole life (#16).
    pub(super) fn run(self) -> impl Future<Output = ()> + use<S> {
        let mut driver = self;
        async move {
            let reason = driver.serve().await;
            match &reason {
                CloseReason::ClosedByClient => {
                    tracing::debug!("mqtt connection closed by the client");
                }
                other => tracing::info!(reason = %other, "mqtt connection closed"),
            }
            // The reason is visible before `recv` returns `None` and before any operation
            // fails.
            driver.shared.set_close_reason(reason);
            driver.fail_outstanding();
        }
    }

    async fn serve(&mut self) -> CloseReason {
        // Bytes that arrived right behind the CONNACK.
        if let Err(reason) = self.process_input() {
            return reason;
        }
        // One timer for the connection's life. It is moved earlier when the keep-alive needs
        // attention sooner, never later: every packet sent or received moves the keep-alive
        // deadline, and re-arming a timer per packet costs more than the one early wake-up
        // per keep-alive period this leaves (`on_timer` checks what is really due).
        let mut timer = Alarm::new();
        let mut armed: Option<Instant> = None;
        let end = poll_fn(|cx| self.poll_serve(cx, &mut timer, &mut armed)).await;
        match end {
            End::Goodbye => self.close_gracefully().await,
            End::Closed(reason) => reason,
        }
    }

    /// One poll of the session: passes over the outbox, the stream's writing and its reading
    /// while any of them makes progress, then waits on all of them at once.
    ///
    /// Not a `select!` loop: that polled every branch again (and registered this task's
    /// waker with each) after every single step, a read, a write, a flush, and those
    /// registrations were the largest part of the session's own cost per telemetry message
    /// (#16). Here a burst (the outbox taken, encoded, written, flushed, the PUBACKs read)
    /// is one poll, and the waits are registered once, when nothing more can be done.
    fn poll_serve(
        &mut self,
        cx: &mut Context<'_>,
        timer: &mut Alarm,
        armed: &mut Option<Instant>,
    ) -> Poll<End> {
        if self.shared.goodbye_asked() {
            return Poll::Ready(End::Goodbye);
        }
        // Whether the stream may have more to read in this poll: once a read is pending, the
        // stream wakes the task when it has more, and another try in this poll would only
        // register the same waker again (#16).
        let mut readable = true;
        for _ in 0..PASSES_PER_POLL {
            match self.pass(cx, &mut readable) {
                Err(reason) => return Poll::Ready(End::Closed(reason)),
                Ok(true) => continue,
                Ok(false) => {}
            }
            // Quiet: the keep-alive's clocks, then every wait. Each registers this task's
            // waker; one that is ready already (a raise since the pass) means another pass.
            self.stamp();
            if let Some(due) = self.next_timer() {
                if armed.is_none_or(|at| due < at) {
                    timer.reset(due);
                    *armed = Some(due);
                }
            }
            if armed.is_some() && timer.poll_elapsed(cx).is_ready() {
                *armed = None;
                if let Some(reason) = self.on_timer() {
                    return Poll::Ready(End::Closed(reason));
                }
                continue;
            }
            if self.shared.outbox_ready.poll_wait(cx).is_ready() {
                self.take_outbox();
                continue;
            }
            // After the outbox's registration: a goodbye asked since raises it again.
            if self.shared.goodbye_asked() {
                return Poll::Ready(End::Goodbye);
            }
            if self.paused && self.shared.inbox_room.poll_wait(cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
        // Progress on every pass: let the runtime's other tasks run, and come back at once.
        self.stamp();
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One pass: takes what the handles queued, writes (and flushes) what waits to be
    /// written, reads what the stream has (while it is `readable`). Whether anything
    /// happened.
    fn pass(&mut self, cx: &mut Context<'_>, readable: &mut bool) -> Result<bool, CloseReason> {
        let mut progress = false;
        if self.shared.outbox_ready.take() {
            self.take_outbox();
            progress = true;
        }
        if !self.wbuf.is_empty() {
            match poll_once(cx, self.stream.write_buf(&mut self.wbuf)) {
                Poll::Ready(Ok(0)) => return Err(CloseReason::ClosedByPeer),
                Poll::Ready(Ok(n)) => {
                    self.written += n as u64;
                    self.flushed = false;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Err(network(&e)),
                Poll::Pending => {}
            }
        }
        if self.wbuf.is_empty() && !self.flushed {
            match poll_once(cx, self.stream.flush()) {
                Poll::Ready(Ok(())) => {
                    self.flushed = true;
                    self.release_written();
                    // After a burst, an idle connection need not keep a large buffer.
                    if self.wbuf.capacity() > READ_CHUNK {
                        self.wbuf = BytesMut::new();
                    }
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Err(network(&e)),
                Poll::Pending => {}
            }
        }
        // While the application lets messages wait, the stream is left unread: what follows
        // (acknowledgements of our own publishes included, as TCP keeps order) waits in the
        // socket and the server's send buffer until it reads again.
        let paused = self.shared.inbox_full();
        if self.paused && !paused {
            // A fresh keep-alive window: the server's packets waited unread, not absent.
            self.last_received = Instant::now();
        }
        self.paused = paused;
        if paused || !*readable {
            return Ok(progress);
        }
        if self.rbuf.capacity() - self.rbuf.len() < IDLE_READ {
            self.rbuf.reserve(if self.streaming {
                READ_CHUNK
            } else {
                IDLE_READ
            });
        }
        let room = self.rbuf.capacity() - self.rbuf.len();
        match poll_once(cx, self.stream.read_buf(&mut self.rbuf)) {
            Poll::Ready(Ok(0)) => return Err(CloseReason::ClosedByPeer),
            Poll::Ready(Ok(n)) => {
                self.received = true;
                self.streaming = n >= room;
                self.process_input()?;
                // Everything read was consumed and the stream went quiet: give the large
                // buffer back.
                if !self.streaming && self.rbuf.is_empty() && self.rbuf.capacity() > 4 * IDLE_READ {
                    self.rbuf = BytesMut::new();
                }
                progress = true;
            }
            Poll::Ready(Err(e)) => return Err(network(&e)),
            Poll::Pending => *readable = false,
        }
        Ok(progress)
    }

    /// Brings the keep-alive's clocks up to date: one clock read for whatever was sent and
    /// received since the last quiet point, instead of one per packet.
    fn stamp(&mut self) {
        if self.sent || self.received {
            let now = Instant::now();
            if std::mem::take(&mut self.sent) {
                self.last_sent = now;
            }
            if std::mem::take(&mut self.received) {
                self.last_received = now;
            }
        }
    }

    /// Encodes every command and tagged publish queued so far behind what waits to be
    /// written: all of it goes out in one write.
    fn take_outbox(&mut self) {
        let mut taken = std::mem::take(&mut self.spare);
        self.shared.take_outbox(&mut taken);
        for command in taken.commands.drain(..) {
            self.handle_command(command);
        }
        for Tagged {
            tag,
            topic,
            payload,
            qos,
        } in taken.tagged.drain(..)
        {
            self.publish(topic, payload, qos, Done::Tag(tag));
        }
        self.spare = taken;
    }

    /// When the keep-alive next needs attention. While reading is paused only the pings are
    /// timed: the server's silence cannot be judged from a stream this side does not read.
    fn next_timer(&self) -> Option<Instant> {
        let keep_alive = self.keep_alive?;
        let mut ping_due = self.last_sent + keep_alive;
        if !self.ping_outstanding {
            // Probe a silent server in time for its answer to beat the deadline.
            ping_due = ping_due.min(self.last_received + keep_alive);
        }
        if self.paused {
            return Some(ping_due);
        }
        Some(ping_due.min(self.dead_at(keep_alive)))
    }

    fn dead_at(&self, keep_alive: Duration) -> Instant {
        self.last_received + keep_alive + keep_alive / 2
    }

    fn on_timer(&mut self) -> Option<CloseReason> {
        let keep_alive = self.keep_alive?;
        let now = Instant::now();
        if !self.paused && now >= self.dead_at(keep_alive) {
            return Some(CloseReason::KeepAliveTimeout);
        }
        let due_by_sent = now >= self.last_sent + keep_alive;
        let due_by_silence = !self.ping_outstanding && now >= self.last_received + keep_alive;
        if due_by_sent || due_by_silence {
            tracing::trace!("mqtt pingreq");
            self.ping_outstanding = true;
            self.queue(&v4::Packet::PingReq).ok();
        }
        None
    }

    /// Parses and handles every complete packet in the read buffer.
    fn process_input(&mut self) -> Result<(), CloseReason> {
        loop {
            match v4::Packet::read(&mut self.rbuf, MAX_INCOMING_PACKET) {
                Ok(packet) => self.handle_packet(packet)?,
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(()),
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(size)) => {
                    return Err(CloseReason::TooLarge {
                        size,
                        limit: MAX_INCOMING_PACKET,
                    });
                }
                Err(e) => {
                    return Err(CloseReason::ProtocolError(format!(
                        "malformed packet from the server: {e}"
                    )));
                }
            }
        }
    }

    fn handle_packet(&mut self, packet: v4::Packet) -> Result<(), CloseReason> {
        match packet {
            v4::Packet::Publish(publish) => {
                let qos = QoS::from_wire(publish.qos);
                if qos == QoS::ExactlyOnce {
                    return Err(CloseReason::ProtocolError(
                        "qos 2 publish from the server".into(),
                    ));
                }
                tracing::trace!(topic = %publish.topic, qos = ?qos, len = publish.payload.len(), "mqtt publish received");
                // No PUBACK here: the receiver acknowledges when the message counts as
                // delivered (`Command::Ack`), so an unread message is redelivered, not lost.
                // Delivered even when the inbox is full: it was read already (reading stops
                // at the next turn of the loop), and the rest of the buffer is still parsed so
                // that acknowledgements already read are handled now.
                self.shared.deliver(Incoming::Publish {
                    topic: publish.topic,
                    payload: publish.payload,
                    packet_id: (qos == QoS::AtLeastOnce).then_some(publish.pkid),
                    qos,
                    retain: publish.retain,
                });
            }
            v4::Packet::PubAck(ack) => match self.publishes.remove(&ack.pkid) {
                Some(done) => done.complete(&self.shared, Ok(())),
                None => tracing::debug!(pkid = ack.pkid, "puback for no outstanding publish"),
            },
            v4::Packet::SubAck(ack) => match self.subscribes.remove(&ack.pkid) {
                Some((count, done)) => {
                    let granted: Vec<Option<QoS>> = ack
                        .return_codes
                        .iter()
                        .map(|code| match code {
                            v4::SubscribeReasonCode::Success(qos) => Some(QoS::from_wire(*qos)),
                            v4::SubscribeReasonCode::Failure => None,
                        })
                        .collect();
                    let result = if granted.len() == count {
                        Ok(granted)
                    } else {
                        Err(TransportError::ProtocolError(format!(
                            "suback has {} return codes for {count} filters",
                            granted.len()
                        )))
                    };
                    let _ = done.send(result);
                }
                None => tracing::debug!(pkid = ack.pkid, "suback for no outstanding subscribe"),
            },
            v4::Packet::UnsubAck(ack) => match self.unsubscribes.remove(&ack.pkid) {
                Some(done) => {
                    let _ = done.send(Ok(()));
                }
                None => tracing::debug!(pkid = ack.pkid, "unsuback for no outstanding unsubscribe"),
            },
            v4::Packet::PingResp => self.ping_outstanding = false,
            other => {
                return Err(CloseReason::ProtocolError(format!(
                    "unexpected {} from the server",
                    packet_name(&other)
                )));
            }
        }
        Ok(())
    }

    /// Queues a PUBLISH; `done` learns the outcome (at QoS 1 from the PUBACK).
    fn publish(&mut self, topic: String, payload: bytes::Bytes, qos: QoS, done: Done) {
        let mut publish = v4::Publish::from_bytes(topic, qos.to_wire(), payload);
        if qos == QoS::AtLeastOnce {
            let Some(pkid) = self.allocate_pkid() else {
                done.complete(
                    &self.shared,
                    Err(TransportError::Unsupported(
                        "more than 65535 operations in flight",
                    )),
                );
                return;
            };
            publish.pkid = pkid;
            match self.queue(&v4::Packet::Publish(publish)) {
                Ok(()) => {
                    self.publishes.insert(pkid, done);
                }
                Err(e) => done.complete(&self.shared, Err(e)),
            }
        } else {
            match self.queue(&v4::Packet::Publish(publish)) {
                Ok(()) => self.write_waiters.push_back((self.queued, done)),
                Err(e) => done.complete(&self.shared, Err(e)),
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Publish {
                topic,
                payload,
                qos,
                done,
            } => self.publish(topic, payload, qos, Done::Reply(done)),
            Command::Ack { packet_id } => {
                if let Err(error) = self.queue(&v4::Packet::PubAck(v4::PubAck::new(packet_id))) {
                    tracing::debug!(%error, packet_id, "puback not written");
                }
            }
            Command::Subscribe { filters, done } => {
                let Some(pkid) = self.allocate_pkid() else {
                    let _ = done.send(Err(TransportError::Unsupported(
                        "more than 65535 operations in flight",
                    )));
                    return;
                };
                let count = filters.len();
                let subscribe = v4::Subscribe {
                    pkid,
                    filters: filters
                        .into_iter()
                        .map(|(path, qos)| v4::SubscribeFilter::new(path, qos.to_wire()))
                        .collect(),
                };
                match self.queue(&v4::Packet::Subscribe(subscribe)) {
                    Ok(()) => {
                        self.subscribes.insert(pkid, (count, done));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
            Command::Unsubscribe { filters, done } => {
                let Some(pkid) = self.allocate_pkid() else {
                    let _ = done.send(Err(TransportError::Unsupported(
                        "more than 65535 operations in flight",
                    )));
                    return;
                };
                let unsubscribe = v4::Unsubscribe {
                    pkid,
                    topics: filters,
                };
                match self.queue(&v4::Packet::Unsubscribe(unsubscribe)) {
                    Ok(()) => {
                        self.unsubscribes.insert(pkid, done);
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
        }
    }

    /// The next free packet id (1..=65535), or `None` when all are in use.
    fn allocate_pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            let pkid = self.next_pkid;
            if !self.publishes.contains_key(&pkid)
                && !self.subscribes.contains_key(&pkid)
                && !self.unsubscribes.contains_key(&pkid)
            {
                return Some(pkid);
            }
        }
        None
    }

    /// Encodes `packet` behind whatever is waiting to be written, in place.
    fn queue(&mut self, packet: &v4::Packet) -> Result<(), TransportError> {
        let start = self.wbuf.len();
        if let Err(e) = packet.write(&mut self.wbuf, MAX_OUTGOING_PACKET) {
            // Nothing of a packet that cannot be encoded may reach the wire.
            self.wbuf.truncate(start);
            return Err(TransportError::ProtocolError(format!(
                "cannot encode packet: {e}"
            )));
        }
        self.queued += (self.wbuf.len() - start) as u64;
        self.sent = true;
        Ok(())
    }

    /// Resolves the QoS 0 publishes whose bytes have all been written and flushed.
    fn release_written(&mut self) {
        while let Some((end, _)) = self.write_waiters.front() {
            if *end > self.written {
                break;
            }
            if let Some((_, done)) = self.write_waiters.pop_front() {
                done.complete(&self.shared, Ok(()));
            }
        }
    }

    /// Writes DISCONNECT behind pending data, flushes and shuts the stream down, within
    /// [`CLOSE_TIMEOUT`].
    async fn close_gracefully(&mut self) -> CloseReason {
        let _ = self.queue(&v4::Packet::Disconnect);
        let flush = async {
            while !self.wbuf.is_empty() {
                let n = self.stream.write_buf(&mut self.wbuf).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                self.written += n as u64;
            }
            self.stream.flush().await?;
            self.release_written();
            self.stream.shutdown().await
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, flush).await {
            Ok(Ok(())) => tracing::debug!("mqtt disconnect sent"),
            Ok(Err(e)) => tracing::debug!(error = %e, "mqtt disconnect could not be sent"),
            Err(_) => tracing::debug!("mqtt disconnect timed out"),
        }
        CloseReason::ClosedByClient
    }

    /// Fails every outstanding operation and every queued command.
    fn fail_outstanding(&mut self) {
        for (_, done) in self.publishes.drain() {
            done.complete(&self.shared, closed());
        }
        for (_, (_, done)) in self.subscribes.drain() {
            let _ = done.send(closed());
        }
        for (_, done) in self.unsubscribes.drain() {
            let _ = done.send(closed());
        }
        for (_, done) in self.write_waiters.drain(..) {
            done.complete(&self.shared, closed());
        }
        let queued = self.shared.close_outbox();
        for tagged in queued.tagged {
            self.shared.push_outcome(tagged.tag, closed());
        }
        for command in queued.commands {
            command.fail();
        }
        self.shared.close_inbox();
    }
}

/// Polls `future` once (the stream's read, write and flush futures are cancel-safe: dropping
/// one that is not ready loses nothing).
fn poll_once<F: Future>(cx: &mut Context<'_>, future: F) -> Poll<F::Output> {
    std::pin::pin!(future).poll(cx)
}

fn network(error: &std::io::Error) -> CloseReason {
    CloseReason::Network {
        kind: error.kind(),
        message: error.to_string(),
    }
}
