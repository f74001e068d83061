//! The composition root: build the config snapshot, the store and the limiter, serve them on
//! pre-bound listeners, reload the config as it changes, and shut down in order when told to.
//!
//! Shutdown: health turns NOT_SERVING at once (gRPC health, `/health`, `/healthcheck`); after
//! `--shutdown-delay` the gRPC and HTTP listeners stop accepting; in-flight calls get
//! `--shutdown-timeout` to finish; then background tasks stop.
//!
//! gRPC calls are bounded in number per connection, a call's request body must arrive in time
//! (`rls::BODY_TIMEOUT`) and its store call answers by the caller's deadline, and connections
//! whose peer stops answering HTTP/2 PINGs are dropped (`grpc_server`); connections are bounded
//! in number and must speak within a deadline (`incoming`).

mod incoming;
pub mod options;
mod reloads;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::clock::Clock;
use crate::config::{ConfigError, ConfigWatcher, Reload, Reloader};
use crate::health::Health;
use crate::http;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::registry::{
    LocalNode, NodeDirectory, NodeInfo, NodeRegistry, NodeState, RegistryError, advertised_address,
};
use crate::rls::RateLimitGrpc;
use crate::settings::ServeSettings;
use crate::store::redis::{RedisLink, RedisSetupError};
use crate::store::{CounterStore, MemoryStore, RedisStore};
/// gRPC health service names reported: the overall server (""), the name the Go service uses,
/// and the fully qualified rate-limit service.
const HEALTH_SERVICE_NAMES: [&str; 3] = [
    "",
    "ratelimit",
    "envoy.service.ratelimit.v3.RateLimitService",
];

/// Calls one gRPC connection may have in flight at once. Envoy multiplexes all of a worker's
/// checks on a few connections, so this is generous; it bounds what one client can pile up.
pub const GRPC_MAX_CONCURRENT_STREAMS: u32 = 1_024;

/// How often an HTTP/2 PING checks that a gRPC client is still there ...
const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// ... and how long its answer may take before the connection is dropped as dead.
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sockets bound before the server starts, so that callers (and tests) can use port 0.
pub struct Listeners {
    pub grpc: TcpListener,
    /// The management API and metrics.
    pub http: TcpListener,
}

