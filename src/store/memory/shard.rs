//! One shard of the memory store: its counters by key, in insertion order so that eviction can
//! sample them, with the bookkeeping that bounds its size in counters and in bytes (keys are as
//! long as requests make them, so a count alone would not bound memory).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use indexmap::IndexMap;
use indexmap::map::RawEntryApiV1;
use indexmap::map::raw_entry_v1::RawEntryMut;

use crate::clock::Window;
use crate::store::CounterOp;
use crate::store::sliding::Buckets;

/// Counters sampled to find one to evict; Redis's default `maxmemory-samples` is 5, and 8 gets
/// closer to the true order for little extra work.
const EVICTION_SAMPLES: usize = 8;

/// When every sample is at or over its limit, this many more are drawn before one of those is
/// evicted: an attacker must then fill the shard with counters at their limit (paying their
/// limit in requests for each) before a victim at its limit can go.
const EXTRA_SAMPLES: usize = 32;

/// Least time between two in-line purges of one full shard, so that a shard full of live
/// counters does not rescan itself on every insert.
const PURGE_BACKOFF_MS: u64 = 100;

/// Fixed bytes of one counter besides its key's text: the slot, the key's box and the map's
/// hash and index.
const SLOT_OVERHEAD: usize = std::mem::size_of::<Slot>() + std::mem::size_of::<Box<str>>() + 16;

/// What one shard may hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct Capacity {
    pub(super) counters: usize,
    /// Counted by [`footprint`].
    pub(super) bytes: usize,
}

pub(super) struct Shard {
    /// Only ever asked with the store's hash of the key (the raw entry API), so the map's own
    /// hasher is never used.
    pub(super) slots: IndexMap<Box<str>, Slot, foldhash::fast::RandomState>,
    /// The [`footprint`] of every slot held.
    bytes: usize,
    /// Bumped on every use; a slot's `last_used` orders it for eviction among equals.
    pub(super) uses: u64,
    next_purge_ms: u64,
    /// xorshift state for sampling eviction candidates.
    random: u64,
}

/// 40 bytes: a million counters fit in well under 200 MB with their keys and the map.
pub(super) struct Slot {
    pub(super) counter: Counter,
    /// When it was last used, in the shard's `uses`: among counters as far from their limits,
    /// the least recently used goes first.
    pub(super) last_used: u64,
    /// The limit the counter is checked against (`u64::MAX` when unknown).
    pub(super) limit: u64,
}

pub(super) enum Counter {
    /// A fixed window (the RLS): the count of the window that ends at `ends_ms`.
    Fixed { ends_ms: u64, count: u64 },
    /// A sliding window (`/check`); boxed, as it is larger and rarer.
    Sliding(Box<Buckets>),
}

impl Counter {
    /// When the counter stops meaning anything.
    pub(super) fn expires_ms(&self) -> u64 {
        match self {
            Counter::Fixed { ends_ms, .. } => *ends_ms,
            Counter::Sliding(buckets) => buckets.expires_ms(),
        }
    }

    pub(super) fn value(&self, now_ms: u64) -> u64 {
        match self {
            Counter::Fixed { count, .. } => *count,
            Counter::Sliding(buckets) => buckets.count(now_ms),
        }
    }
}

impl Slot {
    /// How close the counter is to its limit, for eviction: ended windows first (below 0),
    /// then by the share of the limit used; 1 and more is at or over it.
    fn fill(&self, now_ms: u64) -> f64 {
        if self.counter.expires_ms() <= now_ms {
            return -1.0;
        }
        self.counter.value(now_ms) as f64 / self.limit.max(1) as f64
    }
}

