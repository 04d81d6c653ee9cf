//! [`WsIo`]: an upgraded WebSocket seen as a byte stream, so the MQTT session runs over it
//! unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::frame::{
    self, FrameError, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

/// How much room to make in the read buffer per read.
const READ_CHUNK: usize = 8 * 1024;
/// The most a single write turns into one frame.
const MAX_WRITE_FRAME: usize = 64 * 1024;
/// Close status 1000, normal closure (§7.4.1).
const NORMAL_CLOSURE: [u8; 2] = 1000u16.to_be_bytes();

/// Binary messages in both directions: every write becomes one masked binary frame; reads
/// concatenate the payloads of the server's data frames (an MQTT packet may span several
/// frames, or one frame may carry several packets). Pings are answered with pongs; a close
/// frame is answered and reads as the end of the stream; a text message is an error.
pub(crate) struct WsIo<S> {
    inner: S,
    /// Bytes read from the socket and not yet decoded.
    rbuf: BytesMut,
    /// Payload decoded and not yet read.
    pending: Bytes,
    /// Frames (data and control replies) not yet written to the socket.
    wbuf: BytesMut,
    /// The largest frame accepted from the server.
    max_frame: usize,
    /// Whether the message being received is fragmented (a continuation is expected).
    in_message: bool,
    /// The server sent close, or the socket ended: reads return end of stream.
    read_closed: bool,
    /// This side's close frame is queued: nothing more may be written.
    close_sent: bool,
    masks: Masks,
}

