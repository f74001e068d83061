//! The embedded store: counters in this process's memory, sharded so that requests on different
//! keys do not wait for each other, bounded in size, and swept of windows that have ended.
//!
//! When full, a shard first drops counters whose window has ended, then evicts the least
//! recently used of a few sampled counters (Redis's approximate LRU); evicting a live counter
//! under-counts it, so such evictions are counted for the operator to see.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indexmap::IndexMap;

use super::{BoxFuture, Count, CounterOp, CounterStore, StoreError};
use crate::clock::{Clock, Window};

/// Shards (a power of two). Enough that two cores never meet on one lock by chance, few enough
/// that a full sweep stays cheap.
const SHARDS: usize = 64;

/// Counters sampled to find one to evict; Redis's default `maxmemory-samples` is 5, and 8 gets
/// closer to true LRU for little extra work.
const EVICTION_SAMPLES: usize = 8;

/// Least time between two in-line purges of one full shard, so that a shard full of live
/// counters does not rescan itself on every insert.
const PURGE_BACKOFF_MS: u64 = 100;

/// How often the background sweep drops ended windows from every shard.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
    clock: Arc<dyn Clock>,
    shard_capacity: usize,
    live_evictions: AtomicU64,
}

struct Shard {
    slots: IndexMap<Box<str>, Slot, foldhash::fast::RandomState>,
    /// Bumped on every use; a slot's `last_used` orders it for LRU eviction.
    uses: u64,
    next_purge_ms: u64,
    /// xorshift state for sampling eviction candidates.
    random: u64,
}

struct Slot {
    window: Window,
    count: u64,
    last_used: u64,
}

impl MemoryStore {
    /// A store holding at most about `max_counters` counters (rounded up to a multiple of the
    /// shard count).
    pub fn new(max_counters: usize, clock: Arc<dyn Clock>) -> MemoryStore {
        let hasher = foldhash::fast::RandomState::default();
        let shards = (0..SHARDS)
            .map(|index| {
                Mutex::new(Shard {
                    slots: IndexMap::default(),
                    uses: 0,
                    next_purge_ms: 0,
                    random: hasher.hash_one(index) | 1,
                })
            })
            .collect();
        MemoryStore {
            shards,
            hasher,
            clock,
            shard_capacity: max_counters.div_ceil(SHARDS).max(1),
            live_evictions: AtomicU64::new(0),
        }
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

    /// Sweeps every [`SWEEP_INTERVAL`] until the store is dropped elsewhere or `stop` fires.
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

    fn apply_one(&self, op: &CounterOp, now: u64) -> Count {
        let index = (self.hasher.hash_one(op.key.as_str()) as usize) & (SHARDS - 1);
        let mut shard = lock(&self.shards[index]);
        let window = Window::containing(now, op.window_secs);
        let value = shard.add(op, window, now, self.shard_capacity, &self.live_evictions);
        Count {
            value,
            resets_in: window.remaining(now),
        }
    }
}

/// Locks a shard. Nothing panics while a shard is locked, but should it ever happen the data is
/// still consistent (every update is a single assignment), so the lock is taken back.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shard {
    fn add(
        &mut self,
        op: &CounterOp,
        window: Window,
        now: u64,
        capacity: usize,
        live_evictions: &AtomicU64,
    ) -> u64 {
        self.uses += 1;
        let uses = self.uses;
        if let Some(slot) = self.slots.get_mut(op.key.as_str()) {
            if slot.window != window {
                slot.window = window;
                slot.count = 0;
            }
            slot.count = add_delta(slot.count, op.delta);
            slot.last_used = uses;
            return slot.count;
        }
        let count = add_delta(0, op.delta);
        if count == 0 {
            // Reading or refunding a counter that does not exist leaves nothing to store.
            return 0;
        }
        if self.slots.len() >= capacity {
            self.make_room(now, live_evictions);
        }
        let slot = Slot {
            window,
            count,
            last_used: uses,
        };
        self.slots.insert(op.key.as_str().into(), slot);
        count
    }

    fn make_room(&mut self, now: u64, live_evictions: &AtomicU64) {
        if now >= self.next_purge_ms {
            self.next_purge_ms = now + PURGE_BACKOFF_MS;
            if self.purge(now) > 0 {
                return;
            }
        }
        let len = self.slots.len();
        let mut samples = [0; EVICTION_SAMPLES];
        for sample in &mut samples {
            *sample = self.next_random() as usize % len;
        }
        let victim = samples
            .into_iter()
            .min_by_key(|&index| self.slots[index].last_used);
        if let Some((_, slot)) = victim.and_then(|index| self.slots.swap_remove_index(index))
            && slot.window.end_ms > now
        {
            live_evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn purge(&mut self, now: u64) -> usize {
        let before = self.slots.len();
        self.slots.retain(|_, slot| slot.window.end_ms > now);
        before - self.slots.len()
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        x
    }
}

fn add_delta(count: u64, delta: i64) -> u64 {
    if delta >= 0 {
        count.saturating_add(delta as u64)
    } else {
        count.saturating_sub(delta.unsigned_abs())
    }
}

impl CounterStore for MemoryStore {
    fn apply<'a>(&'a self, ops: &'a [CounterOp]) -> BoxFuture<'a, Result<Vec<Count>, StoreError>> {
        let now = self.clock.now_ms();
        let counts = ops.iter().map(|op| self.apply_one(op, now)).collect();
        Box::pin(std::future::ready(Ok(counts)))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
