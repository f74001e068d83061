//! Two Redis, as the Go service's REDIS_PERSECOND: the limits whose window is one second (unit
//! `second`) are counted in a Redis of their own, every other in the main one.
//!
//! Each op goes by its own window, except the limits of one list: a list is judged all or
//! nothing in one call, so it stays whole in one Redis, the per-second one only when all its
//! limits are per second. A whole request's run (`--stop-cache-key-increment-when-overlimit`)
//! that spreads over both Redis is judged in two steps ([`super::two_steps`]), as Go does.
//! Listings go through the main Redis, then the per-second one; resets remove the key from both.

use std::sync::Arc;
use std::time::Instant;

use super::{BoxFuture, Count, CounterOp, CounterPage, CounterStore, StoreError, two_steps};
use crate::key::list_tag;

/// An op's window that makes it per second.
const ONE_SECOND_MS: u64 = 1_000;

/// A listing cursor in the per-second Redis starts with this (`s` alone: its start); one in the
/// main Redis with `m:`.
const PER_SECOND_CURSOR: &str = "s";
const MAIN_CURSOR: &str = "m:";

pub struct PerSecondSplit {
    main: Arc<dyn CounterStore>,
    per_second: Arc<dyn CounterStore>,
}

impl PerSecondSplit {
    pub fn new(main: Arc<dyn CounterStore>, per_second: Arc<dyn CounterStore>) -> PerSecondSplit {
        PerSecondSplit { main, per_second }
    }

    /// Applies each op in the Redis `per_second[index]` says, the two calls at once.
    async fn apply_split(
        &self,
        ops: &[CounterOp],
        per_second: &[bool],
        deadline: Option<Instant>,
    ) -> Result<Vec<Count>, StoreError> {
        // Most requests lie in one Redis: their ops go as they are, without copies.
        if !per_second.contains(&true) {
            return self.main.apply_by(ops, deadline).await;
        }
        if !per_second.contains(&false) {
            return self.per_second.apply_by(ops, deadline).await;
        }
        let part = |wanted: bool| -> Vec<CounterOp> {
            ops.iter()
                .zip(per_second)
                .filter(|(_, second)| **second == wanted)
                .map(|(op, _)| op.clone())
                .collect()
        };
        let (main_ops, second_ops) = (part(false), part(true));
        let (main, second) = futures_util::future::join(
            self.main.apply_by(&main_ops, deadline),
            self.per_second.apply_by(&second_ops, deadline),
        )
        .await;
        let (mut main, mut second) = (main?.into_iter(), second?.into_iter());
        per_second
            .iter()
            .map(|&is_second| {
                if is_second {
                    second.next()
                } else {
                    main.next()
                }
            })
            .collect::<Option<Vec<Count>>>()
            .ok_or_else(|| StoreError::Protocol("a Redis answered fewer counts than ops".into()))
    }

    async fn apply_all(
        &self,
        ops: &[CounterOp],
        deadline: Option<Instant>,
    ) -> Result<Vec<Count>, StoreError> {
        let per_second = placements(ops);
        let apart = |index: usize| per_second[index] != per_second[index - 1];
        if !two_steps::spans(ops, apart) {
            return self.apply_split(ops, &per_second, deadline).await;
        }
        let looked = self
            .apply_split(&two_steps::looks(ops), &per_second, deadline)
            .await?;
        let counts = two_steps::counts(ops, &looked, apart);
        self.apply_split(&counts, &per_second, deadline).await
    }
}

/// For each op, whether it is counted in the per-second Redis: a one-second window, unless it is
/// a limit of a list (consecutive ops sharing a list tag) that has a longer one.
fn placements(ops: &[CounterOp]) -> Vec<bool> {
    let mut per_second: Vec<bool> = ops.iter().map(|op| op.window_ms == ONE_SECOND_MS).collect();
    let mut start = 0;
    while start < ops.len() {
        let tag = list_tag(&ops[start].key);
        let end = start
            + 1
            + ops[start + 1..]
                .iter()
                .take_while(|op| tag.is_some() && list_tag(&op.key) == tag)
                .count();
        if per_second[start..end].contains(&false) {
            per_second[start..end].fill(false);
        }
        start = end;
    }
    per_second
}

impl CounterStore for PerSecondSplit {
    fn apply_by<'a>(
        &'a self,
        ops: &'a [CounterOp],
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<Vec<Count>, StoreError>> {
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
        Box::pin(async move {
            let (in_per_second, inner) = match cursor {
                None => (false, None),
                Some(PER_SECOND_CURSOR) => (true, None),
                Some(text) => match (
                    text.strip_prefix(MAIN_CURSOR),
                    text.strip_prefix(PER_SECOND_CURSOR)
                        .and_then(|rest| rest.strip_prefix(':')),
                ) {
                    (Some(inner), _) => (false, Some(inner)),
                    (_, Some(inner)) => (true, Some(inner)),
                    _ => return Err(StoreError::BadCursor(text.to_string())),
                },
            };
            let store = if in_per_second {
                &self.per_second
            } else {
                &self.main
            };
            let mut page = store.list(prefix, inner, limit).await?;
            page.next_cursor = match (in_per_second, page.next_cursor) {
                (false, Some(next)) => Some(format!("{MAIN_CURSOR}{next}")),
                (false, None) => Some(PER_SECOND_CURSOR.to_string()),
                (true, Some(next)) => Some(format!("{PER_SECOND_CURSOR}:{next}")),
                (true, None) => None,
            };
            Ok(page)
        })
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let (main, second) =
                futures_util::future::join(self.main.reset(key), self.per_second.reset(key)).await;
            Ok(main? | second?)
        })
    }

    fn approximate_len(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let (main, second) = futures_util::future::join(
                self.main.approximate_len(),
                self.per_second.approximate_len(),
            )
            .await;
            Ok(main? + second?)
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Admission;

    fn op(key: &str, window_secs: u64, admission: Admission) -> CounterOp {
        CounterOp {
            admission,
            ..CounterOp::count_all(key.into(), window_secs, 5, 1)
        }
    }

    #[test]
    fn one_second_windows_go_to_their_redis_and_a_list_stays_whole() {
        let list = "|{00000000000000aa}";
        let ops = [
            op("second", 1, Admission::CountAll),
            op("minute", 60, Admission::CountAll),
            op(&format!("a{list}"), 1, Admission::Fit),
            op(&format!("b{list}"), 60, Admission::WithPrevious),
            op("|{00000000000000bb}", 1, Admission::Fit),
        ];
        assert_eq!(placements(&ops), [true, false, false, false, true]);
    }
}
