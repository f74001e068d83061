//! Counter stores: where counts live, behind one batch-shaped trait. The limiter hands a store
//! every counter operation of a request at once, so a remote store can answer in one round trip.

pub mod memory;
pub mod redis;
pub mod sliding;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use memory::MemoryStore;
pub use redis::RedisStore;
pub use sliding::Slide;

/// A boxed future, so that stores can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One change to one counter: add `delta` (negative to refund, zero to read) in the current fixed
/// window of `window_secs` seconds. A counter whose window has passed starts again from zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterOp {
    /// An injective key from [`crate::key::encode`].
    pub key: String,
    pub window_secs: u64,
    pub delta: i64,
    /// The limit the counter is checked against: a store that must evict counters evicts those
    /// near their limit last, so that evicting cannot reopen a limit (`u64::MAX` when none).
    pub limit: u64,
}

/// A counter's value after an operation, and when its window ends, both by the store's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub value: u64,
    pub resets_in: Duration,
}

/// One live counter, as the management API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterEntry {
    /// The key as given to the store (without any store-specific prefix).
    pub key: String,
    pub value: u64,
    /// Until the counter's window ends (fixed windows) or its newest hits leave it (sliding).
    pub resets_in: Duration,
}

/// A page of a listing, and where to continue (`None` when the listing is complete).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterPage {
    pub counters: Vec<CounterEntry>,
    pub next_cursor: Option<String>,
}

/// Where counters live. Every operation is atomic per counter: N concurrent callers adding 1 to
/// a counter see N distinct values. Operations on one key within a batch apply in order.
pub trait CounterStore: Send + Sync + 'static {
    /// Applies `ops` and returns one [`Count`] per op, in the same order, within the store's
    /// own bound (`--redis-timeout`).
    fn apply<'a>(&'a self, ops: &'a [CounterOp]) -> BoxFuture<'a, Result<Vec<Count>, StoreError>> {
        self.apply_by(ops, None)
    }

    /// [`CounterStore::apply`], answered by `deadline` when there is one (the caller stops
    /// waiting then): a remote store that cannot answer in time fails with
    /// [`StoreError::Timeout`], and does not send what it has not sent yet.
    fn apply_by<'a>(
        &'a self,
        ops: &'a [CounterOp],
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<Vec<Count>, StoreError>>;

    /// Whether the store is reached over the network, so that timing its calls tells something.
    fn is_remote(&self) -> bool {
        false
    }

    /// Checks `hits` against `limit` over the sliding `window` ending now, counting them only if
    /// admitted (see [`sliding`] for the rules every store keeps).
    fn slide<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        limit: u64,
        hits: u64,
    ) -> BoxFuture<'a, Result<Slide, StoreError>>;

    /// Live counters whose key starts with `prefix`: about `limit` of them, from `cursor`
    /// (`None` to start). Each call does bounded work, so a page may hold fewer than `limit`
    /// counters and still have a next cursor; a store that lists in batches (Redis `SCAN`) may
    /// return a few more rather than split a batch. A counter that lives through a whole
    /// listing is listed at least once; one that changes meanwhile may be missed or repeated.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<CounterPage, StoreError>>;

    /// Removes one counter (of either kind); true when a live counter was removed.
    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// About how many counters the store holds, for `ratelimiter_active_counters`; cheap to ask.
    fn approximate_len(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// A short name for logs and `/health` (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// Counters dropped before their window ended, since start (they under-count), for
    /// `ratelimiter_memory_live_evictions_total`. A store that never drops live counters says 0.
    fn live_evictions(&self) -> u64 {
        0
    }
}

/// Why a store could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now; retrying later may work.
    #[error("counter store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer in time: within this long, the caller's deadline or the
    /// configured timeout.
    #[error("counter store did not answer within {0:?}")]
    Timeout(Duration),
    /// The store answered with something the service did not expect.
    #[error("counter store error: {0}")]
    Protocol(String),
    /// A listing cursor that this store did not hand out.
    #[error("invalid cursor {0:?}")]
    BadCursor(String),
}

impl StoreError {
    /// True when the failure is expected to pass by itself (the store is down or slow), false
    /// when it points at a bug or a misconfiguration.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout(_))
    }
}
