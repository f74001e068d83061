//! The embedded store: counters in this process's memory, sharded so that requests on different
//! keys do not wait for each other, bounded in size, and swept of windows that have ended.
//!
//! The bound is in counters and in bytes (each counter's key, slot and buckets), both split
//! evenly over the shards. When a shard is full, it first drops counters whose window has ended,
//! then evicts, of a few sampled counters, the one farthest from its limit (the least recently
//! used among equals). A counter at or over its limit goes only when 40 sampled counters of its
//! shard are all at or over theirs too, so a client flooding new keys cannot evict the counter
//! that is blocking it. Evicting a live counter under-counts it, so such evictions are counted
//! for the operator to see.

mod listing;
mod meter;
mod shard;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use meter::{Verdict, judge};
use shard::{Capacity, Change, Counter, Shard, lock};

use super::{BoxFuture, Count, CounterOp, CounterPage, CounterStore, StoreError, is_counted};
use crate::clock::Clock;

/// Shards (a power of two). Enough that two cores never meet on one lock by chance, few enough
/// that a full sweep stays cheap.
const SHARDS: usize = 64;

/// An odd constant with well-spread bits (2^64 / golden ratio), to mix a hash into a shard number.
const SHARD_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// How often the background sweep drops ended windows from every shard.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    clock: Arc<dyn Clock>,
    shard_capacity: Capacity,
    live_evictions: AtomicU64,
}

impl MemoryStore {
    /// A store holding at most about `max_counters` counters (rounded up to a multiple of the
    /// shard count), in as many bytes as they take (see [`MemoryStore::with_max_bytes`]).
    pub fn new(max_counters: usize, clock: Arc<dyn Clock>) -> MemoryStore {
        let hasher = foldhash::fast::RandomState::default();
        let shards = (0..SHARDS)
            .map(|index| Mutex::new(Shard::new(hasher.hash_one(index))))
            .collect();
        MemoryStore {
            shards,
            hasher,
            clock,
            shard_capacity: Capacity {
                counters: max_counters.div_ceil(SHARDS).max(1),
                bytes: usize::MAX,
            },
            live_evictions: AtomicU64::new(0),
        }
    }

    /// Bounds the counters' keys, slots and buckets to about `max_bytes` in all.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> MemoryStore {
        self.shard_capacity.bytes = (max_bytes / SHARDS).max(1);
        self
    }

    /// The bytes the held counters take, as the bound counts them.
    pub fn footprint_bytes(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).bytes()).sum()
    }

    /// Counters held now, ended windows included until they are swept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).slots.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters evicted before their window ended, since start.
    pub fn live_evictions(&self) -> u64 {
        self.live_evictions.load(Ordering::Relaxed)
    }

    /// Drops every counter whose window has ended; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_ms();
        self.shards.iter().map(|shard| lock(shard).purge(now)).sum()
    }

    /// Sweeps every [`SWEEP_INTERVAL`] until `stop` fires.
    pub async fn sweep_periodically(
        store: Arc<MemoryStore>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => { store.sweep(); }
            }
        }
    }

    /// The key's shard and hash: hashed once, for the shard and for the map inside it (which is
    /// only ever asked with this hash).
    fn locate(&self, key: &str) -> (usize, u64) {
        let hash = self.hasher.hash_one(key);
        // The map places keys by the hash's low bits and tags them with its top bits; the shard
        // is chosen by a multiplicative mix of all of them, so neither loses entropy.
        let index = (hash.wrapping_mul(SHARD_MIX) >> (64 - SHARDS.trailing_zeros())) as usize;
        (index, hash)
    }

    /// One op alone: judged and counted under its shard's lock, with one lookup of its key
    /// unless the counter must be created, replaced or dropped.
    fn apply_one(&self, op: &CounterOp, now: u64) -> Count {
        let (index, hash) = self.locate(&op.key);
        let mut shard = lock(&self.shards[index]);
        let found = shard.peek(hash, &op.key, op.capacity());
        let verdict = judge(found.as_deref(), op, now);
        if !is_counted(op, verdict.fits, verdict.fits) {
            return verdict.refused;
        }
        let change = Counter::update(found, verdict.change, now);
        self.place(&mut shard, hash, op, change, now);
        verdict.counted
    }

    /// A run of ops decided together: the shards of its keys are locked in index order (so two
    /// runs never wait for each other in a circle), every op is judged, and the hits are counted
    /// only when all of them fit (see [`is_counted`]). The ops of a run count distinct keys.
    fn apply_run(&self, ops: &[CounterOp], now: u64) -> Vec<Count> {
        let located: Vec<(usize, u64)> = ops.iter().map(|op| self.locate(&op.key)).collect();
        let mut order: Vec<usize> = located.iter().map(|&(index, _)| index).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> = order
            .iter()
            .map(|&index| lock(&self.shards[index]))
            .collect();
        let guard = |index: usize| order.binary_search(&index).unwrap_or_default();
        let verdicts: Vec<Verdict> = ops
            .iter()
            .zip(&located)
            .map(|(op, &(index, hash))| {
                let found = guards[guard(index)].peek(hash, &op.key, op.capacity());
                judge(found.as_deref(), op, now)
            })
            .collect();
        let all_fit = verdicts.iter().all(|verdict| verdict.fits);
        ops.iter()
            .zip(located)
            .zip(verdicts)
            .map(|((op, (index, hash)), verdict)| {
                let shard = &mut guards[guard(index)];
                let counted = is_counted(op, verdict.fits, all_fit);
                self.settle(shard, hash, op, verdict, counted, now)
            })
            .collect()
    }

    /// Counts an op's hits when `counted`, and answers the op's count.
    fn settle(
        &self,
        shard: &mut Shard,
        hash: u64,
        op: &CounterOp,
        verdict: Verdict,
        counted: bool,
        now: u64,
    ) -> Count {
        if !counted {
            return verdict.refused;
        }
        let found = shard.peek(hash, &op.key, op.capacity());
        let change = Counter::update(found, verdict.change, now);
        self.place(shard, hash, op, change, now);
        verdict.counted
    }

    /// Makes a change that [`Counter::update`] gave back, if any.
    fn place(
        &self,
        shard: &mut Shard,
        hash: u64,
        op: &CounterOp,
        change: Option<Change>,
        now: u64,
    ) {
        if let Some(change) = change {
            let (capacity, limit) = (self.shard_capacity, op.capacity());
            let evictions = &self.live_evictions;
            shard.place(hash, &op.key, change, limit, now, capacity, evictions);
        }
    }
}

