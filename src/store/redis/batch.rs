//! One request's script calls: a single call on a single server; on a Cluster, one call per hash
//! slot (a script's keys must share a slot), each to the master that owns it. The calls go
//! through the store's [`Coalescer`], so they travel in pipelines with other requests' calls. A
//! script Redis does not know yet (after a restart) is loaded and only the calls that were
//! refused are sent again, so no call ever runs twice.

use std::time::Instant;

use futures_util::future::join_all;
use redis::{Cmd, FromRedisValue, Script, ServerErrorKind, Value};

use super::cluster::{self, SlotMap};
use super::coalesce::Coalescer;
use super::lanes::{Deadline, Reply, Route};
use super::link::RedisLink;
use crate::store::StoreError;

/// A script over some keys, and where its calls go.
pub struct Scripted<'a> {
    pub link: &'a RedisLink,
    pub coalescer: &'a Coalescer,
    pub script: &'a Script,
}

impl Scripted<'_> {
    /// Runs the script over `keys` by `deadline` and returns the two integers each key's part
    /// of the script answers, in key order. `args` adds the arguments of one call, given the
    /// indexes of its keys.
    pub async fn run(
        &self,
        keys: &[String],
        args: impl Fn(&mut Cmd, &[usize]),
        deadline: Deadline,
    ) -> Result<Vec<[i64; 2]>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let slots = self.link.slot_map();
        let groups = slot_groups(keys, slots.is_some());
        let call = |index: usize| {
            let (slot, group) = &groups[index];
            let mut command = redis::cmd("EVALSHA");
            command.arg(self.script.get_hash()).arg(group.len());
            for &key in group {
                command.arg(&keys[key]);
            }
            args(&mut command, group);
            (route(slots.as_deref(), *slot), command)
        };
        let everything: Vec<usize> = (0..groups.len()).collect();
        let mut replies = self.send(&call, &everything, deadline).await;
        let refused: Vec<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, reply)| is_no_script(reply))
            .map(|(index, _)| index)
            .collect();
        if !refused.is_empty() {
            self.load(deadline.at).await?;
            let again = self.send(&call, &refused, deadline).await;
            for (index, reply) in refused.into_iter().zip(again) {
                replies[index] = reply;
            }
        }
        let replies = replies.into_iter().map(|reply| {
            reply.and_then(|value| {
                value
                    .extract_error()
                    .map_err(|error| self.link.classify(&error))
            })
        });
        pairs(keys.len(), &groups, replies)
    }

    /// Sends the calls numbered `which` and returns their replies in that order.
    async fn send(
        &self,
        call: &impl Fn(usize) -> (Route, Cmd),
        which: &[usize],
        deadline: Deadline,
    ) -> Vec<Reply> {
        let mut answers = which.iter().map(|&index| {
            let (route, command) = call(index);
            self.coalescer.call(command, route, deadline)
        });
        match (answers.next(), answers.len()) {
            (Some(only), 0) => vec![only.await],
            (Some(first), _) => join_all(std::iter::once(first).chain(answers)).await,
            (None, _) => Vec::new(),
        }
    }

    /// Loads the script (on every master of a Cluster).
    async fn load(&self, deadline: Instant) -> Result<(), StoreError> {
        self.link
            .run_by(deadline, |mut connection| async move {
                self.script.load_async(&mut connection).await.map(drop)
            })
            .await
    }
}

/// Puts each call's reply back in key order: `replies[i]` answers `groups[i]` with two numbers
/// per key. A failed call fails the request, and a reply with the wrong count is an error,
/// never a count of 0: a zero would admit the request.
fn pairs(
    keys: usize,
    groups: &[(u16, Vec<usize>)],
    replies: impl IntoIterator<Item = Reply>,
) -> Result<Vec<[i64; 2]>, StoreError> {
    let mut out = vec![[0, 0]; keys];
    for ((_, group), reply) in groups.iter().zip(replies) {
        let numbers = Vec::<i64>::from_redis_value(reply?)
            .map_err(|error| StoreError::Protocol(error.to_string()))?;
        if numbers.len() != 2 * group.len() {
            return Err(StoreError::Protocol(format!(
                "a counter script answered {} values where {} were expected",
                numbers.len(),
                2 * group.len()
            )));
        }
        for (&index, pair) in group.iter().zip(numbers.chunks_exact(2)) {
            out[index] = [pair[0], pair[1]];
        }
    }
    Ok(out)
}

/// Where the call for `slot` goes: the one server, its master, or routed by its key while the
/// slot map does not know it.
fn route(slots: Option<&SlotMap>, slot: u16) -> Route {
    match slots.map(|slots| slots.owner(slot)) {
        None => Route::Server,
        Some(Some(master)) => Route::Master(master.clone()),
        Some(None) => Route::ByKey,
    }
}

/// NOSCRIPT: the call did not run; load the script and send it again.
fn is_no_script(reply: &Reply) -> bool {
    matches!(reply, Ok(Value::ServerError(error)) if error.kind() == Some(ServerErrorKind::NoScript))
}

/// Key indexes grouped by hash slot, in first-seen order (one group outside a Cluster). A
/// request has a few dozen keys at most, so a linear search beats hashing.
fn slot_groups(keys: &[String], cluster: bool) -> Vec<(u16, Vec<usize>)> {
    if !cluster {
        return vec![(0, (0..keys.len()).collect())];
    }
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let slot = cluster::slot(key);
        match groups.iter_mut().find(|(seen, _)| *seen == slot) {
            Some((_, group)) => group.push(index),
            None => groups.push((slot, vec![index])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(numbers: &[i64]) -> Reply {
        Ok(Value::Array(
            numbers.iter().map(|&n| Value::Int(n)).collect(),
        ))
    }

    #[test]
    fn replies_go_back_in_key_order() {
        let groups = vec![(1, vec![0, 2]), (2, vec![1])];
        let out = pairs(3, &groups, vec![reply(&[5, 10, 7, 20]), reply(&[6, 30])]).unwrap();
        assert_eq!(out, [[5, 10], [6, 30], [7, 20]]);
    }

    #[test]
    fn a_short_script_reply_is_an_error_not_a_count_of_zero() {
        let groups = vec![(1, vec![0, 1])];
        assert!(pairs(2, &groups, vec![reply(&[5, 10])]).is_err());
        assert!(pairs(2, &groups, vec![reply(&[5, 10, 1, 2, 3, 4])]).is_err());
    }

    #[test]
    fn a_failed_call_fails_the_request() {
        let groups = vec![(1, vec![0]), (2, vec![1])];
        let failed = Err(StoreError::Unavailable("gone".into()));
        let error = pairs(2, &groups, vec![reply(&[5, 10]), failed]).unwrap_err();
        assert_eq!(error, StoreError::Unavailable("gone".into()));
    }
}
