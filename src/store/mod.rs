//! Counter stores: where counts live, behind one batch-shaped trait. The limiter hands a store
//! every counter operation of a request at once, so a remote store can answer in one round trip.
//!
//! Each op counts by its algorithm: a fixed window ([`crate::clock::Window`]), a sliding window
//! ([`sliding`]) or a token bucket ([`bucket`]), and every store keeps the same rules. Ops that
//! must be decided together (the limits of one list, or with
//! `--stop-cache-key-increment-when-overlimit` every op of a request) are a run: an op marked
//! [`Admission::WithPrevious`] or [`Admission::CountAllWithPrevious`] joins the one before it,
//! and the hits of a run are counted only when every op of it fits, atomically (a count-all op
//! that does not fit is counted all the same).

pub mod bucket;
pub mod memory;
pub mod per_second;
pub mod redis;
pub mod sliding;
mod two_steps;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::algorithm::Algorithm;

pub use memory::MemoryStore;
pub use per_second::PerSecondSplit;
pub use redis::RedisStore;
pub use sliding::Slide;

/// A boxed future, so that stores can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One change to one counter: `delta` hits (negative to refund, zero to only look) counted by
/// `algorithm` against `limit` per window of `window_ms`. A counter whose window has passed, or
/// that was counted by another algorithm or window, starts again from nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterOp {
    /// An injective key from [`crate::key::encode`].
    pub key: String,
    pub algorithm: Algorithm,
    /// A window's length; a token bucket refills `limit` tokens per window.
    pub window_ms: u64,
    /// Hits per window. A store that must evict counters evicts those nearest their
    /// [`CounterOp::capacity`] last, so that evicting cannot reopen a limit.
    pub limit: u64,
    /// The most a token bucket holds; windows ignore it.
    pub burst: u64,
    pub delta: i64,
    pub admission: Admission,
}

/// When an op's hits are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Always, over the limit too: the Go service's fixed windows (other algorithms treat it as
    /// [`Admission::Fit`]).
    CountAll,
    /// When they fit: with zero hits, the op fits when one more hit would.
    Fit,
    /// When they fit and so do the hits of every op of its run (the op before it and the run
    /// that one is in): all or nothing. A list's keys share a hash slot, so on a Redis Cluster
    /// its run is one script call.
    WithPrevious,
    /// A count-all fixed window in the run of the op before it: counted when its own hits do
    /// not fit (over the limit, as [`Admission::CountAll`]), else only when every op of the run
    /// fits. The Go service's STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT: a request's counters are
    /// not incremented when one of them goes over, except the ones going over.
    CountAllWithPrevious,
}

impl Admission {
    /// Whether the op joins the run of the op before it.
    pub fn joins_previous(self) -> bool {
        matches!(
            self,
            Admission::WithPrevious | Admission::CountAllWithPrevious
        )
    }

    /// Whether the op's hits over the limit are counted too (fixed windows only).
    pub fn counts_all(self) -> bool {
        matches!(self, Admission::CountAll | Admission::CountAllWithPrevious)
    }

    /// The same admission joined to the op before it (a run of a whole request).
    pub fn joined(self) -> Admission {
        match self {
            Admission::CountAll | Admission::CountAllWithPrevious => {
                Admission::CountAllWithPrevious
            }
            Admission::Fit | Admission::WithPrevious => Admission::WithPrevious,
        }
    }

    /// The same admission alone, in a run of its own.
    pub fn alone(self) -> Admission {
        match self {
            Admission::CountAll | Admission::CountAllWithPrevious => Admission::CountAll,
            Admission::Fit | Admission::WithPrevious => Admission::Fit,
        }
    }
}

/// Whether an op that was judged (`fits`, its own hits) in a run where every op fits or not
/// (`run_fits`) is counted: a count-all fixed window when its hits fit only with the rest of its
/// run, or go over (alone in its run, always); any other op when the whole run fits and it has
/// hits to count or refund. Every store keeps this rule (`apply.lua` too).
pub fn is_counted(op: &CounterOp, fits: bool, run_fits: bool) -> bool {
    if op.admission.counts_all() && op.algorithm == Algorithm::FixedWindow {
        run_fits || !fits
    } else {
        run_fits && op.delta != 0
    }
}

impl CounterOp {
    /// A fixed window of `window_secs` that counts every hit, as the Go service does.
    pub fn count_all(key: String, window_secs: u64, limit: u64, delta: i64) -> CounterOp {
        CounterOp {
            key,
            algorithm: Algorithm::FixedWindow,
            window_ms: window_secs.max(1).saturating_mul(1_000),
            limit,
            burst: limit,
            delta,
            admission: Admission::CountAll,
        }
    }

    /// The most hits that fit at once: a full bucket, or a window's limit.
    pub fn capacity(&self) -> u64 {
        match self.algorithm {
            Algorithm::TokenBucket => self.burst,
            Algorithm::FixedWindow | Algorithm::SlidingWindow => self.limit,
        }
    }
}

/// What an op found or left, by the store's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// Hits counted in the window (fixed, sliding) or tokens taken (a token bucket: its burst
    /// less the whole tokens it holds), after the op when its hits were counted, as found
    /// otherwise.
    pub value: u64,
    /// Whether the op's own hits fit its limit (for [`Admission::CountAll`]: whether the count
    /// is within it). A run counts its hits only when every op of it fits.
    pub fits: bool,
    /// A fixed window: until it ends. Otherwise: until the op's hits would fit when they do not
    /// (the whole window when they never can), else until one hit more than the capacity left
    /// would (zero when nothing is counted).
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
    /// admitted (see [`sliding`] for the rules every store keeps): one sliding-window op.
    fn slide<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        limit: u64,
        hits: u64,
    ) -> BoxFuture<'a, Result<Slide, StoreError>> {
        Box::pin(async move {
            let op = CounterOp {
                key: key.to_string(),
                algorithm: Algorithm::SlidingWindow,
                window_ms: window.as_millis() as u64,
                limit,
                burst: limit,
                delta: i64::try_from(hits).unwrap_or(i64::MAX),
                admission: Admission::Fit,
            };
            let count = self.apply(std::slice::from_ref(&op)).await?;
            let count = count.first().ok_or_else(|| {
                StoreError::Protocol("no count for a sliding-window check".into())
            })?;
            Ok(Slide {
                allowed: count.fits,
                count: count.value,
                retry_after: if count.fits {
                    Duration::ZERO
                } else {
                    count.resets_in
                },
            })
        })
    }

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
