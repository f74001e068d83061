//! The load benchmark: every server on loopback driven by the same tonic client in one run, each
//! row next to its ceiling measured in the same run.
//!
//! - ceiling: a do-nothing RLS server (answers OK, counts nothing) built on the same tonic stack;
//! - ratelimiter on the memory store, on a local redis-server, on a local 3-master Cluster;
//! - the Redis ceilings: the store's own scripts, pipelined the same way, sent straight at Redis
//!   from this process with no gRPC and no service in between.
//!
//! Then memory: the service's RSS idle and with 1,000,000 live counters.
//!
//! `cargo bench --bench grpc` (needs redis-server and redis-cli: `scripts/setup`). Without
//! `--bench` (as `cargo test --all-targets` runs it) every row runs briefly, as a smoke test.

#[path = "support/load.rs"]
mod load;
#[allow(dead_code)]
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;
#[allow(dead_code)]
#[path = "../tests/common/redis_store.rs"]
mod redis_store;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use load::{Load, Measured};
use process::Node;
use ratelimiter::key::{self, Level, Scope};
use ratelimiter::store::{CounterOp, CounterStore};
use redis_harness::{RedisCluster, RedisServer};

/// Rounds of the whole table in a measuring run; each row reports its median.
const ROUNDS: usize = 3;

/// Counters for the memory measurement.
const LIVE_COUNTERS: u32 = 1_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|flag| flag == "--serve-noop") {
        serve_noop();
        return;
    }
    let full = args.iter().any(|arg| arg == "--bench");
    // `--only <section>` runs one section (to profile it, say): ceiling, memory, redis,
    // cluster or footprint.
    let only = args
        .iter()
        .position(|arg| arg == "--only")
        .and_then(|at| args.get(at + 1).cloned());
    let load = if full {
        Load {
            connections: 4,
            in_flight: 64,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            users: 10_000,
        }
    } else {
        Load {
            connections: 2,
            in_flight: 8,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
            users: 100,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(load, full, only.as_deref()));
}

async fn run(load: Load, full: bool, only: Option<&str>) {
    // Rounds of every section, interleaved, so that a noisy moment of a shared machine skews one
    // sample of each row rather than one row.
    let rounds = if full { ROUNDS } else { 1 };
    println!("{}", machine());
    println!(
        "load: {} connections, {} calls in flight, {} users, {:?} per row after {:?} warm-up, {rounds} round(s)\n",
        load.connections, load.in_flight, load.users, load.duration, load.warmup
    );
    let config = tempfile::tempdir().expect("a temp dir");
    std::fs::write(config.path().join("bench.yaml"), load::LIMITS).expect("limits written");
    let config = config.path().to_str().expect("a UTF-8 path").to_string();
    let wanted = |section: &str| only.is_none_or(|only| only == section);
    let mut table = Table::default();
    for round in 1..=rounds {
        println!("round {round} of {rounds}");
        if wanted("ceiling") {
            ceiling_rows(&mut table, load).await;
        }
        if wanted("memory") {
            memory_rows(&mut table, load, &config).await;
        }
        if wanted("redis") {
            let redis = RedisServer::start();
            let name = "local redis-server";
            redis_rows(&mut table, load, &config, &redis.url(), &[], name, [1, 5]).await;
        }
        if wanted("cluster") {
            let cluster = RedisCluster::start();
            let (flags, name) = (["--redis-type", "cluster"], "local 3-master Cluster");
            redis_rows(
                &mut table,
                load,
                &config,
                &cluster.url(),
                &flags,
                name,
                [1, 10],
            )
            .await;
        }
    }
    table.print();
    if wanted("footprint") {
        memory_footprint(if full { LIVE_COUNTERS } else { 10_000 }).await;
    }
}

fn ceiling_name(descriptors: usize) -> String {
    format!("ceiling: do-nothing RLS server, {descriptors} descriptor(s)")
}

/// The do-nothing server at 1, 5 and 10 descriptors.
async fn ceiling_rows(table: &mut Table, load: Load) {
    let noop = Server::noop();
    for descriptors in [1, 5, 10] {
        let measured = load::grpc(&noop.grpc, descriptors, load).await;
        table.add(&ceiling_name(descriptors), None, &measured);
    }
}