impl<S> WsIo<S> {
    /// Wraps a stream on which the WebSocket upgrade has completed, with nothing of the
    /// server's frames read yet.
    pub(crate) fn new(inner: S, max_frame: usize) -> Self {
        Self {
            inner,
            rbuf: BytesMut::new(),
            pending: Bytes::new(),
            wbuf: BytesMut::new(),
            max_frame,
            in_message: false,
            read_closed: false,
            close_sent: false,
            masks: Masks::default(),
        }
    }
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl From<FrameError> for io::Error {
    fn from(error: FrameError) -> Self {
        invalid(error)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    /// Writes every queued frame to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
        }
        // An idle connection keeps no write buffer.
        self.wbuf = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// Queues a control reply and tries to send it at once; it also goes out with the next
    /// write or flush.
    fn reply(&mut self, cx: &mut Context<'_>, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mask = self.masks.next()?;
        frame::encode(opcode, payload, mask, &mut self.wbuf);
        match self.poll_drain(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }

    /// Decodes the next frame in `rbuf`, if it is complete. Data goes to `pending`; control
    /// frames are handled here.
    fn decode(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let Some(header) = frame::parse_header(&self.rbuf, self.max_frame)? else {
            return Ok(false);
        };
        if self.rbuf.len() < header.header_len + header.payload_len {
            return Ok(false);
        }
        self.rbuf.advance(header.header_len);
        let payload = self.rbuf.split_to(header.payload_len).freeze();
        match header.opcode {
            OP_BINARY if !self.in_message => {
                self.in_message = !header.fin;
                self.pending = payload;
            }
            OP_CONTINUATION if self.in_message => {
                self.in_message = !header.fin;
                self.pending = payload;
            }
            OP_TEXT => return Err(invalid("text message on an mqtt websocket")),
            OP_BINARY | OP_CONTINUATION => {
                return Err(invalid("websocket message fragments out of order"));
            }
            OP_PING => self.reply(cx, OP_PONG, &payload)?,
            OP_CLOSE => {
                self.read_closed = true;
                if !self.close_sent {
                    self.close_sent = true;
                    // Echo the status code, as §5.5.1 asks.
                    let code = payload.get(..2).unwrap_or(&NORMAL_CLOSURE).to_vec();
                    self.reply(cx, OP_CLOSE, &code)?;
                }
            }
            // Pongs answer pings this side never sends; nothing to do.
            _ => {}
        }
        Ok(true)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            if this.decode(cx)? {
                continue;
            }
            if this.rbuf.is_empty() && this.rbuf.capacity() > READ_CHUNK {
                // Release what a large message left behind: idle connections stay small.
                this.rbuf = BytesMut::new();
            }
            let start = this.rbuf.len();
            this.rbuf.resize(start + READ_CHUNK, 0);
            let mut read = ReadBuf::new(&mut this.rbuf[start..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let filled = read.filled().len();
            this.rbuf.truncate(start + filled);
            ready!(polled)?;
            if filled == 0 {
                if start != 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the websocket ended inside a frame",
                    )));
                }
                this.read_closed = true;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        // One frame at a time: the socket's own backpressure reaches the caller.
        ready!(this.poll_drain(cx))?;
        if this.close_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "websocket closed",
            )));
        }
        let n = buf.len().min(MAX_WRITE_FRAME);
        let mask = this.masks.next()?;
        frame::encode(OP_BINARY, &buf[..n], mask, &mut this.wbuf);
        if let Poll::Ready(Err(error)) = this.poll_drain(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.close_sent {
            this.close_sent = true;
            let mask = this.masks.next()?;
            frame::encode(OP_CLOSE, &NORMAL_CLOSURE, mask, &mut this.wbuf);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Masking keys from the operating system's random source (§5.3: unpredictable), drawn in
/// batches so that a frame costs no system call.
#[derive(Default)]
struct Masks {
    batch: [u8; 32],
    used: usize,
}

impl Masks {
    fn next(&mut self) -> io::Result<[u8; 4]> {
        if self.used == 0 || self.used == self.batch.len() {
            getrandom::fill(&mut self.batch).map_err(io::Error::other)?;
            self.used = 0;
        }
        let mut mask = [0; 4];
        mask.copy_from_slice(&self.batch[self.used..self.used + 4]);
        self.used += 4;
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream, duplex};

    use super::*;

    /// A server frame (unmasked).
    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    /// Reads one client frame from `server` and unmasks it: (first byte, payload).
    async fn client_frame(server: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut head = [0; 2];
        server.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0x80, "client frames are masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut n = [0; 2];
                server.read_exact(&mut n).await.unwrap();
                usize::from(u16::from_be_bytes(n))
            }
            n => usize::from(n),
        };
        let mut mask = [0; 4];
        server.read_exact(&mut mask).await.unwrap();
        let mut payload = vec![0; len];
        server.read_exact(&mut payload).await.unwrap();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        (head[0], payload)
    }

    #[tokio::test]
    async fn writes_are_masked_binary_frames_with_fresh_masks() {
        let (client, mut server) = duplex(1 << 16);
        let mut ws = WsIo::new(client, 1 << 20);
        ws.write_all(b"\x10\x0cMQTT-CONNECT").await.unwrap();
        ws.write_all(&[9; 300]).await.unwrap();
        ws.flush().await.unwrap();
        assert_eq!(
            client_frame(&mut server).await,
            (0x82, b"\x10\x0cMQTT-CONNECT".to_vec())
        );
        assert_eq!(client_frame(&mut server).await, (0x82, vec![9; 300]));
    }

    #[tokio::test]
    async fn reads_join_fragments_and_answer_pings() {
        let (client, mut server) = duplex(1 << 16);
        let mut ws = WsIo::new(client, 1 << 20);
        let mut wire = server_frame(0x02, b"he"); // binary, not final
        wire.extend(server_frame(0x89, b"p1")); // a ping between fragments
        wire.extend(server_frame(0x80, b"llo")); // final continuation
        wire.extend(server_frame(0x82, b"!")); // a whole message
        server.write_all(&wire).await.unwrap();
        let mut got = vec![0; 6];
        ws.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"hello!");
        assert_eq!(client_frame(&mut server).await, (0x8A, b"p1".to_vec()));
    }

    #[tokio::test]
    async fn close_is_answered_and_ends_the_stream() {
        let (client, mut server) = duplex(1 << 16);
        let mut ws = WsIo::new(client, 1 << 20);
        server
            .write_all(&server_frame(0x88, &1001u16.to_be_bytes()))
            .await
            .unwrap();
        let mut rest = Vec::new();
        ws.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            client_frame(&mut server).await,
            (0x88, 1001u16.to_be_bytes().to_vec())
        );
        assert_eq!(
            ws.write_all(b"late").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[tokio::test]
    async fn text_oversized_and_truncated_frames_are_errors() {
        for (wire, kind) in [
            (server_frame(0x81, b"text"), io::ErrorKind::InvalidData),
            (server_frame(0x82, &[0; 200]), io::ErrorKind::InvalidData),
            (server_frame(0x80, b"orphan"), io::ErrorKind::InvalidData),
            (vec![0x82, 10, 1, 2], io::ErrorKind::UnexpectedEof),
        ] {
            let (client, mut server) = duplex(1 << 16);
            let mut ws = WsIo::new(client, 100);
            server.write_all(&wire).await.unwrap();
            drop(server);
            let mut buf = [0; 16];
            let error = ws.read(&mut buf).await.unwrap_err();
            assert_eq!(error.kind(), kind, "{wire:?}: {error}");
        }
    }

    #[tokio::test]
    async fn shutdown_sends_a_normal_close() {
        let (client, mut server) = duplex(1 << 16);
        let mut ws = WsIo::new(client, 1 << 20);
        ws.shutdown().await.unwrap();
        assert_eq!(
            client_frame(&mut server).await,
            (0x88, NORMAL_CLOSURE.to_vec())
        );
    }
}
