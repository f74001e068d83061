//! The behaviour every counter store promises (`common::contract`), run on the memory store, plus
//! what only the memory store does (bounded size, sweeping, eviction accounting).

use std::sync::Arc;
use std::time::Duration;

use crate::common::contract::{contract, op, values};
use ratelimiter::clock::{Clock, ManualClock};
use ratelimiter::store::{CounterStore, MemoryStore};

fn memory_store(max_counters: usize) -> (Arc<MemoryStore>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000_000_000));
    (
        Arc::new(MemoryStore::new(max_counters, clock.clone())),
        clock,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_store_keeps_the_contract() {
    let (store, _clock) = memory_store(1_000);
    contract(store, "").await;
}

#[tokio::test]
async fn a_new_window_starts_from_zero_at_the_epoch_aligned_boundary() {
    let (store, clock) = memory_store(1_000);
    assert_eq!(clock.now_ms() % 60_000, 40_000);
    assert_eq!(values(&*store, &[op("k", 60, 5)]).await, [5]);
    clock.advance(Duration::from_millis(19_999));
    assert_eq!(values(&*store, &[op("k", 60, 1)]).await, [6]);
    clock.advance(Duration::from_millis(1));
    assert_eq!(values(&*store, &[op("k", 60, 1)]).await, [1]);
}

#[tokio::test]
async fn the_memory_store_stays_within_its_capacity_and_counts_live_evictions() {
    let (store, _clock) = memory_store(64);
    for index in 0..1_000 {
        store
            .apply(&[op(&format!("key-{index}"), 3600, 1)])
            .await
            .unwrap();
    }
    assert!(store.len() <= 64, "{} counters held", store.len());
    assert!(
        store.len() >= 32,
        "eviction is not wholesale: {}",
        store.len()
    );
    assert_eq!(store.live_evictions(), 1_000 - store.len() as u64);
}

/// Requests choose how long keys are: a store full of long keys stays within its bytes, and
/// evicts to make room as it does when it holds too many counters.
#[tokio::test]
async fn the_memory_store_stays_within_its_bytes_however_long_the_keys() {
    let max_bytes = 512 * 1024;
    let (store, _clock) = memory_store(1_000_000);
    let store = Arc::into_inner(store).unwrap().with_max_bytes(max_bytes);
    let padding = "x".repeat(1_000);
    for index in 0..2_000 {
        store
            .apply(&[op(&format!("{padding}-{index}"), 3600, 1)])
            .await
            .unwrap();
    }
    assert!(
        store.footprint_bytes() <= max_bytes,
        "{} bytes held",
        store.footprint_bytes()
    );
    assert!(
        store.len() >= 200,
        "eviction is not wholesale: {}",
        store.len()
    );
    assert_eq!(store.live_evictions(), 2_000 - store.len() as u64);

    // Short keys fit many more into the same bytes.
    for index in 0..2_000 {
        store
            .apply(&[op(&format!("k{index}"), 3600, 1)])
            .await
            .unwrap();
    }
    assert!(store.footprint_bytes() <= max_bytes);
    assert!(store.len() > 2_000, "{} counters held", store.len());
}

#[tokio::test]
async fn ended_windows_are_dropped_before_live_counters() {
    // 100 counters per shard; 3,200 of each kind fill about half the shards past capacity.
    let (store, clock) = memory_store(6_400);
    for index in 0..3_200 {
        store
            .apply(&[op(&format!("old-{index}"), 1, 1)])
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 3_200);
    clock.advance(Duration::from_secs(2));
    for index in 0..3_200 {
        store
            .apply(&[op(&format!("new-{index}"), 3600, 1)])
            .await
            .unwrap();
    }
    assert_eq!(store.live_evictions(), 0, "only ended windows had to go");
    assert!(
        store.len() < 6_000,
        "full shards dropped their ended windows: {}",
        store.len()
    );
}

#[tokio::test]
async fn the_sweep_drops_ended_windows_and_keeps_live_ones() {
    let (store, clock) = memory_store(1_000);
    store
        .apply(&[op("short", 1, 1), op("long", 3600, 1)])
        .await
        .unwrap();
    assert_eq!(store.sweep(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.sweep(), 1);
    assert_eq!(store.len(), 1);
    assert_eq!(values(&*store, &[op("long", 3600, 0)]).await, [1]);
}

#[tokio::test]
async fn checking_a_counter_that_does_not_exist_stores_nothing() {
    let (store, _clock) = memory_store(1_000);
    for index in 0..100 {
        store
            .apply(&[op(&format!("probe-{index}"), 60, 0)])
            .await
            .unwrap();
    }
    assert!(store.is_empty());
}