async fn memory_rows(table: &mut Table, load: Load, config: &str) {
    let memory = Server::ratelimiter(&["--config", config]);
    for descriptors in [1, 5] {
        let measured = load::grpc(&memory.grpc, descriptors, load).await;
        let name = format!("ratelimiter, memory store, {descriptors} descriptor(s)");
        table.add(&name, Some(&ceiling_name(descriptors)), &measured);
    }
}

/// For each size: the store's scripts straight at Redis, then the service on that Redis.
async fn redis_rows(
    table: &mut Table,
    load: Load,
    config: &str,
    url: &str,
    flags: &[&str],
    redis: &str,
    sizes: [usize; 2],
) {
    let mut args = vec![
        "--config",
        config,
        "--redis-url",
        url,
        "--redis-timeout",
        "1s",
    ];
    args.extend_from_slice(flags);
    let service = Server::ratelimiter(&args);
    for descriptors in sizes {
        let direct = redis_ceiling(url, flags, descriptors, load).await;
        let ceiling = format!(
            "Redis ceiling: the store's scripts straight at the {redis}, {descriptors} counter(s)"
        );
        table.add(&ceiling, None, &direct);
        let measured = load::grpc(&service.grpc, descriptors, load).await;
        let name = format!("ratelimiter, {redis}, {descriptors} descriptor(s)");
        table.add(&name, Some(&ceiling), &measured);
    }
}

/// One measurement of a row.
#[derive(Clone, Copy)]
struct Sample {
    per_second: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    errors: u64,
}

/// A row: its samples (one per round) and the row it is compared against.
struct Row {
    name: String,
    ceiling: Option<String>,
    samples: Vec<Sample>,
}

/// Every row of every round; printed as medians, so one noisy round does not decide.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn add(&mut self, name: &str, ceiling: Option<&str>, measured: &Measured) {
        let sample = Sample {
            per_second: measured.per_second(),
            p50: measured.micros(0.5),
            p99: measured.micros(0.99),
            p999: measured.micros(0.999),
            errors: measured.errors,
        };
        println!(
            "  {name}: {:.0}/s, p50 {} µs, p99 {} µs",
            sample.per_second, sample.p50, sample.p99
        );
        match self.rows.iter_mut().find(|row| row.name == name) {
            Some(row) => row.samples.push(sample),
            None => self.rows.push(Row {
                name: name.to_string(),
                ceiling: ceiling.map(str::to_string),
                samples: vec![sample],
            }),
        }
    }

    /// The median of each number over a row's samples.
    fn median(&self, name: &str) -> Option<Sample> {
        let row = self.rows.iter().find(|row| row.name == name)?;
        let middle = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let of = |number: fn(&Sample) -> f64| middle(row.samples.iter().map(number).collect());
        Some(Sample {
            per_second: of(|s| s.per_second),
            p50: of(|s| s.p50 as f64) as u64,
            p99: of(|s| s.p99 as f64) as u64,
            p999: of(|s| s.p999 as f64) as u64,
            errors: row.samples.iter().map(|s| s.errors).sum(),
        })
    }

    fn print(&self) {
        println!(
            "\n| row | requests/s | p50 µs | p99 µs | p99.9 µs | errors | requests/s vs ceiling | p99 vs ceiling |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let Some(this) = self.median(&row.name) else {
                continue;
            };
            let versus = match row
                .ceiling
                .as_deref()
                .and_then(|ceiling| self.median(ceiling))
            {
                Some(c) => format!(
                    "{:.0}% | {:.2}x",
                    100.0 * this.per_second / c.per_second,
                    this.p99 as f64 / c.p99.max(1) as f64
                ),
                None => " | ".to_string(),
            };
            println!(
                "| {} | {:.0} | {} | {} | {} | {} | {versus} |",
                row.name, this.per_second, this.p50, this.p99, this.p999, this.errors
            );
        }
    }
}

