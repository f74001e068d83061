//! One `/api/counters` page on a big store: fills the memory store with 1,000,000 counters
//! (10,000 when `cargo test` runs this to keep it building), then times the store's `list` for
//! the first page, the next one, and a page whose prefix matches nothing (it stops at its scan
//! budget). Run with `cargo bench --bench counters_page`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratelimiter::clock::SystemClock;
use ratelimiter::key::{self, Level, Scope};
use ratelimiter::store::{CounterOp, CounterStore, MemoryStore};

/// Timed runs per case; the median is reported.
const RUNS: usize = 101;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let counters: u32 = if full { 1_000_000 } else { 10_000 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime starts");
    // Twice the counters, so that uneven shards never evict.
    let store = MemoryStore::new(2 * counters as usize, Arc::new(SystemClock));

    let started = Instant::now();
    let batch: Vec<u32> = (0..counters).collect();
    for chunk in batch.chunks(1_000) {
        let ops: Vec<CounterOp> = chunk.iter().map(|&index| op(index)).collect();
        runtime
            .block_on(store.apply(&ops))
            .expect("the memory store answers");
    }
    println!("filled {} counters in {:?}", store.len(), started.elapsed());

    for limit in [100, 1_000] {
        let first = runtime
            .block_on(store.list("", None, limit))
            .expect("a first page");
        let next = first.next_cursor.clone().expect("a big store has more");
        report(&format!("first page of {limit}"), || {
            runtime
                .block_on(store.list("", None, limit))
                .map(|p| p.counters.len())
        });
        report(&format!("next page of {limit}"), || {
            runtime
                .block_on(store.list("", Some(&next), limit))
                .map(|p| p.counters.len())
        });
        report(&format!("page of {limit}, prefix matching nothing"), || {
            runtime
                .block_on(store.list("1|nowhere|", None, limit))
                .map(|p| p.counters.len())
        });
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
    }
}

fn report<E: std::fmt::Debug>(case: &str, mut page: impl FnMut() -> Result<usize, E>) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            black_box(page().expect("the memory store answers"));
            started.elapsed()
        })
        .collect();
    times.sort_unstable();
    let listed = page().expect("the memory store answers");
    println!(
        "{case}: {listed} counters, median {:?}, fastest {:?}",
        times[RUNS / 2],
        times[0]
    );
}
