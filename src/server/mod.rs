//! The composition root: build the config snapshot, the store and the limiter, serve them on
//! pre-bound listeners, reload the config as it changes, and shut down in order when told to.
//!
//! gRPC health follows what health knows (`grpc_health`): NOT_SERVING while no usable config is
//! in force.
//!
//! Shutdown: health turns NOT_SERVING at once (gRPC health, `/health`, `/healthcheck`); after
//! `--shutdown-delay` the gRPC and HTTP listeners stop accepting; in-flight calls get
//! `--shutdown-timeout` to finish; then background tasks stop.
//!
//! gRPC is served on TCP and, with `--grpc-uds`, on a Unix socket whose file is removed at
//! shutdown (`grpc`, `unix_socket`).
//!
//! gRPC calls are bounded in number per connection, and connections whose peer stops answering
//! HTTP/2 PINGs are dropped (`grpc`); connections are admitted within bounds and must
//! open within a deadline (`incoming`); calls and their bytes are bounded across all connections
//! by the in-flight budget, and a call's request body must arrive in time (`streams`); once
//! read, a call waits only on its store, which answers by the caller's deadline.

mod certificates;
mod grpc;
mod grpc_health;
mod incoming;
pub mod options;
mod reloads;
mod streams;
pub mod unix_socket;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{ConfigError, ConfigWatcher, Reload, ReloadRequests, Reloader};
use crate::health::Health;
use crate::http;
use crate::inflight::InFlight;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::registry::{
    LocalNode, NodeDirectory, NodeInfo, NodeRegistry, NodeState, RegistryError, advertised_address,
};
use crate::rls::RateLimitGrpc;
use crate::settings::ServeSettings;
use crate::statsd::{StatsdError, StatsdPusher};
use crate::store::redis::{RedisLink, RedisSetupError};
use crate::store::{CounterStore, MemoryStore, PerSecondSplit, RedisStore};
use crate::tls::TlsError;
use crate::trace::{TraceError, Tracer, Tracing};
use certificates::ListenerTls;
pub use grpc::GRPC_MAX_CONCURRENT_STREAMS;
use streams::Bounded;
use unix_socket::{SocketFile, UnixSocket};

/// Sockets bound before the server starts, so that callers (and tests) can use port 0.
pub struct Listeners {
    pub grpc: TcpListener,
    /// gRPC on a Unix socket too (`--grpc-uds`).
    pub grpc_uds: Option<UnixSocket>,
    /// The management API and metrics.
    pub http: TcpListener,
    /// The metrics alone, where the Go service's Prometheus listener was (`--prometheus-addr`).
    pub prometheus: Option<TcpListener>,
    /// `/rlconfig` and `/stats`, where the Go service's debug listener was (`--debug-addr`).
    pub debug: Option<TcpListener>,
}

/// What the service reports about itself, made by the caller so that it can read them too, and
/// the door through which the caller asks for a config reload (SIGHUP).
pub struct Telemetry {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub reloads: ReloadRequests,
}

