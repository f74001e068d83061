//! The load benchmark: every server a process of its own on loopback, driven in one run by the
//! same load generator (hand-rolled HTTP/2, one thread: `support/rls_raw.rs`), rounds interleaved, each row
//! reporting calls/s, latency and the CPU per call of the server, of Redis and of the generator
//! itself, from `/proc`.
//!
//! - the do-nothing tonic RLS server (answers OK, counts nothing), this bench run as
//!   `--serve-noop ADDRESS`: the baseline;
//! - ratelimiter on the memory store, with 1 and 5 descriptors;
//! - the Redis ceiling: the store's counting script pipelined straight at a local redis-server,
//!   a batch of calls per write; then the same calls through the store (`RedisStore::apply`,
//!   coalesced as in the service) from the generator's thread; then ratelimiter on that Redis;
//! - ratelimiter on a local 3-master Cluster.
//!
//! Then memory: the service's RSS idle and with 1,000,000 live counters.
//!
//! `cargo bench --bench grpc` (needs redis-server and redis-cli: `scripts/setup`). Without
//! `--bench` (as `cargo test --all-targets` runs it) every row runs briefly, as a smoke test.
//! `--only SECTION` runs one section (memory, redis, cluster or footprint) and `--seconds N`
//! sets each row's length, to profile a server: each row prints its server's pid first.

#[path = "support/hpack.rs"]
mod hpack;
#[path = "support/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[path = "support/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;
#[path = "support/redis_pipeline.rs"]
mod redis_pipeline;
#[allow(dead_code)]
#[path = "../tests/common/redis_store.rs"]
mod redis_store;
#[path = "support/rls_raw.rs"]
mod rls_raw;
#[path = "support/table.rs"]
mod table;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use load::{Load, Measured, Turn, Watch};
use process::Node;
use ratelimiter::key::{self, Level, Scope};
use ratelimiter::store::{CounterOp, CounterStore};
use redis_harness::{RedisCluster, RedisServer};
use table::Table;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Rounds of the whole table in a measuring run; each row reports its median.
const ROUNDS: usize = 3;

/// Counters for the memory measurement.
const LIVE_COUNTERS: u32 = 1_000_000;

/// The service's default `--redis-key-prefix`, so that every Redis row counts the same keys.
const PREFIX: &str = "ratelimit:";

const NOOP_1: &str = "do-nothing tonic RLS server, 1 descriptor";
const NOOP_5: &str = "do-nothing tonic RLS server, 5 descriptors";
const MEMORY_1: &str = "ratelimiter, memory store, 1 descriptor";
const MEMORY_5: &str = "ratelimiter, memory store, 5 descriptors";
const REDIS_PIPELINED: &str = "Redis ceiling: the store's script pipelined straight at Redis";
const REDIS_STORE: &str = "the store's own calls (RedisStore::apply), in the generator's thread";
const REDIS_1: &str = "ratelimiter, local redis-server, 1 descriptor";
const CLUSTER_1: &str = "ratelimiter, local 3-master Cluster, 1 descriptor";

fn main() {
    // Spans and events of h2, hyper and tonic off, decided once per call site, as in the
    // service (whose filter is at info): without a subscriber each span would go to `log`.
    tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::OFF)
        .init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|flag| flag == "--serve-noop") {
        serve_noop();
        return;
    }
    let full = args.iter().any(|arg| arg == "--bench");
    let option = |name: &str| {
        let at = args.iter().position(|arg| arg == name)?;
        args.get(at + 1).cloned()
    };
    let only = option("--only");
    let mut load = Load::for_run(full);
    if let Some(seconds) = option("--seconds") {
        load.duration = Duration::from_secs(seconds.parse().expect("--seconds N"));
    }
    // Rounds of every section, interleaved, so that a noisy moment of a shared machine skews one
    // sample of each row rather than one row.
    let rounds = if full { ROUNDS } else { 1 };
    println!("{}", machine());
    println!(
        "load: one generator thread (hand-rolled HTTP/2 for gRPC rows, sleeping {:?} between looks at its sockets), {} connections, {} calls in flight, {} users, {:?} per row after {:?} warm-up, {rounds} round(s)\n",
        rls_raw::PACE,
        load.connections,
        load.in_flight,
        load.users,
        load.duration,
        load.warmup
    );
    let config = tempfile::tempdir().expect("a temp dir");
    std::fs::write(config.path().join("bench.yaml"), rls_raw::LIMITS).expect("limits written");
    let config = config.path().to_str().expect("a UTF-8 path").to_string();
    let wanted = |section: &str| only.as_deref().is_none_or(|only| only == section);
    let mut table = Table::default();
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        if wanted("memory") {
            memory_rows(&mut table, load, &config);
        }
        if wanted("redis") {
            redis_rows(&mut table, load, &config);
        }
        if wanted("cluster") {
            cluster_rows(&mut table, load, &config);
        }
    }
    table.print();
    if let Some((generator, server)) = table.generator_share() {
        println!(
            "\nthe load generator's own CPU per call: {generator:.1} µs, {:.0}% of the servers' {server:.1} µs (medians over the rows with a server)",
            100.0 * generator / server
        );
    }
    if wanted("footprint") {
        memory_footprint(if full { LIVE_COUNTERS } else { 10_000 });
    }
}

