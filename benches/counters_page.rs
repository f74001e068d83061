//! One `/api/counters` page on a big store: fills the memory store with 1,000,000 counters and a
//! local redis-server with 100,000 (a few thousand when `cargo test` runs this to keep it
//! building), then times the store's `list` for the first page, the next one, and a page whose
//! prefix matches nothing (it stops at its scan budget). A page's cost must not grow with the
//! store. Run with `cargo bench --bench counters_page` (Redis: `scripts/setup`).

#[allow(dead_code)]
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/redis.rs"]
mod redis_harness;
#[allow(dead_code)]
#[path = "../tests/common/redis_store.rs"]
mod redis_store;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratelimiter::clock::SystemClock;
use ratelimiter::key::{self, Level, Scope};
use ratelimiter::store::{CounterOp, CounterStore, MemoryStore};

/// Timed runs per case; the median is reported.
const RUNS: usize = 101;

/// Counters written per store call while filling.
const FILL_BATCH: usize = 1_000;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime starts");
    runtime.block_on(async {
        let memory_counters = if full { 1_000_000 } else { 10_000 };
        // Twice the counters, so that uneven shards never evict.
        let memory = MemoryStore::new(2 * memory_counters as usize, Arc::new(SystemClock));
        measure("memory", &memory, memory_counters).await;

        let redis_counters = if full { 100_000 } else { 2_000 };
        let server = redis_harness::RedisServer::start();
        let redis = redis_store::connect(&server.url(), &[], "ratelimit:").await;
        measure("redis", &*redis.store, redis_counters).await;
    });
}

/// Fills `store` with `counters` counters, then times pages of it.
async fn measure(name: &str, store: &dyn CounterStore, counters: u32) {
    let started = Instant::now();
    let all: Vec<u32> = (0..counters).collect();
    for chunk in all.chunks(FILL_BATCH) {
        let ops: Vec<CounterOp> = chunk.iter().map(|&index| op(index)).collect();
        store.apply(&ops).await.expect("the store counts");
    }
    println!(
        "{name}: filled {counters} counters in {:?}",
        started.elapsed()
    );
    for limit in [100, 1_000] {
        let first = store.list("", None, limit).await.expect("a first page");
        let next = first.next_cursor.clone().expect("a big store has more");
        report(name, &format!("first page of {limit}"), || {
            store.list("", None, limit)
        })
        .await;
        report(name, &format!("next page of {limit}"), || {
            store.list("", Some(&next), limit)
        })
        .await;
        report(
            name,
            &format!("page of {limit}, prefix matching nothing"),
            || store.list("1|nowhere|", None, limit),
        )
        .await;
    }
}

/// A counter shaped like the RLS's: one client address under a per-hour rule.
fn op(index: u32) -> CounterOp {
    let address = Ipv4Addr::from(0x0a00_0000 | index).to_string();
    let key = key::encode(
        "edge",
        Scope::Rule { window_secs: 3_600 },
        [Level::AnyValue {
            key: "remote_address",
            value: &address,
        }],
    );
    CounterOp {
        key,
        window_secs: 3_600,
        delta: 1,
        limit: u64::MAX,
    }
}

async fn report<F, Fut, E>(store: &str, case: &str, mut page: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<ratelimiter::store::CounterPage, E>>,
    E: std::fmt::Debug,
{
    let mut times = Vec::with_capacity(RUNS);
    let mut listed = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        listed = black_box(page().await.expect("the store lists"))
            .counters
            .len();
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let median: Duration = times[RUNS / 2];
    println!(
        "{store}: {case}: {listed} counters, median {median:?}, fastest {:?}",
        times[0]
    );
}
