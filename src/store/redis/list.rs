//! Listing counters with `SCAN`: a page is a few bounded `SCAN` calls from a cursor, never
//! `KEYS` and never the whole keyspace at once. On a Cluster every master is scanned in turn
//! (sorted by address), and the cursor names the master it is on.
//!
//! A cursor is `<scan position>[@<master>]`, always a position `SCAN` itself handed out, so a
//! listing keeps `SCAN`'s promise: a counter that lives through the whole listing is listed at
//! least once (it may be listed twice while Redis resizes its table). A `SCAN` batch is never
//! split: one that does not fit in the page is asked for again by the next page, and the first
//! batch of a page is taken whole even when it holds a few more keys than the page's limit.

use redis::cluster_routing::RoutingInfo;
use redis::{FromRedisValue, RedisResult};

use std::time::Instant;

use super::batch::Scripted;
use super::cluster::{SlotMap, to_master};
use super::connect::Connection;
use super::lanes::Deadline;
use super::link::RedisLink;
use crate::store::sliding::BUCKETS;
use crate::store::{CounterEntry, CounterPage, StoreError};

/// Most `SCAN` calls per page, so a page costs bounded work however few keys match.
const SCANS_PER_PAGE: usize = 8;

/// Most buckets `SCAN` examines in one call (Redis's `COUNT`), so that one call stays short. A
/// call examines about as many buckets as the page has room for, and a bucket holds about one
/// key, so batches rarely overshoot the room left.
const SCAN_COUNT_MAX: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    scan: u64,
    /// The Cluster master being scanned (`host:port`); `None` on a single server.
    node: Option<String>,
}

impl Position {
    fn parse(text: &str) -> Option<Position> {
        let (scan, node) = match text.split_once('@') {
            Some((_, "")) => return None,
            Some((scan, node)) => (scan, Some(node.to_string())),
            None => (text, None),
        };
        Some(Position {
            scan: scan.parse().ok()?,
            node,
        })
    }

    fn text(&self) -> String {
        match &self.node {
            Some(node) => format!("{}@{node}", self.scan),
            None => self.scan.to_string(),
        }
    }
}

