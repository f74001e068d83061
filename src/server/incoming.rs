//! Accepting gRPC connections: admitted by [`Admission`] (a bound in all, per peer address, and
//! a reserve for newcomers), each with `TCP_NODELAY`, through a TLS handshake when TLS is on
//! (several at once, so that a slow one holds up no other), its HTTP/2 opening due within
//! [`OPENING_TIMEOUT`] (after the handshake, which has as long again), and closed once idle for
//! `--grpc-max-connection-idle`.
//!
//! HTTP/2 keepalive (see `mod.rs`) only starts once a client has spoken HTTP/2, so without the
//! opening deadline a client could open connections that never finish it and hold them, and
//! their file descriptors, forever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, FuturesUnordered};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tonic::transport::server::{Connected, TcpConnectInfo};

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
) -> impl Stream<Item = io::Result<Connection>> {
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

/// The accept loop's state: the listener, its admission, and the handshakes under way.
struct Accepting {
    listener: TcpListener,
    admission: Arc<Admission>,
    tls: Option<Arc<ServerTls>>,
    idle: Option<Duration>,
    handshakes: FuturesUnordered<BoxFuture<'static, Option<Connection>>>,
}

impl Accepting {
    /// The next connection ready to serve.
    async fn next(&mut self) -> Connection {
        loop {
            tokio::select! {
                (stream, ticket) = self.admission.accept(&self.listener) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY on a gRPC connection");
                    }
                    let (tls, idle) = (self.tls.clone(), self.idle);
                    self.handshakes.push(Box::pin(async move {
                        match tls::accept(tls.as_deref(), stream, OPENING_TIMEOUT).await {
                            Ok(link) => Some(Connection::new(link, ticket, idle)),
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

/// One admitted connection: holds its slot until it is dropped.
pub struct Connection {
    io: Deadlines<Link>,
    info: Peer,
    _ticket: Ticket,
}

/// What every call on a connection knows of it (tonic puts it in the request's extensions):
/// its address, its peer's share of the in-flight budget, and its activity.
#[derive(Clone, Debug)]
pub struct Peer {
    pub tcp: TcpConnectInfo,
    pub share: Arc<PeerShare>,
    pub activity: Arc<Activity>,
}

impl Connection {
    fn new(link: Link, ticket: Ticket, idle: Option<Duration>) -> Connection {
        let activity = Arc::new(Activity::default());
        let info = Peer {
            tcp: link.tcp().connect_info(),
            share: ticket.share().clone(),
            activity: activity.clone(),
        };
        Connection {
            io: Deadlines::new(link, OPENING_TIMEOUT, idle.map(|after| (activity, after))),
            info,
            _ticket: ticket,
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
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