/// The Redis ceiling: `descriptors` counters per call through the store itself, in process.
async fn redis_ceiling(url: &str, flags: &[&str], descriptors: usize, load: Load) -> Measured {
    let connected = redis_store::connect(url, flags, "ratelimit:").await;
    let store: Arc<dyn CounterStore> = connected.store.clone();
    load::drive(load, move |_, user| {
        let store = store.clone();
        let ops = ops(descriptors, user);
        async move { store.apply(&ops).await.is_ok() }
    })
    .await
}

/// The counter operations the service makes for `load::request(descriptors, user)`.
fn ops(descriptors: usize, user: u32) -> Vec<CounterOp> {
    let value = format!("user-{user}");
    (0..descriptors)
        .map(|index| {
            let descriptor_key = format!("d{index}");
            let level = Level::AnyValue {
                key: &descriptor_key,
                value: &value,
            };
            CounterOp {
                key: key::encode("bench", Scope::Rule { window_secs: 3_600 }, [level]),
                window_secs: 3_600,
                delta: 1,
            }
        })
        .collect()
}

/// The service's resident memory idle and with `counters` live counters in the memory store.
async fn memory_footprint(counters: u32) {
    let limits = "domain: rss\ndescriptors:\n  - {key: user, rate_limit: {unit: hour, requests_per_unit: 1000}}\n";
    let config = tempfile::tempdir().expect("a temp dir");
    std::fs::write(config.path().join("rss.yaml"), limits).expect("limits written");
    // Room for uneven shards, so that every counter stays live.
    let capacity = (u64::from(counters) * 11 / 10).to_string();
    let server = Server::ratelimiter(&[
        "--config",
        config.path().to_str().expect("UTF-8"),
        "--memory-max-counters",
        &capacity,
    ]);
    let idle = server.rss_kib();
    let mut client = envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::connect(format!("http://{}", server.grpc))
        .await
        .expect("the service answers");
    let started = Instant::now();
    let per_request = 64;
    for first in (0..counters).step_by(per_request) {
        let mut request = load::request(0, 0);
        request.domain = "rss".into();
        request.descriptors = (first..(first + per_request as u32).min(counters))
            .map(|user| load::request(1, user).descriptors.remove(0))
            .map(|mut descriptor| {
                descriptor.entries[0].key = "user".into();
                descriptor
            })
            .collect();
        client.should_rate_limit(request).await.expect("counted");
    }
    let filled = server.rss_kib();
    println!(
        "\nmemory store RSS: idle {:.1} MiB; with {counters} live counters {:.1} MiB ({:.0} bytes per counter; filled in {:?})",
        idle as f64 / 1024.0,
        filled as f64 / 1024.0,
        (filled - idle) as f64 * 1024.0 / f64::from(counters),
        started.elapsed()
    );
}

/// A server process on a loopback port it chose itself (port 0), killed when dropped.
struct Server {
    grpc: String,
    pid: u32,
    _process: Process,
}

/// What keeps a server's process: dropping it kills the process.
enum Process {
    Noop(Child),
    Ratelimiter { _node: Node },
}

impl Server {
    fn noop() -> Server {
        let mut child = Command::new(std::env::current_exe().expect("this bench's path"))
            .arg("--serve-noop")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the do-nothing server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("the do-nothing server says where it serves");
        let grpc = line
            .trim()
            .strip_prefix(SERVING)
            .unwrap_or_else(|| panic!("the do-nothing server said {line:?}"))
            .to_string();
        Server {
            grpc,
            pid: child.id(),
            _process: Process::Noop(child),
        }
    }

    fn ratelimiter(args: &[&str]) -> Server {
        let node = Node::start(args);
        Server {
            grpc: node.grpc_addr.to_string(),
            pid: node.pid(),
            _process: Process::Ratelimiter { _node: node },
        }
    }

    /// Resident set size, KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("the process is alive");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS is reported")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Process::Noop(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The ceiling: answers every descriptor OK and does nothing else.
struct Noop;

#[tonic::async_trait]
impl RateLimitService for Noop {
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
            .add_service(RateLimitServiceServer::new(Noop))
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
    format!("machine: {cores} cores, {cpu}; servers, Redis and the load generator share them")
}
