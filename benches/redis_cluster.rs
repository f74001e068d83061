//! What a request's size costs on a 3-master Redis Cluster: the latency of counting one
//! descriptor, of counting ten in one store call (grouped by hash slot, sent at once), and, for
//! contrast, of ten one-key calls in series (the Go service's default on Cluster). The ratio of
//! ten to one is the number that matters; it is measured against the one-key baseline in the
//! same run, on a cluster this runner starts on free loopback ports.
//!
//! `cargo bench --bench redis_cluster` (needs redis-server and redis-cli: `scripts/setup`).

#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use ratelimiter::health::Health;
use ratelimiter::settings::{Cli, Command};
use ratelimiter::store::redis::RedisLink;
use ratelimiter::store::{Count, CounterOp, CounterStore, RedisStore, StoreError};
use redis::cluster_routing::Slot;
use tokio_util::sync::CancellationToken;

/// Calls per measured shape; enough for a stable median and p99 on loopback.
const ROUNDS: usize = 3_000;

/// Calls before measuring, to load the scripts and warm the connections.
const WARMUP: usize = 300;

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
    let cluster = redis_harness::RedisCluster::start();
    let url = cluster.url();
    let Command::Serve(settings) = Cli::parse_from([
        "ratelimiter",
        "serve",
        "--redis-url",
        &url,
        "--redis-type",
        "cluster",
        "--redis-timeout",
        "1s",
    ])
    .command
    else {
        unreachable!("parsed a serve command")
    };
    let stop = CancellationToken::new();
    let health = Arc::new(Health::new(SystemTime::now()));
    let url = settings.redis_url.as_ref().expect("a URL was given");
    let link = RedisLink::start(url, &settings.redis, health, stop.clone())
        .await
        .expect("the cluster is reachable");
    let store = RedisStore::new(link, "bench:");

    let ops: Vec<CounterOp> = (0..DESCRIPTORS)
        .map(|index| CounterOp {
            key: format!("1|bench|60|user={index}"),
            window_secs: 60,
            delta: 1,
        })
        .collect();
    let one = &ops[..1];
    let slots: std::collections::HashSet<Slot> = ops
        .iter()
        .map(|op| Slot::for_key(format!("bench:{}", op.key)))
        .collect();

    for _ in 0..WARMUP {
        store.apply(one).await.expect("counted");
        store.apply(&ops).await.expect("counted");
    }
    // Interleaved, so that both shapes see the same machine load.
    let mut single = Vec::with_capacity(ROUNDS);
    let mut batched = Vec::with_capacity(ROUNDS);
    let mut serial = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        single.push(time(|| store.apply(one)).await);
        batched.push(time(|| store.apply(&ops)).await);
        let started = Instant::now();
        for op in &ops {
            store
                .apply(std::slice::from_ref(op))
                .await
                .expect("counted");
        }
        serial.push(started.elapsed());
    }
    let (single_median, single_p99) = summary(&mut single);
    let (batched_median, batched_p99) = summary(&mut batched);
    let (serial_median, serial_p99) = summary(&mut serial);
    let keys_per_master: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| node.cli(&["dbsize"]).trim().to_string())
        .collect();
    println!(
        "3-master cluster; the {DESCRIPTORS} keys span {} hash slots; keys per master: {}",
        slots.len(),
        keys_per_master.join(", ")
    );
    println!("{ROUNDS} calls each, median / p99:");
    println!("  1 descriptor:                      {single_median:>9.1?} / {single_p99:>9.1?}");
    println!(
        "  {DESCRIPTORS} descriptors, one store call:    {batched_median:>9.1?} / {batched_p99:>9.1?}"
    );
    println!(
        "  {DESCRIPTORS} descriptors, one call per key:  {serial_median:>9.1?} / {serial_p99:>9.1?}"
    );
    println!(
        "ratio {DESCRIPTORS} / 1 descriptor (medians): {:.2} (one call per key in series: {:.2})",
        batched_median.as_secs_f64() / single_median.as_secs_f64(),
        serial_median.as_secs_f64() / single_median.as_secs_f64()
    );
    stop.cancel();
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
