//! Listing the memory store for `/api/counters`: a page is a bounded walk over the shards from
//! a cursor (shard and index), so a page costs the same however many counters there are.

use std::time::Duration;

use super::{MemoryStore, SHARDS, lock};
use crate::store::{CounterEntry, CounterPage, StoreError};

/// Counters examined per listed counter requested, at most: a page on a store where few keys
/// match the prefix ends early (with a cursor to go on) instead of scanning everything.
const SCAN_FACTOR: usize = 16;

impl MemoryStore {
    /// A page of live counters whose key starts with `prefix`, from `cursor` (a position an
    /// earlier page handed out; `None` to start).
    pub(super) fn list_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<CounterPage, StoreError> {
        let cursor = match cursor {
            None => Position::default(),
            Some(text) => {
                Position::parse(text).ok_or_else(|| StoreError::BadCursor(text.to_string()))?
            }
        };
        Ok(self.walk(prefix, cursor, limit))
    }

    fn walk(&self, prefix: &str, cursor: Position, limit: usize) -> CounterPage {
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
