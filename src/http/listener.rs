//! Accepting HTTP connections: HTTP/1.1 only (an HTTP/2 preface is refused), through a TLS
//! handshake when TLS is on, admitted within bounds in all and per client address (a refused
//! one gets a 503 when it speaks plain HTTP, and is closed), each request's headers within
//! [`HEADER_READ_TIMEOUT`] of the connection opening or of the previous response (so a
//! connection that stays silent or idle is closed), a body whose Content-Length is over the
//! bound refused before it is sent (no `100 Continue`), and on shutdown no new connections
//! while the open ones finish what they are doing.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use warp::http::header::CONTENT_LENGTH;
use warp::hyper::Request;
use warp::hyper::body::Incoming;
use warp::hyper::service::Service;

use super::api::Api;
use super::error::ApiError;
use super::reply;
use super::routes::routes;
use super::side::{self, Side};
use crate::admission::{Admission, AdmissionLimits};
use crate::inflight::PeerShare;
use crate::store::BoxFuture;
use crate::tls::{self, ServerTls};
use warp::filters::BoxedFilter;

/// Connections served at once by default (`--http-max-connections`). Operators, scrapers and
/// `/check` callers need far fewer; the cap keeps a flood of connections from taking the file
/// descriptors the gRPC listener needs.
pub const MAX_CONNECTIONS: usize = 1_024;

/// How long a client has to send its request headers, counted from the moment the connection is
/// accepted or its previous response was sent, so that a client sending nothing, or sending its
/// headers slowly (slowloris), cannot hold a connection and its slot forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection refused for its address is told before it is closed (plain HTTP only: a
/// TLS client could not read it).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 57\r\nconnection: close\r\n\r\n{\"error\":\"too many connections from this client address\"}";

/// Serves the routes on `listener` (over TLS with `tls`) until `shutdown` completes, then closes
/// the listener and waits for the open connections to finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    api: Arc<Api>,
    limits: AdmissionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max_body = api.options.max_body_bytes;
    serve_routes(listener, tls, routes(api), max_body, limits, shutdown).await;
}

/// Serves a side listener's routes on `listener` (plain HTTP) until `shutdown` completes.
pub async fn serve_side(
    listener: TcpListener,
    api: Arc<Api>,
    side: Side,
    limits: AdmissionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let max_body = api.options.max_body_bytes;
    let routes = side::routes(api, side);
    serve_routes(listener, None, routes, max_body, limits, shutdown).await;
}

async fn serve_routes(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    routes: BoxedFilter<(warp::reply::Response,)>,
    max_body: usize,
    limits: AdmissionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let service = TowerToHyperService::new(warp::service(routes));
    let refusal = tls.is_none().then_some(REFUSAL);
    let admission = Admission::new(limits, "HTTP", refusal);
    let connections = GracefulShutdown::new();
    // HTTP/1 only: detecting the version would wait for the first bytes with no timer at all.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, ticket) = tokio::select! {
            () = &mut shutdown => break,
            accepted = admission.accept(&listener) => accepted,
        };
        let gate = Gate {
            inner: service.clone(),
            share: ticket.share().clone(),
            max_body,
        };
        let (builder, tls) = (builder.clone(), tls.clone());
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
                .serve_connection(TokioIo::new(link), gate)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            drop(ticket);
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// In front of the routes, for one connection: refuses a body announced larger than the bound
/// before reading it, and tags each request with its client's share of the in-flight budget.
#[derive(Clone)]
struct Gate<S> {
    inner: S,
    share: Arc<PeerShare>,
    max_body: usize,
}

impl<S> Service<Request<Incoming>> for Gate<S>
where
    S: Service<Request<Incoming>, Response = warp::reply::Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = warp::reply::Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<warp::reply::Response, Infallible>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let announced = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if announced.is_some_and(|length| length > self.max_body as u64) {
            let refused = reply::error(&ApiError::BodyTooLarge { max: self.max_body });
            return Box::pin(std::future::ready(Ok(refused)));
        }
        request.extensions_mut().insert(self.share.clone());
        let response = self.inner.call(request);
        Box::pin(response)
    }
}