/// The do-nothing server and ours on memory, alternating.
fn memory_rows(table: &mut Table, load: Load, config: &str) {
    let noop = Noop::start();
    table.add(NOOP_1, None, &grpc(&noop.address, noop.pid(), 1, load, &[]));
    let ours = Node::start(&["--config", config]);
    let address = ours.grpc_addr.to_string();
    table.add(
        MEMORY_1,
        Some(NOOP_1),
        &grpc(&address, ours.pid(), 1, load, &[]),
    );
    table.add(
        MEMORY_5,
        Some(MEMORY_1),
        &grpc(&address, ours.pid(), 5, load, &[]),
    );
    table.add(
        NOOP_5,
        Some(NOOP_1),
        &grpc(&noop.address, noop.pid(), 5, load, &[]),
    );
}

/// On one redis-server: the script pipelined, the store's calls, then the service.
fn redis_rows(table: &mut Table, load: Load, config: &str) {
    let redis = RedisServer::start();
    let redis_pid = redis.pid().expect("redis-server runs");
    let watch = Watch {
        server: None,
        redis: vec![redis_pid],
    };
    let sha = counting_script_sha(&redis);
    let address = format!("127.0.0.1:{}", redis.port);
    let pipelined = load::generate(load, watch.clone(), move || async move {
        let calls: Vec<_> = (0..load.users).map(script_call).collect();
        redis_pipeline::workers(&address, &sha, &calls, load).await
    });
    table.add(REDIS_PIPELINED, None, &pipelined);
    let url = redis.url();
    let through_store = load::generate(load, watch, move || async move {
        store_workers(&url, load).await
    });
    table.add(REDIS_STORE, Some(REDIS_PIPELINED), &through_store);
    let url = redis.url();
    let ours = Node::start(&[
        "--config",
        config,
        "--redis-url",
        &url,
        "--redis-timeout",
        "1s",
    ]);
    let address = ours.grpc_addr.to_string();
    let measured = grpc(&address, ours.pid(), 1, load, &[redis_pid]);
    table.add(REDIS_1, Some(NOOP_1), &measured);
}

fn cluster_rows(table: &mut Table, load: Load, config: &str) {
    let cluster = RedisCluster::start();
    let pids: Vec<u32> = cluster.nodes.iter().filter_map(RedisServer::pid).collect();
    let url = cluster.url();
    let flags = ["--redis-url", &url, "--redis-type", "cluster"];
    let ours = Node::start(&[&["--config", config, "--redis-timeout", "1s"], &flags[..]].concat());
    let address = ours.grpc_addr.to_string();
    table.add(
        CLUSTER_1,
        Some(NOOP_1),
        &grpc(&address, ours.pid(), 1, load, &pids),
    );
}

/// One row of `ShouldRateLimit` calls with `descriptors` descriptors at a server process, the
/// generator paced (see [`Load::pace`]).
fn grpc(address: &str, pid: u32, descriptors: usize, load: Load, redis: &[u32]) -> Measured {
    println!("  (server pid {pid}, {descriptors} descriptor(s))");
    let load = Load {
        pace: rls_raw::PACE,
        ..load
    };
    let watch = Watch {
        server: Some(pid),
        redis: redis.to_vec(),
    };
    let address = address.to_string();
    load::generate(load, watch, move || async move {
        rls_raw::workers(&address, descriptors, load).await
    })
}

/// Workers that each make one store call per turn, as the service would for one descriptor.
async fn store_workers(url: &str, load: Load) -> Vec<impl AsyncFnMut(u32) -> Turn + use<>> {
    let connected = Rc::new(redis_store::connect(url, &[], PREFIX).await);
    let ops: Rc<[Vec<CounterOp>]> = (0..load.users).map(ops).collect();
    (0..load.in_flight)
        .map(|_| {
            let (connected, ops) = (connected.clone(), ops.clone());
            async move |user: u32| {
                let ops = &ops[user as usize % ops.len()];
                Turn::one(connected.store.apply(ops).await.is_ok())
            }
        })
        .collect()
}

/// The counter operation the service makes for `rls_raw::request(1, user)`.
fn ops(user: u32) -> Vec<CounterOp> {
    let value = format!("user-{user}");
    let level = Level::AnyValue {
        key: "d0",
        value: &value,
    };
    vec![CounterOp {
        key: key::encode("bench", Scope::Rule { window_secs: 3_600 }, [level]),
        window_secs: 3_600,
        delta: 1,
        limit: u64::MAX,
    }]
}