impl Telemetry {
    pub fn new(settings: &ServeSettings) -> Telemetry {
        Telemetry {
            health: Arc::new(Health::new()),
            metrics: Arc::new(Metrics::new(settings.max_metric_series)),
            reloads: ReloadRequests::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot load the rate limit config (fix it, or start with --allow-empty-config to serve, failing every call, until it is fixed):\n{}", list(.0))]
    Config(Vec<ConfigError>),
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("the gRPC server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot use Redis: {0}")]
    Redis(#[from] RedisSetupError),
    #[error("cannot use the node registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("cannot serve TLS on the {listener} listener: {source}")]
    Tls {
        listener: &'static str,
        source: TlsError,
    },
    #[error("{0}")]
    Settings(String),
    #[error("{0}")]
    Tracing(#[from] TraceError),
    #[error("{0}")]
    Statsd(#[from] StatsdError),
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
    mut settings: ServeSettings,
    listeners: Listeners,
    telemetry: Telemetry,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let Telemetry {
        health,
        metrics,
        reloads,
    } = telemetry;
    let grpc_port = listeners.grpc.local_addr().map_or(0, |bound| bound.port());
    options::settle_node_id(&mut settings, grpc_port);
    // The config is read before anything connects: a config that cannot be used stops the
    // service at once.
    let mut reloader = Reloader::new(&settings.config, options::layout(&settings));
    let first = reloader.reload();
    if let Reload::Rejected(errors) = &first
        && !settings.allow_empty_config
    {
        return Err(ServeError::Config(errors.clone()));
    }

    let background = CancellationToken::new();
    let tls_options = options::tls(&settings).map_err(ServeError::Settings)?;
    let tls = certificates::start(tls_options, &health, &metrics, &background)
        .map_err(|(listener, source)| ServeError::Tls { listener, source })?;
    let traces = options::tracing(&settings)
        .map(|options| Tracing::start(&options))
        .transpose()?;
    let tracer = traces.as_ref().map(|traces| traces.tracer.clone());
    if let Some(statsd) = options::statsd(&settings) {
        let pusher = StatsdPusher::new(&statsd, metrics.clone())?;
        tokio::spawn(pusher.run(background.clone()));
        tracing::info!(addr = statsd.addr, "pushing stats to statsd");
    }
    let me = this_node(&settings, &listeners);
    let node_id = me.id.clone();
    let (store, nodes, registry) =
        start_store(&settings, me, clock, &health, &metrics, &background).await?;
    let limiter = Arc::new(
        Limiter::new(store, metrics.clone(), options::limiter(&settings)).traced(tracer.clone()),
    );
    let mut apply = reloads::applier(
        limiter.clone(),
        health.clone(),
        metrics.clone(),
        settings.config.clone(),
    );
    health.require_config(settings.healthy_only_with_config);
    if matches!(first, Reload::Rejected(_)) {
        tracing::error!(
            "starting with no rate limit configuration (--allow-empty-config): every call fails with UNAVAILABLE until the config is fixed"
        );
        limiter.refuse_until_configured();
    }
    apply(first);
    let limits = limiter.limits();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node_id,
        store = %options::store_summary(&settings),
        domains = limits.config().domains().len(),
        rules = limits.config().rule_count(),
        "starting ratelimiter"
    );
    let reporting = Telemetry {
        health: health.clone(),
        metrics: metrics.clone(),
        reloads: reloads.clone(),
    };
    tokio::spawn(ConfigWatcher::start(reloader, apply, reloads).run(background.clone()));

    let mut serving =
        Serving::start(&settings, listeners, tls, limiter, reporting, nodes, tracer).await;
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
            tracing::info!(
                delay = %humantime::format_duration(settings.shutdown_delay),
                "shutting down: reporting NOT_SERVING"
            );
            health.set_draining();
            metrics.node_up.set(0);
            if let Some(registry) = &registry {
                registry.unregister().await;
            }
            tokio::time::sleep(settings.shutdown_delay).await;
            serving.drain(settings.shutdown_timeout).await
        }
    };
    background.cancel();
    if let Some(traces) = traces {
        // Blocks until the exporter, which runs on this runtime, has sent the last spans.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    tracing::info!("stopped");
    outcome
}

/// The two listeners at work, and what stops them.
struct Serving {
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    http: JoinHandle<()>,
    /// Cancelled to stop accepting connections and let the servers finish.
    stop_accepting: CancellationToken,
    /// The gRPC Unix socket's file, removed when serving is over.
    _socket_file: Option<SocketFile>,
}

impl Serving {
    /// Serves gRPC (the rate-limit and health services) and HTTP on their listeners.
    async fn start(
        settings: &ServeSettings,
        listeners: Listeners,
        tls: ListenerTls,
        limiter: Arc<Limiter>,
        telemetry: Telemetry,
        nodes: Arc<dyn NodeDirectory>,
        tracer: Option<Tracer>,
    ) -> Serving {
        let Telemetry {
            health, metrics, ..
        } = telemetry;
        let rls = RateLimitGrpc::new(
            limiter.clone(),
            metrics.clone(),
            options::request_limits(settings),
            options::responses(settings),
            tracer,
        );
        let stop_accepting = CancellationToken::new();
        let health_service = grpc_health::start(&health, stop_accepting.clone()).await;
        metrics.node_up.set(1);

        let grpc_address = address_of(&listeners.grpc);
        let http_address = address_of(&listeners.http);
        let budget = Arc::new(InFlight::new(options::in_flight(settings)));
        let api = Arc::new(http::Api::new(
            limiter,
            metrics.clone(),
            health,
            nodes,
            budget.clone(),
            options::api(settings),
        ));
        let prometheus = settings.prometheus.prometheus_path.clone();
        let sides = [
            (listeners.prometheus, http::Side::Metrics(prometheus)),
            (listeners.debug, http::Side::Debug),
        ];
        for (listener, side) in sides {
            let Some(listener) = listener else { continue };
            tracing::info!("serving {side:?} on {}", address_of(&listener));
            tokio::spawn(http::serve_side(
                listener,
                api.clone(),
                side,
                options::http_admission(settings),
                stop_accepting.clone().cancelled_owned(),
            ));
        }
        let http = tokio::spawn(http::serve(
            listeners.http,
            tls.http,
            api,
            options::http_admission(settings),
            stop_accepting.clone().cancelled_owned(),
        ));
        tracing::info!("serving HTTP on {http_address}");

        let rls = rls.into_server(settings.requests.max_message_bytes);
        let router = grpc::server(settings)
            .add_service(Bounded::new(health_service, budget.clone()))
            .add_service(Bounded::new(rls, budget));
        let (unix, socket_file) = listeners
            .grpc_uds
            .map(|socket| (socket.listener, socket.file))
            .unzip();
        let grpc = grpc::serve(
            settings,
            router,
            (listeners.grpc, tls.grpc),
            unix,
            &stop_accepting,
        );
        tracing::info!("serving gRPC on {grpc_address}");
        if let Some(file) = &socket_file {
            tracing::info!("serving gRPC on the Unix socket {}", file.path().display());
        }
        Serving {
            grpc,
            http,
            stop_accepting,
            _socket_file: socket_file,
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
                    timeout = %humantime::format_duration(timeout),
                    "in-flight calls did not finish in time; stopping anyway"
                );
                self.grpc.abort();
                self.http.abort();
                Ok(())
            }
        }
    }
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
    let link = RedisLink::start(&redis, health.store(), background.clone()).await?;
    tracing::info!(
        redis_type = ?settings.redis.redis_type,
        connected = health.is_store_reachable(),
        problem = health.store_problem().as_deref().unwrap_or("none"),
        "counting in Redis"
    );
    let prefix = &settings.redis.redis_key_prefix;
    let main = Arc::new(RedisStore::new(link.clone(), prefix));
    let store: Arc<dyn CounterStore> = match options::per_second_redis(settings) {
        None => main,
        Some(per_second) => {
            let health = health.per_second_store();
            let second = RedisLink::start(&per_second, health.clone(), background.clone()).await?;
            tracing::info!(
                redis_type = ?settings.per_second.redis_per_second_type,
                connected = health.is_reachable(),
                problem = health.problem().as_deref().unwrap_or("none"),
                "counting per-second limits in their own Redis"
            );
            let second = Arc::new(RedisStore::new(second, prefix));
            Arc::new(PerSecondSplit::new(main, second))
        }
    };
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

fn flatten(
    result: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    result?.map_err(ServeError::from)
}
