//! The shared store: counters in Redis (a single server, a Sentinel-managed master, or a
//! Cluster), so that every node behind Envoy counts against the same limits.
//!
//! A request's operations go in one script call on a single server; on a Cluster, in one call
//! per hash slot (`batch`); the ops of a run share a slot (the key encoder tags a list's keys),
//! so a list's run is always one call, decided whole by the script (a whole request's run, that
//! may spread over slots, is judged in two steps: [`crate::store::two_steps`]). The calls of concurrent requests
//! are coalesced into one pipeline per server or master (`coalesce`). Every request is answered
//! by its caller's deadline, or within [`RedisOptions::timeout`] when the caller set none. Keys
//! are the limiter's injective keys behind a prefix. Time comes from Redis, never from the
//! nodes, so nodes with skewed clocks still share each window.

mod backoff;
mod batch;
mod cluster;
mod coalesce;
mod connect;
mod lanes;
mod link;
mod list;
mod options;
mod scripts;
mod switch;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use cluster::slot;
pub use connect::{Connection, RedisSetupError, redact};
pub use link::RedisLink;
pub use list::scan_all;
pub use options::{RedisKind, RedisOptions, RedisTls};

use batch::Scripted;
use coalesce::Coalescer;
use lanes::Deadline;

use super::sliding::BUCKETS;
use super::{
    Admission, BoxFuture, Count, CounterOp, CounterPage, CounterStore, StoreError, two_steps,
};
use crate::algorithm::Algorithm;

pub struct RedisStore {
    link: Arc<RedisLink>,
    coalescer: Coalescer,
    prefix: String,
}

impl RedisStore {
    /// Counters behind `prefix` on `link`'s Redis. Call within a Tokio runtime: the store's
    /// calls are sent by a task of its own.
    pub fn new(link: Arc<RedisLink>, prefix: &str) -> RedisStore {
        RedisStore {
            coalescer: Coalescer::start(link.clone()),
            link,
            prefix: prefix.to_string(),
        }
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn scripted<'a>(&'a self, script: &'a redis::Script) -> Scripted<'a> {
        Scripted {
            link: &self.link,
            coalescer: &self.coalescer,
            script,
        }
    }

    async fn apply_all(
        &self,
        ops: &[CounterOp],
        deadline: Option<Instant>,
    ) -> Result<Vec<Count>, StoreError> {
        let now = Instant::now();
        let deadline = match deadline {
            Some(at) => Deadline {
                at,
                budget: at.saturating_duration_since(now),
            },
            None => Deadline {
                at: now + self.link.timeout(),
                budget: self.link.timeout(),
            },
        };
        let keys: Vec<String> = ops.iter().map(|op| self.redis_key(&op.key)).collect();
        let apart = |index: usize| slot(&keys[index]) != slot(&keys[index - 1]);
        if self.link.slot_map().is_some() && two_steps::spans(ops, apart) {
            let looked = self
                .apply_in_calls(&two_steps::looks(ops), &keys, deadline)
                .await?;
            let counts = two_steps::counts(ops, &looked, apart);
            return self.apply_in_calls(&counts, &keys, deadline).await;
        }
        self.apply_in_calls(ops, &keys, deadline).await
    }

    /// One script call per hash slot (one in all outside a Cluster); `keys` are the ops' keys in
    /// Redis.
    async fn apply_in_calls(
        &self,
        ops: &[CounterOp],
        keys: &[String],
        deadline: Deadline,
    ) -> Result<Vec<Count>, StoreError> {
        let args = |call: &mut redis::Cmd, group: &[usize]| {
            call.arg(BUCKETS);
            for &index in group {
                call.arg(&script_args(&ops[index])[..]);
            }
        };
        let answers = self
            .scripted(&scripts::APPLY)
            .run::<3>(keys, args, deadline)
            .await;
        self.link.report_within(deadline.budget, &answers);
        let answers = answers?;
        Ok(answers
            .into_iter()
            .map(|[value, resets_in_ms, fits]| Count {
                value: value.max(0) as u64,
                fits: fits == 1,
                resets_in: millis(resets_in_ms),
            })
            .collect())
    }
}

/// The numbers `apply.lua` takes for one op, after its first argument (the sliding windows'
/// buckets per window, [`BUCKETS`]): algorithm, window ms, limit, burst, delta, admission.
pub fn script_args(op: &CounterOp) -> [i64; 6] {
    let algorithm = match op.algorithm {
        Algorithm::FixedWindow => 0,
        Algorithm::SlidingWindow => 1,
        Algorithm::TokenBucket => 2,
    };
    let admission = match op.admission {
        Admission::CountAll => 0,
        Admission::Fit => 1,
        Admission::WithPrevious => 2,
        Admission::CountAllWithPrevious => 3,
    };
    let number = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    [
        algorithm,
        number(op.window_ms.max(1)),
        number(op.limit),
        number(op.burst),
        op.delta,
        admission,
    ]
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

impl CounterStore for RedisStore {
    fn apply_by<'a>(
        &'a self,
        ops: &'a [CounterOp],
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<Vec<Count>, StoreError>> {
        if ops.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        Box::pin(self.apply_all(ops, deadline))
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<CounterPage, StoreError>> {
        let reader = self.scripted(&scripts::READ);
        Box::pin(list::page(reader, &self.prefix, prefix, cursor, limit))
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let key = self.redis_key(key);
        Box::pin(async move {
            let removed: u64 = self
                .link
                .run_slow(|mut connection| async move {
                    redis::cmd("DEL")
                        .arg(&key)
                        .query_async(&mut connection)
                        .await
                })
                .await?;
            Ok(removed > 0)
        })
    }

    /// `DBSIZE` (summed over the masters of a Cluster): every key of the database, counters of
    /// other prefixes, registry entries and foreign keys included.
    fn approximate_len(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.link.run_slow(|mut connection| async move {
            redis::cmd("DBSIZE").query_async(&mut connection).await
        }))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
