//! The shared store: counters in Redis (a single server, a Sentinel-managed master, or a
//! Cluster), so that every node behind Envoy counts against the same limits.
//!
//! A request's operations go in one script call on a single server; on a Cluster, in one call
//! per hash slot, sent as one pipeline per master, all masters at once (`batch`). Every request
//! is bounded by [`RedisOptions::timeout`]. Keys are the limiter's injective keys behind a
//! prefix. Time comes from Redis, never from the nodes, so nodes with skewed clocks still share
//! each window.

mod backoff;
mod batch;
mod cluster;
mod connect;
mod link;
mod list;
mod options;
mod scripts;
mod switch;

use std::sync::Arc;
use std::time::Duration;

pub use cluster::slot;
pub use connect::{Connection, RedisSetupError, redact};
pub use link::RedisLink;
pub use list::scan_all;
pub use options::{RedisKind, RedisOptions, TlsFiles};

use super::sliding::{BUCKETS, Slide, bucket_width_ms};
use super::{BoxFuture, Count, CounterOp, CounterPage, CounterStore, StoreError};

pub struct RedisStore {
    link: Arc<RedisLink>,
    prefix: String,
}

impl RedisStore {
    /// Counters behind `prefix` on `link`'s Redis.
    pub fn new(link: Arc<RedisLink>, prefix: &str) -> RedisStore {
        RedisStore {
            link,
            prefix: prefix.to_string(),
        }
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn apply_all(&self, ops: &[CounterOp]) -> Result<Vec<Count>, StoreError> {
        let keys: Vec<String> = ops.iter().map(|op| self.redis_key(&op.key)).collect();
        let slots = self.link.slot_map();
        let answers = self
            .link
            .run(|connection| {
                batch::run(connection, slots, &scripts::COUNT, &keys, |call, group| {
                    for op in group.iter().map(|&index| &ops[index]) {
                        call.arg(op.window_secs.max(1).saturating_mul(1_000))
                            .arg(op.delta);
                    }
                })
            })
            .await?;
        Ok(answers
            .into_iter()
            .map(|[value, resets_in_ms]| Count {
                value: value.max(0) as u64,
                resets_in: millis(resets_in_ms),
            })
            .collect())
    }

    async fn slide_one(
        &self,
        key: &str,
        window: Duration,
        limit: u64,
        hits: u64,
    ) -> Result<Slide, StoreError> {
        let key = self.redis_key(key);
        let answer: Vec<i64> = self
            .link
            .run(|mut connection| async move {
                scripts::SLIDE
                    .key(&key)
                    .arg(bucket_width_ms(window))
                    .arg(window.as_millis() as u64)
                    .arg(limit)
                    .arg(hits)
                    .arg(BUCKETS)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        match answer[..] {
            [allowed, count, retry_ms] => Ok(Slide {
                allowed: allowed == 1,
                count: count.max(0) as u64,
                retry_after: millis(retry_ms),
            }),
            _ => Err(StoreError::Protocol(format!(
                "the sliding window script answered {} numbers, not 3",
                answer.len()
            ))),
        }
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

impl CounterStore for RedisStore {
    fn apply<'a>(&'a self, ops: &'a [CounterOp]) -> BoxFuture<'a, Result<Vec<Count>, StoreError>> {
        if ops.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        Box::pin(self.apply_all(ops))
    }

    fn slide<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        limit: u64,
        hits: u64,
    ) -> BoxFuture<'a, Result<Slide, StoreError>> {
        Box::pin(self.slide_one(key, window, limit, hits))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<CounterPage, StoreError>> {
        Box::pin(list::page(&self.link, &self.prefix, prefix, cursor, limit))
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
