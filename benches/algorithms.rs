//! Each algorithm, and a two-limit list, against `fixed_window` in one run: the whole decision
//! (validate, match, count, respond) on the memory store; and on a local redis-server the whole
//! call (one script call per request, one call at a time), with the CPU it costs: this process's
//! (the service's side: deciding, encoding, the Redis client) and redis-server's, both from
//! `/proc/<pid>/stat`. On a busy shared machine the wall time of a loopback round trip moves
//! with the neighbours; the CPU per call does not. Cases are measured in interleaved rounds,
//! reported as medians and as ratios to `fixed_window`.
//!
//! `cargo bench --bench algorithms` (needs redis-server: `scripts/setup`). Run without
//! `--bench` (as `cargo test --all-targets` does), it makes a few calls of each case, as a smoke
//! test.

#[allow(dead_code)]
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "support/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;
#[allow(dead_code)]
#[path = "../tests/common/redis_store.rs"]
mod redis_store;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ratelimiter::clock::SystemClock;
use ratelimiter::config::Config;
use ratelimiter::limiter::Limiter;
use ratelimiter::metrics::Metrics;
use ratelimiter::rls::request::validate;
use ratelimiter::rls::response::build;
use ratelimiter::rls::{RequestLimits, ResponseOptions};
use ratelimiter::server::options;
use ratelimiter::settings::{Cli, Command, ServeSettings};
use ratelimiter::store::{CounterStore, MemoryStore};

/// Limits so high that nothing is ever refused: every case does its full work each call.
const LIMITS: &str = "
domain: bench
descriptors:
  - {key: fixed_window, rate_limit: {unit: hour, requests_per_unit: 1000000000}}
  - {key: sliding_window, rate_limit: {unit: hour, requests_per_unit: 1000000000, algorithm: sliding_window}}
  - {key: token_bucket, rate_limit: {unit: second, requests_per_unit: 1000000, algorithm: token_bucket, burst: 1000000000}}
  - key: two-limit list
    rate_limit:
      - {unit: hour, requests_per_unit: 1000000000}
      - {unit: minute, requests_per_unit: 1000000000, algorithm: sliding_window}
";

/// The cases, by descriptor key; the first is the baseline.
const CASES: [&str; 4] = [
    "fixed_window",
    "sliding_window",
    "token_bucket",
    "two-limit list",
];

/// Users per case: each call counts a counter of its own among these.
const USERS: usize = 1_000;

/// Interleaved rounds; each case's median over them is reported.
const ROUNDS: usize = 7;

/// Calls per case and round: on memory, and on Redis (where a call is a loopback round trip,
/// and enough calls make the CPU time, counted in 10 ms ticks, exact to about 1%).
const MEMORY_CALLS: usize = 100_000;
const REDIS_CALLS: usize = 20_000;

/// Calls per case in a smoke run.
const SMOKE_CALLS: usize = 20;

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (rounds, memory_calls, redis_calls) = if measuring {
        (ROUNDS, MEMORY_CALLS, REDIS_CALLS)
    } else {
        (1, SMOKE_CALLS, SMOKE_CALLS)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");

    let memory = Bench::new(
        Arc::new(MemoryStore::new(1_000_000, Arc::new(SystemClock))),
        &settings(&[]),
    );
    let per_call = measure(rounds, |case| {
        let started = Instant::now();
        runtime.block_on(memory.calls(case, memory_calls));
        [started.elapsed() / memory_calls as u32]
    });
    report(
        "memory store: whole decision per call",
        &["per call"],
        &per_call,
    );

    let redis = redis_harness::RedisServer::start();
    let pid = redis.pid().expect("redis-server runs");
    let connected = runtime.block_on(redis_store::connect(&redis.url(), &[], "bench:"));
    let remote = Bench::new(
        connected.store.clone(),
        &settings(&["--redis-url", &redis.url()]),
    );
    runtime.block_on(remote.calls(0, SMOKE_CALLS));
    let own = std::process::id();
    let per_call = measure(rounds, |case| {
        let (service, redis) = (procfs::process_cpu(own), procfs::process_cpu(pid));
        let started = Instant::now();
        runtime.block_on(remote.calls(case, redis_calls));
        let elapsed = started.elapsed();
        let service = procfs::process_cpu(own) - service;
        let redis = procfs::process_cpu(pid) - redis;
        [elapsed, service, redis, service + redis].map(|total| total / redis_calls as u32)
    });
    report(
        "redis-server (single, loopback), per call",
        &["wall", "service CPU", "redis-server CPU", "CPU, both"],
        &per_call,
    );
}

