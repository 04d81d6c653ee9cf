//! A byte budget for what an unauthenticated client may send: over WebSocket the MQTT CONNECT
//! arrives inside WebSocket messages, which tungstenite buffers whole (up to the message limit
//! sized for the largest publish) before the MQTT layer can look at the CONNECT's fixed
//! header. Counting the bytes under tungstenite bounds that buffer to about the CONNECT limit
//! until the connection has authenticated (#11).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::gate::Unauthenticated;

/// `S` whose reads fail once more than `budget` bytes arrived before authentication.
pub(crate) struct ReadBudget<S> {
    inner: S,
    unauthenticated: Arc<Unauthenticated>,
    /// Bytes still allowed; `None` once the connection has authenticated.
    budget: Option<usize>,
}

impl<S> ReadBudget<S> {
    pub(crate) fn new(inner: S, unauthenticated: Arc<Unauthenticated>, budget: usize) -> Self {
        Self {
            inner,
            unauthenticated,
            budget: Some(budget),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadBudget<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.budget.is_some() && self.unauthenticated.is_done() {
            self.budget = None;
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(budget)) = (&poll, self.budget) {
            let read = buf.filled().len() - before;
            match budget.checked_sub(read) {
                Some(left) => self.budget = Some(left),
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "more bytes before CONNECT than a CONNECT may have",
                    )));
                }
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadBudget<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