/// Locks a shard. Nothing panics while a shard is locked, but should it ever happen the data is
/// still consistent (every update is a single assignment), so the lock is taken back.
pub(super) fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shard {
    /// An empty shard; `seed` starts its eviction sampling.
    pub(super) fn new(seed: u64) -> Shard {
        Shard {
            slots: IndexMap::default(),
            bytes: 0,
            uses: 0,
            next_purge_ms: 0,
            // xorshift needs a state that is not zero.
            random: seed | 1,
        }
    }

    pub(super) fn slot_mut(&mut self, hash: u64, key: &str) -> Option<&mut Slot> {
        match self
            .slots
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Occupied(slot) => Some(slot.into_mut()),
            RawEntryMut::Vacant(_) => None,
        }
    }

    pub(super) fn remove(&mut self, hash: u64, key: &str) -> Option<Slot> {
        match self
            .slots
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Occupied(slot) => {
                let (key, slot) = slot.swap_remove_entry();
                self.bytes -= footprint(&key, &slot.counter);
                Some(slot)
            }
            RawEntryMut::Vacant(_) => None,
        }
    }

    pub(super) fn add(
        &mut self,
        hash: u64,
        op: &CounterOp,
        window: Window,
        now: u64,
        capacity: Capacity,
        live_evictions: &AtomicU64,
    ) -> u64 {
        self.uses += 1;
        let uses = self.uses;
        if let Some(slot) = self.slot_mut(hash, &op.key) {
            slot.last_used = uses;
            slot.limit = op.limit;
            let current = match slot.counter {
                Counter::Fixed { ends_ms, count } if ends_ms == window.end_ms => count,
                _ => 0,
            };
            let count = add_delta(current, op.delta);
            slot.counter = Counter::Fixed {
                ends_ms: window.end_ms,
                count,
            };
            return count;
        }
        let count = add_delta(0, op.delta);
        if count > 0 {
            // Reading or refunding a counter that does not exist leaves nothing to store.
            self.insert(
                hash,
                &op.key,
                Counter::Fixed {
                    ends_ms: window.end_ms,
                    count,
                },
                op.limit,
                now,
                capacity,
                live_evictions,
            );
        }
        count
    }

    /// Adds a counter for a key the shard does not hold.
    #[allow(clippy::too_many_arguments)] // The key, its counter and its limit, and the bounds.
    pub(super) fn insert(
        &mut self,
        hash: u64,
        key: &str,
        counter: Counter,
        limit: u64,
        now: u64,
        capacity: Capacity,
        live_evictions: &AtomicU64,
    ) {
        let needed = footprint(key, &counter);
        while !self.slots.is_empty()
            && (self.slots.len() >= capacity.counters || self.bytes + needed > capacity.bytes)
        {
            self.make_room(now, live_evictions);
        }
        let slot = Slot {
            counter,
            last_used: self.uses,
            limit,
        };
        match self
            .slots
            .raw_entry_mut_v1()
            .from_key_hashed_nocheck(hash, key)
        {
            RawEntryMut::Vacant(vacant) => {
                vacant.insert_hashed_nocheck(hash, key.into(), slot);
                self.bytes += needed;
            }
            RawEntryMut::Occupied(mut held) => {
                let replaced = held.insert(slot);
                self.bytes = self.bytes - footprint(key, &replaced.counter) + needed;
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
        let first = self.least_needed(EVICTION_SAMPLES, None, now);
        let victim = match first {
            Some(index) if self.slots[index].fill(now) < 1.0 => first,
            _ => self.least_needed(EXTRA_SAMPLES, first, now),
        };
        if let Some((key, slot)) = victim.and_then(|index| self.slots.swap_remove_index(index)) {
            self.bytes -= footprint(&key, &slot.counter);
            if slot.counter.expires_ms() > now {
                live_evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Of `samples` counters drawn at random (and `also`), the one eviction costs least: the
    /// farthest from its limit, then the least recently used.
    fn least_needed(&mut self, samples: usize, also: Option<usize>, now: u64) -> Option<usize> {
        let len = self.slots.len();
        let drawn: Vec<usize> = (0..samples)
            .map(|_| self.next_random() as usize % len.max(1))
            .chain(also)
            .filter(|&index| index < len)
            .collect();
        drawn.into_iter().min_by(|&a, &b| {
            let (a, b) = (&self.slots[a], &self.slots[b]);
            a.fill(now)
                .total_cmp(&b.fill(now))
                .then(a.last_used.cmp(&b.last_used))
        })
    }

    pub(super) fn purge(&mut self, now: u64) -> usize {
        let before = self.slots.len();
        let mut freed = 0;
        self.slots.retain(|key, slot| {
            let live = slot.counter.expires_ms() > now;
            if !live {
                freed += footprint(key, &slot.counter);
            }
            live
        });
        self.bytes -= freed;
        before - self.slots.len()
    }

    /// The [`footprint`] of every counter held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
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

/// The bytes a counter takes: its key, its slot, and a sliding window's buckets.
fn footprint(key: &str, counter: &Counter) -> usize {
    let buckets = match counter {
        Counter::Fixed { .. } => 0,
        Counter::Sliding(_) => std::mem::size_of::<Buckets>(),
    };
    key.len() + SLOT_OVERHEAD + buckets
}

fn add_delta(count: u64, delta: i64) -> u64 {
    if delta >= 0 {
        count.saturating_add(delta as u64)
    } else {
        count.saturating_sub(delta.unsigned_abs())
    }
}
