//! Accepting gRPC connections: admitted by [`Admission`] (a bound in all, per peer address, and
//! a reserve for newcomers), each with `TCP_NODELAY`, through a TLS handshake when TLS is on
//! (several at once, so that a slow one holds up no other), its HTTP/2 opening due within
//! [`OPENING_TIMEOUT`] (after the handshake, which has as long again), and closed once idle for
//! `--grpc-max-connection-idle`.
//!
//! A Unix socket (`--grpc-uds`) is served the same way, without TLS, its clients admitted as
//! one peer ([`UNIX_PEER`](crate::admission::UNIX_PEER)).
//!
//! HTTP/2 keepalive (see `mod.rs`) only starts once a client has spoken HTTP/2, so without the
//! opening deadline a client could open connections that never finish it and hold them, and
//! their file descriptors, forever.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, FuturesUnordered};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tonic::transport::server::Connected;

use crate::admission::deadlines::{Activity, Deadlines};
use crate::admission::{Admission, Ticket};
use crate::inflight::PeerShare;
use crate::store::BoxFuture;
use crate::tls::{self, Link, ServerTls};

/// How long a new connection has to send the HTTP/2 preface and its first SETTINGS frame.
const OPENING_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections `listener` admits, for tonic to serve; with `tls`, those whose handshake
/// succeeded (a failed one is logged at debug level and dropped). Each is closed after `idle`
/// without a call open (never when `None`).
pub fn connections(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    admission: Arc<Admission>,
    idle: Option<Duration>,
) -> impl Stream<Item = io::Result<Connection<Link>>> {
    let accepting = Accepting {
        listener,
        admission,
        tls,
        idle,
        handshakes: FuturesUnordered::new(),
    };
    stream::unfold(accepting, |mut accepting| async move {
        let connection = accepting.next().await;
        Some((Ok(connection), accepting))
    })
}

/// The connections a Unix-socket `listener` admits, for tonic to serve (no TLS: the socket
/// file's permissions say who may connect).
pub fn unix_connections(
    listener: UnixListener,
    admission: Arc<Admission>,
    idle: Option<Duration>,
) -> impl Stream<Item = io::Result<Connection<UnixStream>>> {
    stream::unfold(
        (listener, admission),
        move |(listener, admission)| async move {
            let (stream, ticket) = admission.accept(&listener).await;
            let connection = Connection::new(stream, None, ticket, idle);
            Some((Ok(connection), (listener, admission)))
        },
    )
}

/// The accept loop's state: the listener, its admission, and the handshakes under way.
struct Accepting {
    listener: TcpListener,
    admission: Arc<Admission>,
    tls: Option<Arc<ServerTls>>,
    idle: Option<Duration>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<Connection<Link>>>>,
}

impl Accepting {
    /// The next connection ready to serve.
    async fn next(&mut self) -> Connection<Link> {
        loop {
            tokio::select! {
                (stream, ticket) = self.admission.accept(&self.listener) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY on a gRPC connection");
                    }
                    let (tls, idle) = (self.tls.clone(), self.idle);
                    self.handshakes.push(Box::pin(async move {
                        match tls::accept(tls.as_deref(), stream, OPENING_TIMEOUT).await {
                            Ok(link) => {
                                let remote = link.tcp().peer_addr().ok();
                                Some(Connection::new(link, remote, ticket, idle))
                            }
                            Err(error) => {
                                tracing::debug!(%error, "gRPC connection refused in its TLS handshake");
                                None
                            }
                        }
                    }));
                }
                Some(handshake) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = handshake {
                        return connection;
                    }
                }
            }
        }
    }
}

/// One admitted connection (a [`Link`], or a Unix stream): holds its slot until it is dropped.
pub struct Connection<IO> {
    io: Deadlines<IO>,
    info: Peer,
    _ticket: Ticket,
}

/// What every call on a connection knows of it (tonic puts it in the request's extensions):
/// its address (none on a Unix socket), its peer's share of the in-flight budget, and its activity.
#[derive(Clone, Debug)]
pub struct Peer {
    pub remote: Option<SocketAddr>,
    pub share: Arc<PeerShare>,
    pub activity: Arc<Activity>,
}

impl<IO> Connection<IO> {
    fn new(
        io: IO,
        remote: Option<SocketAddr>,
        ticket: Ticket,
        idle: Option<Duration>,
    ) -> Connection<IO> {
        let activity = Arc::new(Activity::default());
        let info = Peer {
            remote,
            share: ticket.share().clone(),
            activity: activity.clone(),
        };
        Connection {
            io: Deadlines::new(io, OPENING_TIMEOUT, idle.map(|after| (activity, after))),
            info,
            _ticket: ticket,
        }
    }
}

impl<IO> Connected for Connection<IO> {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.info.clone()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Connection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Connection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
