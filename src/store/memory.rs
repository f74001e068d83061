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
use indexmap::map::RawEntryApiV1;
use indexmap::map::raw_entry_v1::RawEntryMut;

use super::sliding::{Buckets, Slide};
use super::{BoxFuture, Count, CounterEntry, CounterOp, CounterPage, CounterStore, StoreError};
use crate::clock::{Clock, Window};

/// Shards (a power of two). Enough that two cores never meet on one lock by chance, few enough
/// that a full sweep stays cheap.
const SHARDS: usize = 64;

/// An odd constant with well-spread bits (2^64 / golden ratio), to mix a hash into a shard number.
const SHARD_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// Counters sampled to find one to evict; Redis's default `maxmemory-samples` is 5, and 8 gets
/// closer to true LRU for little extra work.
const EVICTION_SAMPLES: usize = 8;

/// Least time between two in-line purges of one full shard, so that a shard full of live
/// counters does not rescan itself on every insert.
const PURGE_BACKOFF_MS: u64 = 100;

/// Counters examined per listed counter requested, at most: a page on a store where few keys
/// match the prefix ends early (with a cursor to go on) instead of scanning everything.
const SCAN_FACTOR: usize = 16;

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
    counter: Counter,
    last_used: u64,
}

enum Counter {
    /// A fixed window (the RLS): the count of the window it was last used in.
    Fixed { window: Window, count: u64 },
    /// A sliding window (`/check`); boxed, as it is larger and rarer.
    Sliding(Box<Buckets>),
}

impl Counter {
    /// When the counter stops meaning anything.
    fn expires_ms(&self) -> u64 {
        match self {
            Counter::Fixed { window, .. } => window.end_ms,
            Counter::Sliding(buckets) => buckets.expires_ms(),
        }
    }

    fn value(&self, now_ms: u64) -> u64 {
        match self {
            Counter::Fixed { count, .. } => *count,
            Counter::Sliding(buckets) => buckets.count(now_ms),
        }
    }
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

    /// The key's shard, locked, and the key's hash: hashed once, for the shard and for the map
    /// inside it (which is only ever asked with this hash).
    fn shard(&self, key: &str) -> (MutexGuard<'_, Shard>, u64) {
        let hash = self.hasher.hash_one(key);
        // The map places keys by the hash's low bits and tags them with its top bits; the shard
        // is chosen by a multiplicative mix of all of them, so neither loses entropy.
        let index = (hash.wrapping_mul(SHARD_MIX) >> (64 - SHARDS.trailing_zeros())) as usize;
        (lock(&self.shards[index]), hash)
    }

    fn apply_one(&self, op: &CounterOp, now: u64) -> Count {
        let window = Window::containing(now, op.window_secs);
        let (mut shard, hash) = self.shard(&op.key);
        let value = shard.add(
            hash,
            op,
            window,
            now,
            self.shard_capacity,
            &self.live_evictions,
        );
        Count {
            value,
            resets_in: window.remaining(now),
        }
    }

    fn slide_one(&self, key: &str, window: Duration, limit: u64, hits: u64) -> Slide {
        let now = self.clock.now_ms();
        let (mut shard, hash) = self.shard(key);
        shard.uses += 1;
        let uses = shard.uses;
        if let Some(slot) = shard.slot_mut(hash, key) {
            slot.last_used = uses;
            if let Counter::Sliding(buckets) = &mut slot.counter {
                return buckets.admit(now, window, limit, hits);
            }
        }
        let mut buckets = Box::<Buckets>::default();
        let slide = buckets.admit(now, window, limit, hits);
        if slide.count > 0 {
            let counter = Counter::Sliding(buckets);
            shard.insert(
                hash,
                key,
                counter,
                now,
                self.shard_capacity,
                &self.live_evictions,
            );
        }
        slide
    }

