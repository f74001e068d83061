//! Accepting gRPC connections: at most [`MAX_CONNECTIONS`] at once (more wait in the kernel's
//! backlog), each with `TCP_NODELAY`, and closed when it sends nothing within
//! [`FIRST_BYTES_TIMEOUT`] of being accepted.
//!
//! HTTP/2 keepalive (see `server.rs`) only starts once a client has spoken HTTP/2, so without
//! the first-bytes deadline a client could open connections that never send anything and hold
//! them, and their file descriptors, forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Stream;
use futures_util::stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::accept::Slots;

/// gRPC connections served at once. Envoy opens a few per worker; the cap keeps a flood of
/// connections from taking every file descriptor (the HTTP listener, Redis and config reloads
/// need some too).
const MAX_CONNECTIONS: usize = 4_096;

/// How long a new connection has to send its first bytes (the HTTP/2 preface).
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections `listener` accepts, within the bound, for tonic to serve.
pub fn connections(listener: TcpListener) -> impl Stream<Item = io::Result<Connection>> {
    let slots = Slots::new(MAX_CONNECTIONS, "gRPC");
    stream::unfold((listener, slots), |(listener, slots)| async move {
        let (stream, slot) = slots.accept(&listener).await?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a gRPC connection");
        }
        Some((Ok(Connection::new(stream, slot)), (listener, slots)))
    })
}

/// One accepted connection: holds its slot until it is dropped, and fails its reads once the
/// first-bytes deadline passes with nothing read.
pub struct Connection {
    stream: TcpStream,
    /// Until the first bytes arrive.
    deadline: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Connection {
        Connection {
            stream,
            deadline: Some(Box::pin(tokio::time::sleep(FIRST_BYTES_TIMEOUT))),
            _slot: slot,
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let filled = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > filled => {
                this.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(deadline) = &mut this.deadline {
                    ready!(deadline.as_mut().poll(cx));
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no bytes within the first-bytes timeout",
                    )));
                }
                Poll::Pending
            }
            done => done,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