/// The same operation as the store sends it to Redis.
fn script_call(user: u32) -> redis_pipeline::Call {
    let [op] = <[CounterOp; 1]>::try_from(ops(user)).expect("one op");
    redis_pipeline::Call {
        key: format!("{PREFIX}{}", op.key),
        window_ms: op.window_secs * 1_000,
        delta: op.delta,
    }
}

/// The SHA1 the store calls its counting script by, read from Redis's slow log around one call.
fn counting_script_sha(redis: &RedisServer) -> String {
    redis.cli(&["config", "set", "slowlog-log-slower-than", "0"]);
    let url = redis.url();
    runtime().block_on(async {
        let connected = redis_store::connect(&url, &[], PREFIX).await;
        connected.store.apply(&ops(0)).await.expect("counted");
    });
    let log = redis.cli(&["slowlog", "get", "128"]);
    redis.cli(&["config", "set", "slowlog-log-slower-than", "10000"]);
    redis.cli(&["slowlog", "reset"]);
    log.lines()
        .skip_while(|line| !line.eq_ignore_ascii_case("evalsha"))
        .nth(1)
        .expect("the store called its script by EVALSHA")
        .to_string()
}

/// The service's resident memory idle and with `counters` live counters in the memory store.
fn memory_footprint(counters: u32) {
    let limits = "domain: rss\ndescriptors:\n  - {key: user, rate_limit: {unit: hour, requests_per_unit: 1000}}\n";
    let config = tempfile::tempdir().expect("a temp dir");
    std::fs::write(config.path().join("rss.yaml"), limits).expect("limits written");
    // Room for uneven shards, so that every counter stays live.
    let capacity = (u64::from(counters) * 11 / 10).to_string();
    let config = config.path().to_str().expect("UTF-8");
    let server = Node::start(&["--config", config, "--memory-max-counters", &capacity]);
    let idle = procfs::rss_kib(server.pid());
    let started = Instant::now();
    runtime().block_on(async {
        let mut client = envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::connect(format!("http://{}", server.grpc_addr))
            .await
            .expect("the service answers");
        let per_request = 64;
        for first in (0..counters).step_by(per_request) {
            let mut request = rls_raw::request(0, 0);
            request.domain = "rss".into();
            request.descriptors = (first..(first + per_request as u32).min(counters))
                .map(|user| rls_raw::request(1, user).descriptors.remove(0))
                .map(|mut descriptor| {
                    descriptor.entries[0].key = "user".into();
                    descriptor
                })
                .collect();
            client.should_rate_limit(request).await.expect("counted");
        }
    });
    let filled = procfs::rss_kib(server.pid());
    println!(
        "\nmemory store RSS: idle {:.1} MiB; with {counters} live counters {:.1} MiB ({:.0} bytes per counter; filled in {:?})",
        idle as f64 / 1024.0,
        filled as f64 / 1024.0,
        (filled - idle) as f64 * 1024.0 / f64::from(counters),
        started.elapsed()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The do-nothing server: this bench as a child process, killed when dropped.
struct Noop {
    child: Child,
    address: String,
}

impl Noop {
    /// Starts it on a loopback port it picks itself, and reads that port from its first line.
    fn start() -> Noop {
        let mut child = Command::new(std::env::current_exe().expect("this bench's path"))
            .arg("--serve-noop")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the do-nothing server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("the do-nothing server says where it serves");
        let address = line
            .trim()
            .strip_prefix(SERVING)
            .unwrap_or_else(|| panic!("the do-nothing server said {line:?}"))
            .to_string();
        Noop { child, address }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Noop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The do-nothing RLS: answers every descriptor OK and does nothing else.
struct DoNothing;

#[tonic::async_trait]
impl RateLimitService for DoNothing {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let statuses = request
            .into_inner()
            .descriptors
            .iter()
            .map(|_| DescriptorStatus {
                code: Code::Ok as i32,
                ..Default::default()
            })
            .collect();
        Ok(tonic::Response::new(RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses,
            ..Default::default()
        }))
    }
}

/// What the do-nothing server prints before its address, once it listens.
const SERVING: &str = "serving gRPC on ";

/// Serves the do-nothing RLS on a loopback port of its own, on the same runtime and tonic
/// settings as the service, and prints where.
fn serve_noop() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("a bound address");
        println!("{SERVING}{address}");
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(RateLimitServiceServer::new(DoNothing))
            .serve_with_incoming(incoming)
            .await
            .expect("the do-nothing server runs");
    });
}

/// What the numbers were measured on.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "machine: {cores} cores, {cpu}; servers, Redis and the load generator share them; CPU per call from /proc"
    )
}
