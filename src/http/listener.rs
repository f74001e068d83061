//! Accepting HTTP connections: HTTP/1.1 only (an HTTP/2 preface is refused), through a TLS
//! handshake when TLS is on, at most [`MAX_CONNECTIONS`] at once (more wait in the kernel's
//! backlog), each request's headers
//! within [`HEADER_READ_TIMEOUT`] of the connection opening or of the previous response (so a
//! connection that stays silent or idle is closed), and on shutdown no new connections while
//! the open ones finish what they are doing.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::api::Api;
use super::routes::routes;
use crate::accept::Slots;
use crate::tls::{self, ServerTls};

/// Connections served at once. Operators, scrapers and `/check` callers need far fewer; the cap
/// keeps a flood of connections from taking the file descriptors the gRPC listener needs.
pub const MAX_CONNECTIONS: usize = 1_024;

/// How long a client has to send its request headers, counted from the moment the connection is
/// accepted or its previous response was sent, so that a client sending nothing, or sending its
/// headers slowly (slowloris), cannot hold a connection and its slot forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the routes on `listener` (over TLS with `tls`) until `shutdown` completes, then closes
/// the listener and waits for the open connections to finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    api: Arc<Api>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let service = warp::service(routes(api));
    let slots = Slots::new(MAX_CONNECTIONS, "HTTP");
    let connections = GracefulShutdown::new();
    // HTTP/1 only: detecting the version would wait for the first bytes with no timer at all.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, slot) = tokio::select! {
            () = &mut shutdown => break,
            accepted = slots.accept(&listener) => match accepted {
                Some(accepted) => accepted,
                None => break,
            },
        };
        let (builder, service, tls) = (builder.clone(), service.clone(), tls.clone());
        let watcher = connections.watcher();
        // The handshake runs in the connection's task, so that a slow client holds up no other.
        tokio::spawn(async move {
            let link = match tls::accept(tls.as_deref(), stream, HEADER_READ_TIMEOUT).await {
                Ok(link) => link,
                Err(error) => {
                    tracing::debug!(%error, "HTTP connection refused in its TLS handshake");
                    return;
                }
            };
            let connection = builder
                .serve_connection(TokioIo::new(link), TowerToHyperService::new(service))
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    connections.shutdown().await;
}