/// What the service reports about itself, made by the caller so that it can read them too.
pub struct Telemetry {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

impl Telemetry {
    pub fn new(settings: &ServeSettings) -> Telemetry {
        Telemetry {
            health: Arc::new(Health::new(SystemTime::now())),
            metrics: Arc::new(Metrics::new(settings.max_metric_series)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the rate limit config is invalid (fix it, or start with --allow-empty-config to serve without limits until it is fixed):\n{}", list(.0))]
    Config(Vec<ConfigError>),
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("the gRPC server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot use Redis: {0}")]
    Redis(#[from] RedisSetupError),
    #[error("cannot use the node registry: {0}")]
    Registry(#[from] RegistryError),
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the service until `shutdown` completes, then drains and returns.
pub async fn run(
    settings: ServeSettings,
    listeners: Listeners,
    telemetry: Telemetry,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let Telemetry { health, metrics } = telemetry;
    // The config is read before anything connects: a config that cannot be used stops the
    // service at once.
    let mut reloader = Reloader::new(&settings.config);
    let first = reloader.reload();
    if let Reload::Rejected(errors) = &first
        && !settings.allow_empty_config
    {
        return Err(ServeError::Config(errors.clone()));
    }

    let background = CancellationToken::new();
    let me = this_node(&settings, &listeners);
    let (store, nodes, registry) =
        start_store(&settings, me, clock, &health, &metrics, &background).await?;
    let limiter = Arc::new(Limiter::new(
        store,
        metrics.clone(),
        options::limiter(&settings),
    ));
    let mut apply = reloads::applier(
        limiter.clone(),
        health.clone(),
        metrics.clone(),
        settings.config.clone(),
    );
    if matches!(first, Reload::Rejected(_)) {
        tracing::error!(
            "starting with NO rate limits (--allow-empty-config): every request is allowed until the config is fixed"
        );
    }
    apply(first);
    tokio::spawn(ConfigWatcher::start(reloader, apply).run(background.clone()));

    let mut serving = Serving::start(
        &settings,
        listeners,
        limiter,
        health.clone(),
        nodes,
        &metrics,
    )
    .await;
    let early_exit = tokio::select! {
        () = shutdown => None,
        result = serving.ended() => Some(result),
    };
    let outcome = match early_exit {
        Some(result) => {
            serving.stop_accepting.cancel();
            result
        }
        None => {
            tracing::info!(delay = ?settings.shutdown_delay, "shutting down: reporting NOT_SERVING");
            health.set_draining();
            metrics.node_up.set(0);
            set_grpc_health(&serving.grpc_health, ServingStatus::NotServing).await;
            if let Some(registry) = &registry {
                registry.unregister().await;
            }
            tokio::time::sleep(settings.shutdown_delay).await;
            serving.drain(settings.shutdown_timeout).await
        }
    };
    background.cancel();
    tracing::info!("stopped");
    outcome
}

/// The two listeners at work, and what stops them.
struct Serving {
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    http: JoinHandle<()>,
    grpc_health: HealthReporter,
    /// Cancelled to stop accepting connections and let the servers finish.
    stop_accepting: CancellationToken,
}

impl Serving {
    /// Serves gRPC (the rate-limit and health services) and HTTP on their listeners.
    async fn start(
        settings: &ServeSettings,
        listeners: Listeners,
        limiter: Arc<Limiter>,
        health: Arc<Health>,
        nodes: Arc<dyn NodeDirectory>,
        metrics: &Arc<Metrics>,
    ) -> Serving {
        let rls = RateLimitGrpc::new(
            limiter.clone(),
            metrics.clone(),
            options::request_limits(settings),
            options::responses(settings),
        );
        let (grpc_health, health_service) = tonic_health::server::health_reporter();
        set_grpc_health(&grpc_health, ServingStatus::Serving).await;
        metrics.node_up.set(1);

        let stop_accepting = CancellationToken::new();
        let grpc_address = address_of(&listeners.grpc);
        let http_address = address_of(&listeners.http);
        let api = http::Api::new(
            limiter,
            metrics.clone(),
            health,
            nodes,
            options::api(settings),
        );
        let http = tokio::spawn(http::serve(
            listeners.http,
            Arc::new(api),
            stop_accepting.clone().cancelled_owned(),
        ));
        tracing::info!("serving HTTP on {http_address}");

        let incoming = incoming::connections(listeners.grpc);
        let grpc = grpc_server()
            .add_service(health_service)
            .add_service(rls.into_server(settings.requests.max_message_bytes))
            .serve_with_incoming_shutdown(incoming, stop_accepting.clone().cancelled_owned());
        let grpc = tokio::spawn(grpc);
        tracing::info!("serving gRPC on {grpc_address}");
        Serving {
            grpc,
            http,
            grpc_health,
            stop_accepting,
        }
    }

    /// Completes when either server stops by itself (it failed).
    async fn ended(&mut self) -> Result<(), ServeError> {
        tokio::select! {
            result = &mut self.grpc => flatten(result),
            result = &mut self.http => result.map_err(ServeError::from),
        }
    }

    /// Stops accepting, then waits up to `timeout` for the calls in flight.
    async fn drain(mut self, timeout: Duration) -> Result<(), ServeError> {
        self.stop_accepting.cancel();
        let drained = async {
            let (grpc, http) = tokio::join!(&mut self.grpc, &mut self.http);
            flatten(grpc).and(http.map_err(ServeError::from))
        };
        match tokio::time::timeout(timeout, drained).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "in-flight calls did not finish in time; stopping anyway"
                );
                self.grpc.abort();
                self.http.abort();
                Ok(())
            }
        }
    }
}

/// The gRPC server, bounded so that stalled or vanished clients cannot hold calls or
/// connections forever. No timer runs per call: a call's body is bounded by the rate-limit
/// service itself (`rls::BODY_TIMEOUT`), and once read, a call waits only on its store, which
/// answers by the caller's deadline (or `--redis-timeout`). A `grpc-timeout` sent by the
/// client is still enforced by tonic.
fn grpc_server() -> Server {
    Server::builder()
        .max_concurrent_streams(GRPC_MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
}

/// The counter store and the node directory: in memory and this node alone, or in Redis with
/// this node registered there (the registry is returned to be left at shutdown).
async fn start_store(
    settings: &ServeSettings,
    me: NodeInfo,
    clock: Arc<dyn Clock>,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    background: &CancellationToken,
) -> Result<Stores, ServeError> {
    let Some(redis) = options::redis(settings) else {
        let max_bytes = usize::try_from(settings.memory_max_mib << 20).unwrap_or(usize::MAX);
        let store = Arc::new(
            MemoryStore::new(settings.memory_max_counters, clock).with_max_bytes(max_bytes),
        );
        tokio::spawn(MemoryStore::sweep_periodically(
            store.clone(),
            background.clone(),
        ));
        return Ok((store, Arc::new(LocalNode::new(me, health.clone())), None));
    };
    let registry = options::registry(settings);
    registry.check()?;
    let link = RedisLink::start(&redis, health.clone(), background.clone()).await?;
    tracing::info!(
        redis_type = ?settings.redis.redis_type,
        connected = health.is_store_reachable(),
        "counting in Redis"
    );
    let store = Arc::new(RedisStore::new(
        link.clone(),
        &settings.redis.redis_key_prefix,
    ));
    let registry = NodeRegistry::start(
        link,
        &me,
        registry,
        health.clone(),
        metrics.clone(),
        background,
    );
    Ok((store, registry.clone(), Some(registry)))
}

/// What [`start_store`] makes.
type Stores = (
    Arc<dyn CounterStore>,
    Arc<dyn NodeDirectory>,
    Option<Arc<NodeRegistry>>,
);

/// This node as the registry and `/api/nodes` show it: a listener on every interface is
/// published under the host name (or `--advertise-host`), with its bound port.
fn this_node(settings: &ServeSettings, listeners: &Listeners) -> NodeInfo {
    let host = settings.registry.advertise_host.as_deref();
    let published = |listener: &TcpListener| {
        listener
            .local_addr()
            .map_or_else(|_| String::new(), |bound| advertised_address(bound, host))
    };
    NodeInfo {
        id: options::node_id(settings),
        address: published(&listeners.http),
        grpc_address: published(&listeners.grpc),
        state: NodeState::Up,
        registered_at: SystemTime::now(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

fn address_of(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "an unknown address".into(), |a| a.to_string())
}

async fn set_grpc_health(health: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_SERVICE_NAMES {
        health.set_service_status(name, status).await;
    }
}

fn flatten(
    result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    result?.map_err(ServeError::from)
}
