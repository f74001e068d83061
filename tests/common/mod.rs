//! Test harness: starts the real service in-process on loopback port 0 (with a clock the test
//! moves by hand) or as the built binary, and builds requests for a real tonic client; `http`
//! is a real HTTP client for the management listener.
#![allow(dead_code, reason = "each test binary uses a part of the harness")]

pub mod algorithm_attacks;
pub mod algorithms;
pub mod contract;
pub mod envoy;
pub mod faults;
pub mod files;
pub mod http;
pub mod metric_names;
pub mod otlp;
pub mod ports;
pub mod process;
pub mod redis;
pub mod redis_store;
pub mod stop_increment;
pub mod tls;
pub mod tls_client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
pub use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use ratelimiter::clock::ManualClock;
use ratelimiter::health::Health;
use ratelimiter::metrics::Metrics;
use ratelimiter::server::{self, Listeners, ServeError, Telemetry};
use ratelimiter::settings::{Cli, Command, ServeSettings};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A moment to start manual clocks at: 2 s into a minute, 30 min into an hour, 12:30 into a
/// day, so a minute window resets in 58 s (the Go service's tests use now = 2222 for the same).
pub const START_MS: u64 = 2_000_032_202_000;

pub type Client = RateLimitServiceClient<Channel>;

/// The service running in this process.
pub struct Service {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub config_dir: TempDir,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

/// Settings as the command line would give them, for a config directory.
pub fn settings(config: &Path, extra: &[&str]) -> ServeSettings {
    let mut args = vec!["ratelimiter", "serve", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    match Cli::parse_from(args).command {
        Command::Serve(settings) => *settings,
        Command::Validate { .. } => unreachable!("parsed a serve command"),
    }
}

/// Writes `files` (name, YAML text) into a new temporary directory.
pub fn config_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

impl Service {
    /// Starts the service on `files` with default settings plus `extra` flags.
    pub async fn start(files: &[(&str, &str)], extra: &[&str]) -> Service {
        let config_dir = config_dir(files);
        let config = config_dir.path().to_path_buf();
        Service::start_in(config_dir, &config, extra).await
    }

    /// Starts the service with `--config config` (a directory the test prepared, or a file in
    /// it); the service keeps `config_dir` alive. The first load is done once a client has
    /// connected: edits made before then are not reloads.
    pub async fn start_in(config_dir: TempDir, config: &Path, extra: &[&str]) -> Service {
        let settings = settings(config, extra);
        let telemetry = Telemetry::new(&settings);
        let (health, metrics) = (telemetry.health.clone(), telemetry.metrics.clone());
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc.local_addr().unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let grpc_uds = settings
            .grpc_uds
            .as_deref()
            .map(|path| server::unix_socket::bind(path).unwrap());
        let clock = Arc::new(ManualClock::new(START_MS));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(
            settings,
            Listeners {
                grpc,
                grpc_uds,
                http,
                prometheus: None,
                debug: None,
            },
            telemetry,
            clock.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Service {
            grpc_addr,
            http_addr,
            clock,
            config_dir,
            health,
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        connect(self.grpc_addr).await
    }

    /// A path in the config directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.config_dir.path().join(name)
    }

    pub fn http(&self) -> http::Http {
        http::Http::new(self.http_addr)
    }

    /// Triggers shutdown without waiting; `stopped` then waits for `run` to return.
    pub fn begin_stop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
    }

    pub async fn stopped(mut self) -> Result<(), ServeError> {
        self.task.take().unwrap().await.unwrap()
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A client on a fresh HTTP/2 connection, retried while the server comes up.
pub async fn connect(addr: SocketAddr) -> Client {
    let url = format!("http://{addr}");
    for _ in 0..200 {
        if let Ok(client) = RateLimitServiceClient::connect(url.clone()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no gRPC server answered at {addr}");
}

/// A channel whose one connection is a `UnixStream` to `path` (the URI is only a name).
pub async fn unix_channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    tonic::transport::Endpoint::from_static("http://ratelimiter.sock")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("a gRPC connection over the Unix socket")
}

/// The status `grpc.health.v1.Health/Check` answers at `addr` for `service`.
pub async fn grpc_health(addr: SocketAddr, service: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap();
    ServingStatus::try_from(response.into_inner().status).unwrap()
}

/// A descriptor from (key, value) entries.
pub fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

/// A request for `domain` with one descriptor per entry list.
pub fn request(domain: &str, descriptors: &[&[(&str, &str)]]) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_string(),
        descriptors: descriptors
            .iter()
            .map(|entries| descriptor(entries))
            .collect(),
        hits_addend: 0,
    }
}

/// Sends a request that must succeed.
pub async fn ask(client: &mut Client, request: RateLimitRequest) -> RateLimitResponse {
    client
        .should_rate_limit(request)
        .await
        .expect("ShouldRateLimit failed")
        .into_inner()
}

pub fn code(response: &RateLimitResponse) -> Code {
    Code::try_from(response.overall_code).unwrap()
}

pub fn status_code(status: &DescriptorStatus) -> Code {
    Code::try_from(status.code).unwrap()
}

/// (requests_per_unit, unit name) of a status's limit, if it has one.
pub fn limit_of(status: &DescriptorStatus) -> Option<(u32, &'static str)> {
    status.current_limit.as_ref().map(|limit| {
        let unit =
            ratelimiter::clock::Unit::from_proto_number(limit.unit).map_or("UNKNOWN", |u| u.name());
        (limit.requests_per_unit, unit)
    })
}

/// Polls `check` every 20 ms until it holds, failing with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
