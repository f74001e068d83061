//! One request's script calls: a single call on a single server; on a Cluster, one call per hash
//! slot (a script's keys must share a slot), each to the master that owns it. The calls go
//! through the store's [`Coalescer`], so they travel in pipelines with other requests' calls. A
//! script Redis does not know yet (after a restart) is loaded and only the calls that were
//! refused are sent again, so no call ever runs twice.

use std::time::Instant;

use futures_util::future::join_all;
use redis::{Cmd, Script, ServerErrorKind, Value};
use smallvec::SmallVec;

use super::cluster::{self, SlotMap};
use super::coalesce::Coalescer;
use super::lanes::{Deadline, Reply, Route};
use super::link::RedisLink;
use crate::store::StoreError;

/// A few of something per request, inline: a request has a few keys, in one slot group
/// outside a Cluster.
type Few<T> = SmallVec<[T; 4]>;

/// Key indexes by hash slot.
type Groups = SmallVec<[(u16, Few<usize>); 1]>;

/// Bytes of a script call besides its keys: the command, the script's SHA1, the key count and
/// two numbers per key, with their RESP framing.
const CALL_BYTES: usize = 96;

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
            let key_bytes: usize = group.iter().map(|&key| keys[key].len() + 48).sum();
            let mut command = Cmd::with_capacity(3 + 3 * group.len(), CALL_BYTES + key_bytes);
            command
                .arg("EVALSHA")
                .arg(self.script.get_hash())
                .arg(group.len());
            for &key in group {
                command.arg(&keys[key]);
            }
            args(&mut command, group);
            (route(slots.as_deref(), *slot), command)
        };
        let mut replies = self.send(&call, 0..groups.len(), deadline).await;
        let refused: Few<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, reply)| is_no_script(reply))
            .map(|(index, _)| index)
            .collect();
        if !refused.is_empty() {
            self.load(deadline.at).await?;
            let again = self.send(&call, refused.iter().copied(), deadline).await;
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
        which: impl ExactSizeIterator<Item = usize>,
        deadline: Deadline,
    ) -> Few<Reply> {
        let mut answers = which.map(|index| {
            let (route, command) = call(index);
            self.coalescer.call(command, route, deadline)
        });
        match (answers.next(), answers.len()) {
            (Some(only), 0) => smallvec::smallvec![only.await],
            (Some(first), _) => join_all(std::iter::once(first).chain(answers)).await.into(),
            (None, _) => Few::new(),
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
    groups: &[(u16, Few<usize>)],
    replies: impl IntoIterator<Item = Reply>,
) -> Result<Vec<[i64; 2]>, StoreError> {
    let mut out = vec![[0, 0]; keys];
    for ((_, group), reply) in groups.iter().zip(replies) {
        let numbers = match reply? {
            Value::Array(numbers) if numbers.len() == 2 * group.len() => numbers,
            Value::Array(numbers) => {
                return Err(StoreError::Protocol(format!(
                    "a counter script answered {} values where {} were expected",
                    numbers.len(),
                    2 * group.len()
                )));
            }
            other => {
                return Err(StoreError::Protocol(format!(
                    "a counter script answered {other:?}, not a list of numbers"
                )));
            }
        };
        for (&index, pair) in group.iter().zip(numbers.chunks_exact(2)) {
            out[index] = [integer(&pair[0])?, integer(&pair[1])?];
        }
    }
    Ok(out)
}

fn integer(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(number) => Ok(*number),
        other => Err(StoreError::Protocol(format!(
            "a counter script answered {other:?}, not a number"
        ))),
    }
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
fn slot_groups(keys: &[String], cluster: bool) -> Groups {
    if !cluster {
        return smallvec::smallvec![(0, (0..keys.len()).collect())];
    }
    let mut groups = Groups::new();
    for (index, key) in keys.iter().enumerate() {
        let slot = cluster::slot(key);
        match groups.iter_mut().find(|(seen, _)| *seen == slot) {
            Some((_, group)) => group.push(index),
            None => groups.push((slot, smallvec::smallvec![index])),
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

    fn groups(groups: &[(u16, &[usize])]) -> Groups {
        groups
            .iter()
            .map(|(slot, keys)| (*slot, keys.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn replies_go_back_in_key_order() {
        let groups = groups(&[(1, &[0, 2]), (2, &[1])]);
        let out = pairs(3, &groups, vec![reply(&[5, 10, 7, 20]), reply(&[6, 30])]).unwrap();
        assert_eq!(out, [[5, 10], [6, 30], [7, 20]]);
    }

    #[test]
    fn a_short_script_reply_is_an_error_not_a_count_of_zero() {
        let groups = groups(&[(1, &[0, 1])]);
        assert!(pairs(2, &groups, vec![reply(&[5, 10])]).is_err());
        assert!(pairs(2, &groups, vec![reply(&[5, 10, 1, 2, 3, 4])]).is_err());
    }

    #[test]
    fn a_failed_call_fails_the_request() {
        let groups = groups(&[(1, &[0]), (2, &[1])]);
        let failed = Err(StoreError::Unavailable("gone".into()));
        let error = pairs(2, &groups, vec![reply(&[5, 10]), failed]).unwrap_err();
        assert_eq!(error, StoreError::Unavailable("gone".into()));
    }
}
