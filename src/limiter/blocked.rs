//! Counters known to be over their limit, remembered on this node so that a client hammering a
//! blocked key costs almost no store traffic (the Go service's `LOCAL_CACHE_SIZE_IN_BYTES`). An
//! entry is keyed by the full counter identity (the counter key, which holds domain, rule path,
//! window and values) and holds the limit it was over: after a reload that raises the limit, or
//! for a request carrying another limit, it does not answer.
//!
//! An entry lives until its counter's window ends, but at most [`MAX_AGE`]: the store is asked
//! again after that, so a counter reset through the API (on any node) or brought under its limit
//! by refunds on another node is honoured within [`MAX_AGE`] everywhere, at the cost of one store
//! call per blocked key and node every [`MAX_AGE`]. A reset on this node forgets at once.
//!
//! Keys longer than [`MAX_KEY_BYTES`] are not remembered (they are asked of the store each
//! time), so that the cache's memory stays bounded whatever keys requests make.
//!
//! A blocked hit answered here is not added to the store's count: the counter is already over.
//!
//! Time is passed in by the caller (one reading per request), so that tests can move it.
//!
//! While the cache holds nothing, as it does while no client is over its limit, it answers
//! without looking (most requests never meet a blocked counter).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::store::Count;

pub struct BlockedCounters {
    entries: Cache<String, Blocked>,
    /// At least as many as the entries held: raised before each insert, lowered when the cache
    /// reports an entry gone (replaced, invalidated, expired or evicted). Zero means empty.
    held: Arc<AtomicU64>,
}

/// The longest an entry answers without asking the store again.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// The longest key remembered: a full cache then takes at most about 60 MB at the default
/// 100,000 entries.
const MAX_KEY_BYTES: usize = 512;

#[derive(Clone, Copy, Debug)]
struct Blocked {
    limit: u32,
    count: u64,
    /// When the counter's window ends, by this node's monotonic clock.
    window_ends: Instant,
    /// When this entry stops answering: the window's end, or [`MAX_AGE`] after it was learnt.
    until: Instant,
}

/// Each entry lives until its `until`.
struct UntilStale;

impl Expiry<String, Blocked> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &String,
        blocked: &Blocked,
        now: Instant,
    ) -> Option<Duration> {
        Some(blocked.until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        blocked: &Blocked,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(blocked.until.saturating_duration_since(now))
    }
}

impl BlockedCounters {
    /// A cache of at most `capacity` blocked counters (least recently used go first).
    pub fn new(capacity: u64) -> BlockedCounters {
        let held = Arc::new(AtomicU64::new(0));
        let gone = held.clone();
        BlockedCounters {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilStale)
                .eviction_listener(move |_, _, _| {
                    gone.fetch_sub(1, Ordering::Relaxed);
                })
                .build(),
            held,
        }
    }

    fn is_empty(&self) -> bool {
        self.held.load(Ordering::Relaxed) == 0
    }

    /// The counter's count and time to reset at `now`, when it is known to be over `limit`.
    pub fn get(&self, key: &str, limit: u32, now: Instant) -> Option<Count> {
        if self.is_empty() {
            return None;
        }
        let blocked = self.entries.get(key)?;
        let answers = blocked.limit == limit && now < blocked.until && now < blocked.window_ends;
        answers.then(|| Count {
            value: blocked.count,
            resets_in: blocked.window_ends - now,
        })
    }

    /// Remembers what the store answered for a counter at `now`: blocked when over `limit`,
    /// forgotten otherwise (a refund can bring a counter back under its limit).
    pub fn learn(&self, key: &str, limit: u32, count: Count, now: Instant) {
        if count.value > u64::from(limit) && key.len() <= MAX_KEY_BYTES {
            let blocked = Blocked {
                limit,
                count: count.value,
                window_ends: now + count.resets_in,
                until: now + count.resets_in.min(MAX_AGE),
            };
            self.held.fetch_add(1, Ordering::Relaxed);
            self.entries.insert(key.to_string(), blocked);
        } else {
            self.forget(key);
        }
    }

    /// Drops what is known of a counter (it was reset).
    pub fn forget(&self, key: &str) {
        if !self.is_empty() {
            self.entries.invalidate(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(value: u64, resets_in_ms: u64) -> Count {
        Count {
            value,
            resets_in: Duration::from_millis(resets_in_ms),
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_counter_over_its_limit_is_answered_until_its_window_ends() {
        let blocked = BlockedCounters::new(100);
        let now = Instant::now();
        blocked.learn("k", 5, count(5, 60_000), now);
        assert!(
            blocked.get("k", 5, now).is_none(),
            "at the limit is not over it"
        );
        blocked.learn("k", 5, count(6, 60_000), now);
        let answered = blocked.get("k", 5, now + ms(500)).expect("over its limit");
        assert_eq!(answered.value, 6);
        assert_eq!(answered.resets_in, ms(59_500));
        assert!(
            blocked.get("k", 10, now).is_none(),
            "another limit is another question"
        );
        assert!(blocked.get("other", 5, now).is_none());
        blocked.learn("k", 5, count(2, 60_000), now);
        assert!(blocked.get("k", 5, now).is_none(), "a refund unblocks");
    }

    #[test]
    fn entries_are_stale_after_max_age_even_in_a_long_window() {
        let blocked = BlockedCounters::new(100);
        let now = Instant::now();
        blocked.learn("k", 1, count(3, 3_600_000), now);
        let answered = blocked
            .get("k", 1, now + MAX_AGE - ms(1))
            .expect("over its limit");
        assert!(answered.resets_in > MAX_AGE, "the window's own reset time");
        assert!(blocked.get("k", 1, now + MAX_AGE).is_none());
    }

    #[test]
    fn long_keys_are_not_remembered() {
        let blocked = BlockedCounters::new(100);
        let now = Instant::now();
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        blocked.learn(&long, 1, count(3, 60_000), now);
        assert!(blocked.get(&long, 1, now).is_none());
    }

    #[test]
    fn a_forgotten_counter_is_asked_again() {
        let blocked = BlockedCounters::new(100);
        let now = Instant::now();
        blocked.learn("k", 1, count(3, 60_000), now);
        blocked.forget("k");
        assert!(blocked.get("k", 1, now).is_none());
    }

    #[test]
    fn entries_end_with_their_window() {
        let blocked = BlockedCounters::new(100);
        let now = Instant::now();
        blocked.learn("k", 1, count(3, 30), now);
        assert!(blocked.get("k", 1, now + ms(29)).is_some());
        assert!(blocked.get("k", 1, now + ms(30)).is_none());
    }
}
