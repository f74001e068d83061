//! The composition root: build the config snapshot, the store and the limiter, serve them on
//! pre-bound listeners, and shut down in order when told to.
//!
//! Shutdown: health turns NOT_SERVING at once; after `--shutdown-delay` the listeners stop
//! accepting; in-flight calls get `--shutdown-timeout` to finish; then background tasks stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::clock::Clock;
use crate::config::{self, ConfigError};
use crate::health::Health;
use crate::limiter::{Limiter, Modes};
use crate::metrics::Metrics;
use crate::registry::{NodeInfo, NodeRegistry, NodeState, advertised_address};
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

/// Sockets bound before the server starts, so that callers (and tests) can use port 0.
pub struct Listeners {
    pub grpc: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the rate limit config is invalid:\n{}", list(.0))]
    Config(Vec<ConfigError>),
    #[error("the gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("the gRPC server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot use Redis: {0}")]
    Redis(#[from] RedisSetupError),
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
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let config = config::load(&settings.config).map_err(ServeError::Config)?;
    tracing::info!(path = %settings.config.display(), domains = config.domains().len(), "loaded rate limit config");
    let config = Arc::new(ArcSwap::from_pointee(config));
    let metrics = Arc::new(Metrics::new(settings.max_metric_series));
    metrics.config_load_success.inc();
    let health = Arc::new(Health::new(SystemTime::now()));

    let background = CancellationToken::new();
    let grpc_bound = listeners.grpc.local_addr().ok();
    let (store, registry) =
        start_store(&settings, grpc_bound, clock, &health, &metrics, &background).await?;

    let modes = Modes {
        global_shadow: settings.global_shadow_mode,
        global_quota: settings.global_quota_mode,
    };
    let limiter = Arc::new(Limiter::new(
        config,
        store,
        modes,
        metrics.clone(),
        settings.near_limit_ratio,
    ));
    let rls = RateLimitGrpc::new(
        limiter,
        settings.requests.limits(),
        settings.responses.options(),
    );

    let (grpc_health, health_service) = tonic_health::server::health_reporter();
    set_grpc_health(&grpc_health, ServingStatus::Serving).await;
    metrics.node_up.set(1);

    let stop_accepting = CancellationToken::new();
    let grpc_address = listeners
        .grpc
        .local_addr()
        .map_or_else(|_| "an unknown address".into(), |a| a.to_string());
    let incoming = TcpIncoming::from(listeners.grpc).with_nodelay(Some(true));
    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(rls.into_server(settings.requests.max_message_bytes))
        .serve_with_incoming_shutdown(incoming, stop_accepting.clone().cancelled_owned());
    let mut grpc = tokio::spawn(grpc);
    tracing::info!("serving gRPC on {grpc_address}");

    let early_exit = tokio::select! {
        () = shutdown => None,
        result = &mut grpc => Some(result),
    };
    if let Some(result) = early_exit {
        background.cancel();
        return flatten(result);
    }

    tracing::info!(delay = ?settings.shutdown_delay, "shutting down: reporting NOT_SERVING");
    health.set_draining();
    metrics.node_up.set(0);
    set_grpc_health(&grpc_health, ServingStatus::NotServing).await;
    if let Some(registry) = &registry {
        registry.unregister().await;
    }
    tokio::time::sleep(settings.shutdown_delay).await;
    stop_accepting.cancel();
    let outcome = match tokio::time::timeout(settings.shutdown_timeout, &mut grpc).await {
        Ok(result) => flatten(result),
        Err(_) => {
            tracing::warn!(timeout = ?settings.shutdown_timeout, "in-flight calls did not finish in time; stopping anyway");
            grpc.abort();
            Ok(())
        }
    };
    background.cancel();
    tracing::info!("stopped");
    outcome
}

/// The counter store: in memory, or in Redis with this node registered there.
async fn start_store(
    settings: &ServeSettings,
    grpc_bound: Option<SocketAddr>,
    clock: Arc<dyn Clock>,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    background: &CancellationToken,
) -> Result<(Arc<dyn CounterStore>, Option<Arc<NodeRegistry>>), ServeError> {
    let Some(url) = &settings.redis_url else {
        let store = Arc::new(MemoryStore::new(settings.memory_max_counters, clock));
        tokio::spawn(MemoryStore::sweep_periodically(
            store.clone(),
            background.clone(),
        ));
        return Ok((store, None));
    };
    NodeRegistry::check(&settings.registry)?;
    let link = RedisLink::start(url, &settings.redis, health.clone(), background.clone()).await?;
    tracing::info!(
        redis_type = ?settings.redis.redis_type,
        connected = health.is_store_reachable(),
        "counting in Redis"
    );
    let store = Arc::new(RedisStore::new(
        link.clone(),
        &settings.redis.redis_key_prefix,
    ));
    let host = settings.registry.advertise_host.as_deref();
    let me = NodeInfo {
        id: settings.node_id(),
        address: advertised_address(settings.http_addr, host),
        grpc_address: grpc_bound.map_or_else(String::new, |bound| advertised_address(bound, host)),
        state: NodeState::Up,
        registered_at: SystemTime::now(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let registry = NodeRegistry::start(
        link,
        &me,
        &settings.registry,
        health.clone(),
        metrics.clone(),
        background,
    );
    Ok((store, Some(registry)))
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