impl CounterStore for MemoryStore {
    /// Answers at once: there is no deadline to keep.
    fn apply_by<'a>(
        &'a self,
        ops: &'a [CounterOp],
        _deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<Vec<Count>, StoreError>> {
        let now = self.clock.now_ms();
        let mut counts = Vec::with_capacity(ops.len());
        let mut start = 0;
        while start < ops.len() {
            let end = start
                + 1
                + ops[start + 1..]
                    .iter()
                    .take_while(|op| op.admission.joins_previous())
                    .count();
            match &ops[start..end] {
                [op] => counts.push(self.apply_one(op, now)),
                run => counts.extend(self.apply_run(run, now)),
            }
            start = end;
        }
        Box::pin(std::future::ready(Ok(counts)))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<CounterPage, StoreError>> {
        Box::pin(std::future::ready(self.list_page(prefix, cursor, limit)))
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let now = self.clock.now_ms();
        let (index, hash) = self.locate(key);
        let removed = lock(&self.shards[index]).remove(hash, key);
        Box::pin(std::future::ready(Ok(
            removed.is_some_and(|slot| slot.counter.expires_ms() > now)
        )))
    }

    fn approximate_len(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(std::future::ready(Ok(self.len() as u64)))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn live_evictions(&self) -> u64 {
        MemoryStore::live_evictions(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn op(key: &str, limit: u64) -> CounterOp {
        CounterOp::count_all(key.into(), 3_600, limit, 1)
    }

    #[test]
    fn a_flood_of_new_keys_does_not_evict_a_counter_at_its_limit() {
        let store = MemoryStore::new(SHARDS * 10, Arc::new(ManualClock::new(0)));
        let victim = op("victim", 3);
        for _ in 0..3 {
            store.apply_one(&victim, 0);
        }
        for index in 0..50_000 {
            store.apply_one(&op(&format!("flood-{index}"), 3), 0);
        }
        assert!(store.live_evictions() > 40_000, "the store was full");
        assert_eq!(
            store.apply_one(&victim, 0).value,
            4,
            "the victim kept its count"
        );
    }

    #[test]
    fn a_counter_near_its_limit_outlasts_more_recent_ones_farther_from_theirs() {
        let store = MemoryStore::new(SHARDS * 10, Arc::new(ManualClock::new(0)));
        let near = op("near", 3);
        store.apply_one(&near, 0);
        store.apply_one(&near, 0);
        for index in 0..50_000 {
            store.apply_one(&op(&format!("flood-{index}"), 1_000), 0);
        }
        assert_eq!(
            store.apply_one(&near, 0).value,
            3,
            "2 of 3 outlasted 1 of 1,000"
        );
    }
}
