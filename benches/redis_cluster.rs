//! What a request's size costs on a 3-master Redis Cluster: the latency of a `ShouldRateLimit`
//! request with one descriptor and with ten, through a real gRPC client and an in-process
//! service; then the same at the store (one store call for ten counters, grouped by hash slot
//! and sent as one pipeline per master), and, for contrast, ten one-key calls in series (the Go
//! service's default on Cluster). The ratio of ten to one is the number that matters; it is
//! measured against the one-descriptor baseline in the same run, on a cluster this runner starts
//! on free loopback ports. A single server is measured too, for reference.
//!
//! `cargo bench --bench redis_cluster` (needs redis-server and redis-cli: `scripts/setup`).
//! Run without `--bench` (as `cargo test --all-targets` does), it makes a few calls of each
//! shape and reports them, as a smoke test.

#[allow(dead_code)]
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;
#[allow(dead_code)]
#[path = "../tests/common/redis_store.rs"]
mod redis_store;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use ratelimiter::clock::SystemClock;
use ratelimiter::server::{self, Listeners, Telemetry};
use ratelimiter::settings::{Cli, Command, ServeSettings};
use ratelimiter::store::redis::slot;
use ratelimiter::store::{Count, CounterOp, CounterStore, StoreError};

/// Calls per measured shape; enough for a stable median and p99 on loopback.
const ROUNDS: usize = 3_000;

/// Calls before measuring, to load the scripts and warm the connections.
const WARMUP: usize = 300;

/// Calls of each shape in a smoke run.
const SMOKE_ROUNDS: usize = 20;

/// Descriptors in the large request.
const DESCRIPTORS: usize = 10;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (warmup, rounds) = if measuring {
        (WARMUP, ROUNDS)
    } else {
        (0, SMOKE_ROUNDS)
    };
    let cluster = redis_harness::RedisCluster::start();
    let cluster_flags = ["--redis-type", "cluster"];
    let (mut one, mut ten) = requests(&cluster.url(), &cluster_flags, warmup, rounds).await;
    println!("3-master cluster, ShouldRateLimit over gRPC, {rounds} requests each, median / p99:");
    let (one, one_p99) = summary(&mut one);
    let (ten, ten_p99) = summary(&mut ten);
    println!("    1 descriptor:                     {one:>9.1?} / {one_p99:>9.1?}");
    println!("    {DESCRIPTORS} descriptors:                   {ten:>9.1?} / {ten_p99:>9.1?}");
    println!(
        "  ratio {DESCRIPTORS} / 1 descriptor (medians): {:.2}",
        ten.as_secs_f64() / one.as_secs_f64()
    );
    let cluster_result = measure(&cluster.url(), &cluster_flags, warmup, rounds).await;
    let keys_per_master: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| node.cli(&["dbsize"]).trim().to_string())
        .collect();
    let slots: HashSet<u16> = (0..DESCRIPTORS)
        .map(|index| slot(format!("bench:{}", key(index))))
        .collect();
    println!(
        "3-master cluster, at the store; the {DESCRIPTORS} keys span {} hash slots; keys per master: {}",
        slots.len(),
        keys_per_master.join(", ")
    );
    cluster_result.print();

    // The same on one server, for reference: there the whole request is one script call.
    let server = redis_harness::RedisServer::start();
    println!("single server, for reference:");
    measure(&server.url(), &[], warmup, rounds).await.print();
}

/// Limits for the gRPC requests: every `user` value counts apart, far below its limit.
const LIMITS: &str = "
domain: bench
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 1000000000}
";

/// Latencies of `ShouldRateLimit` with one descriptor and with ten, interleaved, through an
/// in-process service on Redis.
async fn requests(
    url: &str,
    flags: &[&str],
    warmup: usize,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let config = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(config.path().join("bench.yaml"), LIMITS).expect("the config is written");
    let config_path = config.path().to_str().expect("a UTF-8 path");
    let settings = settings(url, &[flags, &["--config", config_path]].concat());
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let grpc = bind().await.expect("a free port");
    let http = bind().await.expect("a free port");
    let address = grpc.local_addr().expect("a bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let telemetry = Telemetry::new(&settings);
    let service = tokio::spawn(server::run(
        settings,
        Listeners {
            grpc,
            grpc_uds: None,
            http,
            prometheus: None,
            debug: None,
        },
        telemetry,
        Arc::new(SystemClock),
        async {
            let _ = stopped.await;
        },
    ));
    let mut client = RateLimitServiceClient::connect(format!("http://{address}"))
        .await
        .expect("the service answers");
    let request = |descriptors: usize| RateLimitRequest {
        domain: "bench".into(),
        descriptors: (0..descriptors)
            .map(|index| RateLimitDescriptor {
                entries: vec![Entry {
                    key: "user".into(),
                    value: index.to_string(),
                }],
                ..Default::default()
            })
            .collect(),
        hits_addend: 1,
    };
    let mut ask = async |descriptors: usize| {
        let started = Instant::now();
        client
            .should_rate_limit(request(descriptors))
            .await
            .expect("ShouldRateLimit answers");
        started.elapsed()
    };
    for _ in 0..warmup {
        ask(1).await;
        ask(DESCRIPTORS).await;
    }
    let mut one = Vec::with_capacity(rounds);
    let mut ten = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        one.push(ask(1).await);
        ten.push(ask(DESCRIPTORS).await);
    }
    let _ = stop.send(());
    service
        .await
        .expect("the service task ends")
        .expect("the service stops cleanly");
    (one, ten)
}

