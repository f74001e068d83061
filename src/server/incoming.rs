//! Accepting gRPC connections: at most [`MAX_CONNECTIONS`] at once (more wait in the kernel's
//! backlog), each with `TCP_NODELAY`, through a TLS handshake when TLS is on (several at once,
//! so that a slow one holds up no other), and closed when it sends nothing within
//! [`FIRST_BYTES_TIMEOUT`] of being accepted (a handshake must finish within it too).
//!
//! HTTP/2 keepalive (see `server.rs`) only starts once a client has spoken HTTP/2, so without
//! the first-bytes deadline a client could open connections that never send anything and hold
//! them, and their file descriptors, forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::stream::{self, FuturesUnordered};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::accept::Slots;
use crate::store::BoxFuture;
use crate::tls::{self, Link, ServerTls};

/// gRPC connections served at once. Envoy opens a few per worker; the cap keeps a flood of
/// connections from taking every file descriptor (the HTTP listener, Redis and config reloads
/// need some too).
const MAX_CONNECTIONS: usize = 4_096;

/// How long a new connection has to send its first bytes (the HTTP/2 preface).
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections `listener` accepts, within the bound, for tonic to serve; with `tls`, those
/// whose handshake succeeded (a failed one is logged at debug level and dropped).
pub fn connections(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> impl Stream<Item = io::Result<Connection>> {
    let accepting = Accepting {
        listener,
        slots: Slots::new(MAX_CONNECTIONS, "gRPC"),
        tls,
        handshakes: FuturesUnordered::new(),
    };
    stream::unfold(accepting, |mut accepting| async move {
        let connection = accepting.next().await?;
        Some((Ok(connection), accepting))
    })
}

/// The accept loop's state: the listener, its slots, and the handshakes under way.
struct Accepting {
    listener: TcpListener,
    slots: Slots,
    tls: Option<Arc<ServerTls>>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<Connection>>>,
}

impl Accepting {
    /// The next connection ready to serve; `None` only if the slots were closed.
    async fn next(&mut self) -> Option<Connection> {
        loop {
            tokio::select! {
                accepted = self.slots.accept(&self.listener) => {
                    let (stream, slot) = accepted?;
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY on a gRPC connection");
                    }
                    let tls = self.tls.clone();
                    self.handshakes.push(Box::pin(async move {
                        match tls::accept(tls.as_deref(), stream, FIRST_BYTES_TIMEOUT).await {
                            Ok(link) => Some(Connection::new(link, slot)),
                            Err(error) => {
                                tracing::debug!(%error, "gRPC connection refused in its TLS handshake");
                                None
                            }
                        }
                    }));
                }
                Some(handshake) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = handshake {
                        return Some(connection);
                    }
                }
            }
        }
    }
}

/// One accepted connection: holds its slot until it is dropped, and fails its reads once the
/// first-bytes deadline passes with nothing read.
pub struct Connection {
    link: Link,
    /// Until the first bytes arrive.
    deadline: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    fn new(link: Link, slot: OwnedSemaphorePermit) -> Connection {
        Connection {
            link,
            deadline: Some(Box::pin(tokio::time::sleep(FIRST_BYTES_TIMEOUT))),
            _slot: slot,
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.link.tcp().connect_info()
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
        match Pin::new(&mut this.link).poll_read(cx, buf) {
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
        Pin::new(&mut self.link).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.link).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.link).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.link).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.link.is_write_vectored()
    }
}