    fn list_page(&self, prefix: &str, cursor: Position, limit: usize) -> CounterPage {
        let now = self.clock.now_ms();
        let mut counters = Vec::new();
        let mut budget = limit.saturating_mul(SCAN_FACTOR).max(limit);
        let Position {
            mut shard,
            mut index,
        } = cursor;
        while shard < SHARDS {
            let slots = &lock(&self.shards[shard]).slots;
            while let Some((key, slot)) = slots.get_index(index) {
                if counters.len() == limit || budget == 0 {
                    return page(counters, Some(Position { shard, index }));
                }
                budget -= 1;
                index += 1;
                if key.starts_with(prefix) && slot.counter.expires_ms() > now {
                    counters.push(CounterEntry {
                        key: key.to_string(),
                        value: slot.counter.value(now),
                        resets_in: Duration::from_millis(slot.counter.expires_ms() - now),
                    });
                }
            }
            shard += 1;
            index = 0;
        }
        page(counters, None)
    }
}

/// Where a listing stopped: shard and index in it. Counters that move while a listing is under
/// way (evicted, swept) may be missed or repeated, as with Redis SCAN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Position {
    shard: usize,
    index: usize,
}

impl Position {
    fn parse(cursor: &str) -> Option<Position> {
        let (shard, index) = cursor.split_once('.')?;
        let position = Position {
            shard: shard.parse().ok()?,
            index: index.parse().ok()?,
        };
        (position.shard < SHARDS).then_some(position)
    }
}

fn page(counters: Vec<CounterEntry>, next: Option<Position>) -> CounterPage {
    CounterPage {
        counters,
        next_cursor: next.map(|p| format!("{}.{}", p.shard, p.index)),
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
    fn slot_mut(&mut self, hash: u64, key: &str) -> Option<&mut Slot> {
        match self
            .slots
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Occupied(slot) => Some(slot.into_mut()),
            RawEntryMut::Vacant(_) => None,
        }
    }

    fn remove(&mut self, hash: u64, key: &str) -> Option<Slot> {
        match self
            .slots
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Occupied(slot) => Some(slot.swap_remove()),
            RawEntryMut::Vacant(_) => None,
        }
    }

    fn add(
        &mut self,
        hash: u64,
        op: &CounterOp,
        window: Window,
        now: u64,
        capacity: usize,
        live_evictions: &AtomicU64,
    ) -> u64 {
        self.uses += 1;
        let uses = self.uses;
        if let Some(slot) = self.slot_mut(hash, &op.key) {
            slot.last_used = uses;
            let current = match slot.counter {
                Counter::Fixed {
                    window: used,
                    count,
                } if used == window => count,
                _ => 0,
            };
            let count = add_delta(current, op.delta);
            slot.counter = Counter::Fixed { window, count };
            return count;
        }
        let count = add_delta(0, op.delta);
        if count > 0 {
            // Reading or refunding a counter that does not exist leaves nothing to store.
            self.insert(
                hash,
                &op.key,
                Counter::Fixed { window, count },
                now,
                capacity,
                live_evictions,
            );
        }
        count
    }

    /// Adds a counter for a key the shard does not hold.
    fn insert(
        &mut self,
        hash: u64,
        key: &str,
        counter: Counter,
        now: u64,
        capacity: usize,
        live_evictions: &AtomicU64,
    ) {
        if self.slots.len() >= capacity {
            self.make_room(now, live_evictions);
        }
        let slot = Slot {
            counter,
            last_used: self.uses,
        };
        match self
            .slots
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Vacant(vacant) => {
                vacant.insert_hashed_nocheck(hash, key.into(), slot);
            }
            RawEntryMut::Occupied(mut held) => {
                held.insert(slot);
            }
        }
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
            && slot.counter.expires_ms() > now
        {
            live_evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn purge(&mut self, now: u64) -> usize {
        let before = self.slots.len();
        self.slots.retain(|_, slot| slot.counter.expires_ms() > now);
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

    fn slide<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        limit: u64,
        hits: u64,
    ) -> BoxFuture<'a, Result<Slide, StoreError>> {
        Box::pin(std::future::ready(Ok(
            self.slide_one(key, window, limit, hits)
        )))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<CounterPage, StoreError>> {
        let page = match cursor {
            None => Ok(self.list_page(prefix, Position::default(), limit)),
            Some(text) => Position::parse(text)
                .map(|position| self.list_page(prefix, position, limit))
                .ok_or_else(|| StoreError::BadCursor(text.to_string())),
        };
        Box::pin(std::future::ready(page))
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let now = self.clock.now_ms();
        let (mut shard, hash) = self.shard(key);
        let removed = shard.remove(hash, key);
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