/// One page of live counters whose key starts with `prefix`, from `cursor`.
pub async fn page(
    reader: Scripted<'_>,
    store_prefix: &str,
    prefix: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<CounterPage, StoreError> {
    let start = cursor
        .map(|text| Position::parse(text).ok_or_else(|| StoreError::BadCursor(text.to_string())))
        .transpose()?;
    let pattern = format!("{}*", glob_escape(&format!("{store_prefix}{prefix}")));
    let limit = limit.max(1);
    let link = reader.link;
    let deadline = Deadline {
        at: Instant::now() + link.slow_timeout(),
        budget: link.slow_timeout(),
    };
    let masters = masters(link.slot_map().as_deref());
    let (keys, next) = link
        .run_slow(|mut connection| async move {
            scan_page(
                &mut connection,
                &masters,
                start,
                &pattern,
                limit,
                SCANS_PER_PAGE,
            )
            .await
        })
        .await?;
    let read = |call: &mut redis::Cmd, _: &[usize]| {
        call.arg(BUCKETS);
    };
    let values = reader.run(&keys, read, deadline).await?;
    let counters = keys
        .into_iter()
        .zip(values)
        .filter(|(_, [value, ttl_ms])| *value >= 0 && *ttl_ms > 0)
        .filter_map(|(key, [value, ttl_ms])| {
            Some(CounterEntry {
                key: key.strip_prefix(store_prefix)?.to_string(),
                value: value as u64,
                resets_in: std::time::Duration::from_millis(ttl_ms as u64),
            })
        })
        .collect();
    Ok(CounterPage {
        counters,
        next_cursor: next.map(|position| position.text()),
    })
}

/// Every key matching `pattern` (already glob-escaped), on every master; for small sets such as
/// the node registry.
pub async fn scan_all(link: &RedisLink, pattern: &str) -> Result<Vec<String>, StoreError> {
    let masters = masters(link.slot_map().as_deref());
    link.run_slow(|mut connection| async move {
        let (keys, _) = scan_page(
            &mut connection,
            &masters,
            None,
            pattern,
            usize::MAX,
            usize::MAX,
        )
        .await?;
        Ok(keys)
    })
    .await
}

/// About `limit` matching keys in up to `scans` `SCAN` calls from `start`, and where to go on.
async fn scan_page(
    connection: &mut Connection,
    masters: &[Option<String>],
    start: Option<Position>,
    pattern: &str,
    limit: usize,
    scans: usize,
) -> RedisResult<(Vec<String>, Option<Position>)> {
    let mut at = start.unwrap_or(Position {
        scan: 0,
        node: masters.first().cloned().flatten(),
    });
    if !masters.contains(&at.node) {
        // The master this cursor was on has gone (a topology change): go on with the next.
        match next_master(masters, &at.node) {
            Some(node) => {
                at = Position {
                    scan: 0,
                    node: Some(node),
                }
            }
            None => return Ok((Vec::new(), None)),
        }
    }
    let mut keys = Vec::new();
    for _ in 0..scans {
        let room = limit - keys.len();
        let count = room.clamp(1, SCAN_COUNT_MAX);
        let (next, batch) = scan(connection, at.node.as_deref(), at.scan, pattern, count).await?;
        if !keys.is_empty() && batch.len() > room {
            // Asked for again, whole, by the next page.
            return Ok((keys, Some(at)));
        }
        keys.extend(batch);
        at.scan = next;
        if next == 0 {
            // This server is done: go on with the next master by address, if any.
            match next_master(masters, &at.node) {
                Some(node) => at.node = Some(node),
                None => return Ok((keys, None)),
            }
        }
        if keys.len() >= limit {
            break;
        }
    }
    Ok((keys, Some(at)))
}

/// The first master after `node` by address.
fn next_master(masters: &[Option<String>], node: &Option<String>) -> Option<String> {
    masters
        .iter()
        .flatten()
        .find(|next| Some(*next) > node.as_ref())
        .cloned()
}

/// The servers to scan: `[None]` for a single server, every Cluster master (sorted) otherwise.
fn masters(slots: Option<&SlotMap>) -> Vec<Option<String>> {
    match slots {
        Some(slots) => slots.masters().into_iter().map(Some).collect(),
        None => vec![None],
    }
}

/// One `SCAN` call, on `node` when in a Cluster.
async fn scan(
    connection: &mut Connection,
    node: Option<&str>,
    position: u64,
    pattern: &str,
    count: usize,
) -> RedisResult<(u64, Vec<String>)> {
    let mut command = redis::cmd("SCAN");
    command
        .arg(position)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    let reply: (u64, Vec<Vec<u8>>) = match (connection, node) {
        (Connection::Cluster(cluster), Some(node)) => {
            let routing = RoutingInfo::SingleNode(to_master(node));
            FromRedisValue::from_redis_value(cluster.route_command(command, routing).await?)?
        }
        (connection, _) => command.query_async(connection).await?,
    };
    // Keys that are not UTF-8 were not written by this service.
    let keys = reply
        .1
        .into_iter()
        .filter_map(|key| String::from_utf8(key).ok())
        .collect();
    Ok((reply.0, keys))
}

/// Escapes the glob characters of `SCAN MATCH`, so that a prefix matches only itself.
pub fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for position in [
            Position {
                scan: 0,
                node: None,
            },
            Position {
                scan: 1234,
                node: Some("10.0.0.1:6379".into()),
            },
        ] {
            assert_eq!(Position::parse(&position.text()), Some(position));
        }
        for junk in ["", "not a cursor", "a", "-2", "1.2", "1@"] {
            assert_eq!(Position::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
    }
}