/// The service's settings with nothing but `flags` given.
fn settings(flags: &[&str]) -> ServeSettings {
    let args = ["ratelimiter", "serve"].iter().chain(flags);
    match Cli::parse_from(args).command {
        Command::Serve(settings) => *settings,
        Command::Validate { .. } => unreachable!("parsed a serve command"),
    }
}

/// A limiter on a store, as the service sets one up by default, with the requests of every
/// case ready.
struct Bench {
    limiter: Limiter,
    bounds: RequestLimits,
    responses: ResponseOptions,
    requests: Vec<Vec<RateLimitRequest>>,
}

impl Bench {
    fn new(store: Arc<dyn CounterStore>, settings: &ServeSettings) -> Bench {
        let config = Config::from_sources([("bench.yaml", LIMITS)]).expect("valid limits");
        let metrics = Arc::new(Metrics::new(100));
        let limiter = Limiter::new(store, metrics, options::limiter(settings));
        limiter.install(config);
        let requests = CASES
            .iter()
            .map(|case| (0..USERS).map(|user| request(case, user)).collect())
            .collect();
        Bench {
            limiter,
            bounds: options::request_limits(settings),
            responses: options::responses(settings),
            requests,
        }
    }

    /// `calls` whole decisions of case `case`, one after another, over its users.
    async fn calls(&self, case: usize, calls: usize) {
        for call in 0..calls {
            let request = &self.requests[case][call % USERS];
            let check = validate(request, &self.bounds).expect("a valid request");
            let decision = self.limiter.check(&check).await.expect("counted");
            assert!(!decision.over_limit, "the bench's limits admit everything");
            black_box(build(request, &decision, &self.responses));
        }
    }
}

fn request(case: &str, user: usize) -> RateLimitRequest {
    RateLimitRequest {
        domain: "bench".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: case.into(),
                value: format!("user-{user}"),
            }],
            ..Default::default()
        }],
        hits_addend: 1,
    }
}

/// Each case's medians of what `one` measures of it, over `rounds` interleaved rounds.
fn measure<const N: usize>(
    rounds: usize,
    mut one: impl FnMut(usize) -> [Duration; N],
) -> Vec<[Duration; N]> {
    let mut samples: Vec<Vec<[Duration; N]>> = vec![Vec::new(); CASES.len()];
    for _ in 0..rounds {
        for (case, samples) in samples.iter_mut().enumerate() {
            samples.push(one(case));
        }
    }
    samples
        .into_iter()
        .map(|samples| {
            std::array::from_fn(|column| {
                let mut values: Vec<Duration> = samples.iter().map(|row| row[column]).collect();
                values.sort();
                values[values.len() / 2]
            })
        })
        .collect()
}

/// A markdown table: each case's figures and their ratios to the first case's.
fn report<const N: usize>(title: &str, columns: &[&str; N], per_call: &[[Duration; N]]) {
    println!("\n{title}\n");
    let header: String = columns
        .iter()
        .map(|name| format!(" {name} | ratio |"))
        .collect();
    println!("| case |{header}");
    println!("|---|{}", "---|---|".repeat(N));
    for (case, figures) in CASES.iter().zip(per_call) {
        let cells: String = figures
            .iter()
            .zip(&per_call[0])
            .map(|(value, base)| {
                let ratio = value.as_secs_f64() / base.as_secs_f64().max(1e-12);
                format!(" {:.2} µs | {ratio:.2}x |", micros(*value))
            })
            .collect();
        println!("| {case} |{cells}");
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
