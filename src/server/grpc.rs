//! The gRPC server: the rate-limit and health services, each behind the in-flight budget,
//! served on the TCP listener and, when `--grpc-uds` is given, on a Unix socket too, until
//! told to stop.
//!
//! Unix-socket clients have no address, so they are admitted as one peer ([`UNIX_PEER`]), by
//! an admission of their own: `--grpc-max-connections` of them, with no per-peer or reserve
//! split (they are all that one peer). Being separate, a flood over TCP cannot take the slots
//! of the local proxy on the socket, nor the other way round. Their calls share one peer's part
//! of the in-flight budget, as a sidecar's calls over loopback would.
//!
//! [`UNIX_PEER`]: crate::admission::UNIX_PEER

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::Router;

use super::{incoming, options};
use crate::admission::{Admission, AdmissionLimits};
use crate::settings::ServeSettings;
use crate::tls::ServerTls;

/// Calls one gRPC connection may have in flight at once. Envoy multiplexes a worker's checks on
/// a connection and opens another when a server's limit is reached, so this only bounds what
/// one connection can pile up (and the burst of work when its calls all end at once); one
/// address's calls are bounded by `--max-in-flight-per-peer` across its connections.
pub const GRPC_MAX_CONCURRENT_STREAMS: u32 = 256;

/// How often an HTTP/2 PING checks that a gRPC client is still there ...
const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// ... and how long its answer may take before the connection is dropped as dead.
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC server, bounded so that stalled or vanished clients cannot hold calls or
/// connections forever. No timer runs per call: a call's request body is bounded by `streams`,
/// and once read, a call waits only on its store, which answers by the caller's deadline (or
/// `--redis-timeout`). A `grpc-timeout` sent by the client is still enforced by tonic.
pub fn server(settings: &ServeSettings) -> Server {
    Server::builder()
        .max_concurrent_streams(GRPC_MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .max_connection_age(settings.bounds.grpc_max_connection_age)
        .max_connection_age_grace(settings.bounds.grpc_max_connection_age_grace)
}

/// Serves `router` on `tcp` (through `tls` when given) and on `unix` when given; the task ends
/// when `stop` is cancelled and both have finished, or as soon as either fails.
pub fn serve(
    settings: &ServeSettings,
    router: Router,
    (tcp, tls): (TcpListener, Option<Arc<ServerTls>>),
    unix: Option<UnixListener>,
    stop: &CancellationToken,
) -> JoinHandle<Result<(), tonic::transport::Error>> {
    let idle = options::grpc_idle(settings);
    let limits = options::grpc_admission(settings);
    let admission = Admission::new(limits, "gRPC", None);
    let incoming = incoming::connections(tcp, tls, admission, idle);
    let on_tcp = router
        .clone()
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    let on_unix = unix.map(|listener| {
        let one_peer = AdmissionLimits {
            connections: limits.connections,
            per_peer: limits.connections,
            reserve: 0,
        };
        let admission = Admission::new(one_peer, "gRPC Unix socket", None);
        let incoming = incoming::unix_connections(listener, admission, idle);
        router.serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned())
    });
    tokio::spawn(async move {
        match on_unix {
            Some(on_unix) => tokio::try_join!(on_tcp, on_unix).map(|_| ()),
            None => on_tcp.await,
        }
    })
}
