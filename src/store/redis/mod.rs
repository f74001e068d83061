//! The shared store: counters in Redis (a single server, a Sentinel-managed master, or a
//! Cluster), so that every node behind Envoy counts against the same limits.
//!
//! A request's operations go in one script call on a single server, and in one call per hash
//! slot on a Cluster, all sent at once; every call is bounded by `--redis-timeout`. Keys are the
//! limiter's injective keys behind `--redis-key-prefix`. Time comes from Redis, never from the
//! nodes, so nodes with skewed clocks still share each window.

mod connect;
mod link;
mod list;
pub(crate) mod scripts;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::cluster_routing::Slot;
use redis::{RedisError, Script, ScriptInvocation};

pub use connect::{Connection, RedisSetupError, redact};
pub use link::RedisLink;
pub use list::scan_all;

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
        let cluster = self.link.is_cluster();
        let answers = self
            .link
            .run(|connection| {
                invoke_by_slot(
                    connection,
                    cluster,
                    &scripts::COUNT,
                    &keys,
                    |call, group| {
                        for op in group.iter().map(|&index| &ops[index]) {
                            call.arg(op.window_secs.max(1).saturating_mul(1_000))
                                .arg(op.delta);
                        }
                    },
                )
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

/// Runs `script` over `keys`: once on a single server, once per hash slot on a Cluster (a
/// script's keys must share a slot), all calls at once. `args` adds the arguments of one call,
/// given the indexes of its keys. Every script answers two integers per key; they come back in
/// key order.
async fn invoke_by_slot(
    connection: Connection,
    cluster: bool,
    script: &Script,
    keys: &[String],
    args: impl Fn(&mut ScriptInvocation<'_>, &[usize]),
) -> redis::RedisResult<Vec<[i64; 2]>> {
    let groups = slot_groups(keys, cluster);
    let calls = groups.iter().map(|group| {
        let mut call = script.prepare_invoke();
        for &index in group {
            call.key(&keys[index]);
        }
        args(&mut call, group);
        let mut connection = connection.clone();
        async move { call.invoke_async::<Vec<i64>>(&mut connection).await }
    });
    let answers = try_join_all(calls).await?;
    let mut out = vec![[0, 0]; keys.len()];
    for (group, answer) in groups.iter().zip(answers) {
        if answer.len() != 2 * group.len() {
            return Err(RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "a counter script answered the wrong number of values",
            )));
        }
        for (&index, pair) in group.iter().zip(answer.chunks_exact(2)) {
            out[index] = [pair[0], pair[1]];
        }
    }
    Ok(out)
}

/// Key indexes grouped by hash slot, in first-seen order (one group outside a Cluster). A
/// request has a few dozen keys at most, so a linear search beats hashing.
fn slot_groups(keys: &[String], cluster: bool) -> Vec<Vec<usize>> {
    if !cluster {
        return vec![(0..keys.len()).collect()];
    }
    let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let slot = Slot::for_key(key);
        match groups.iter_mut().find(|(seen, _)| *seen == slot) {
            Some((_, group)) => group.push(index),
            None => groups.push((slot, vec![index])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
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