/// Latency samples of each shape of call.
struct Measured {
    single: Vec<Duration>,
    batched: Vec<Duration>,
    /// Ten descriptors whose keys all live on the first key's master (in other slots): the cost
    /// of more script calls without more masters.
    one_master: Vec<Duration>,
    serial: Vec<Duration>,
}

async fn measure(url: &str, flags: &[&str], warmup: usize, rounds: usize) -> Measured {
    let connected = redis_store::connect(url, flags, "bench:").await;
    let slots = connected.link.slot_map();
    let store = &*connected.store;
    let op = |index| CounterOp::count_all(key(index), 60, 1_000, 1);
    let ops: Vec<CounterOp> = (0..DESCRIPTORS).map(op).collect();
    let one = &ops[..1];
    let master = |index| {
        let slot = slot(format!("bench:{}", key(index)));
        slots
            .as_ref()
            .and_then(|slots| slots.owner(slot).map(|master| master.to_string()))
    };
    let same_master: Vec<CounterOp> = (0..)
        .filter(|&index| master(index) == master(0))
        .take(DESCRIPTORS)
        .map(op)
        .collect();

    for _ in 0..warmup {
        store.apply(one).await.expect("counted");
        store.apply(&ops).await.expect("counted");
    }
    // Interleaved, so that every shape sees the same machine load.
    let mut measured = Measured {
        single: Vec::with_capacity(rounds),
        batched: Vec::with_capacity(rounds),
        one_master: Vec::with_capacity(rounds),
        serial: Vec::with_capacity(rounds),
    };
    for _ in 0..rounds {
        measured.single.push(time(|| store.apply(one)).await);
        measured.batched.push(time(|| store.apply(&ops)).await);
        measured
            .one_master
            .push(time(|| store.apply(&same_master)).await);
        let started = Instant::now();
        for op in &ops {
            store
                .apply(std::slice::from_ref(op))
                .await
                .expect("counted");
        }
        measured.serial.push(started.elapsed());
    }
    measured
}

impl Measured {
    fn print(mut self) {
        let (single, single_p99) = summary(&mut self.single);
        let (batched, batched_p99) = summary(&mut self.batched);
        let (one_master, one_master_p99) = summary(&mut self.one_master);
        let (serial, serial_p99) = summary(&mut self.serial);
        println!("  {} calls each, median / p99:", self.single.len());
        println!("    1 descriptor:                     {single:>9.1?} / {single_p99:>9.1?}");
        println!(
            "    {DESCRIPTORS} descriptors, one store call:   {batched:>9.1?} / {batched_p99:>9.1?}"
        );
        println!(
            "    {DESCRIPTORS} descriptors on one master:     {one_master:>9.1?} / {one_master_p99:>9.1?}"
        );
        println!(
            "    {DESCRIPTORS} descriptors, one call per key: {serial:>9.1?} / {serial_p99:>9.1?}"
        );
        println!(
            "  ratio {DESCRIPTORS} / 1 descriptor (medians): {:.2} (all on one master: {:.2}; one call per key in series: {:.2})",
            batched.as_secs_f64() / single.as_secs_f64(),
            one_master.as_secs_f64() / single.as_secs_f64(),
            serial.as_secs_f64() / single.as_secs_f64()
        );
    }
}

/// `serve` settings for Redis at `url`, with a timeout no healthy call meets, plus `flags`.
fn settings(url: &str, flags: &[&str]) -> ServeSettings {
    let mut args = vec![
        "ratelimiter",
        "serve",
        "--redis-url",
        url,
        "--redis-timeout",
        "1s",
    ];
    args.extend_from_slice(flags);
    match Cli::parse_from(args).command {
        Command::Serve(settings) => *settings,
        Command::Validate { .. } => unreachable!("parsed a serve command"),
    }
}

/// The counter key of descriptor `index`, as the limiter would encode it.
fn key(index: usize) -> String {
    format!("1|bench|60|user={index}")
}

async fn time<F, Fut>(call: F) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Count>, StoreError>>,
{
    let started = Instant::now();
    call().await.expect("counted");
    started.elapsed()
}

/// Median and 99th percentile.
fn summary(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |share: f64| samples[((samples.len() - 1) as f64 * share) as usize];
    (at(0.5), at(0.99))
}
