//! One request's script calls: a single call on a single server; on a Cluster, one call per hash
//! slot (a script's keys must share a slot), sent as one pipeline per master, every master at
//! once. A script Redis does not know yet (after a restart) is loaded and only the calls that
//! were refused are sent again, so no call ever runs twice.

use std::sync::Arc;

use futures_util::future::{join_all, try_join_all};
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind, Value,
};

use super::cluster::{self, SlotMap};
use super::connect::Connection;

/// Runs `script` over `keys` and returns the `N` integers each key's part of the script
/// answers, in key order. `args` adds the arguments of one call, given the indexes of its keys.
pub async fn run<const N: usize>(
    connection: Connection,
    slots: Option<Arc<SlotMap>>,
    script: &Script,
    keys: &[String],
    args: impl Fn(&mut Cmd, &[usize]),
) -> RedisResult<Vec<[i64; N]>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let groups = slot_groups(keys, slots.is_some());
    let calls: Vec<Cmd> = groups
        .iter()
        .map(|(_, group)| {
            let mut call = redis::cmd("EVALSHA");
            call.arg(script.get_hash()).arg(group.len());
            for &index in group {
                call.arg(&keys[index]);
            }
            args(&mut call, group);
            call
        })
        .collect();
    let everything: Vec<usize> = (0..calls.len()).collect();
    let mut replies = send(&connection, slots.as_deref(), &groups, &calls, &everything).await?;
    let refused: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, reply)| is_no_script(reply))
        .map(|(index, _)| index)
        .collect();
    if !refused.is_empty() {
        script.load_async(&mut connection.clone()).await?;
        let again = send(&connection, slots.as_deref(), &groups, &calls, &refused).await?;
        for (index, reply) in refused.into_iter().zip(again) {
            replies[index] = reply;
        }
    }
    rows(keys.len(), &groups, replies)
}

/// Puts each call's reply back in key order: `replies[i]` answers `groups[i]` with `N` numbers
/// per key. A missing reply, or one with the wrong count, is an error and never a count of 0:
/// a zero would admit the request.
fn rows<const N: usize>(
    keys: usize,
    groups: &[(u16, Vec<usize>)],
    replies: Vec<Reply>,
) -> RedisResult<Vec<[i64; N]>> {
    if replies.len() != groups.len() {
        return Err(wrong_count("a counter batch", replies.len(), groups.len()));
    }
    let mut out = vec![[0; N]; keys];
    for ((_, group), reply) in groups.iter().zip(replies) {
        let numbers = Vec::<i64>::from_redis_value(reply?.extract_error()?)?;
        if numbers.len() != N * group.len() {
            return Err(wrong_count(
                "a counter script",
                numbers.len(),
                N * group.len(),
            ));
        }
        for (&index, row) in group.iter().zip(numbers.chunks_exact(N)) {
            out[index].copy_from_slice(row);
        }
    }
    Ok(out)
}

fn wrong_count(what: &str, got: usize, wanted: usize) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "wrong number of replies",
        format!("{what} answered {got} values where {wanted} were expected"),
    ))
}

/// One call's reply: a failed pipeline fails the whole request, a refused call only itself.
type Reply = RedisResult<Value>;

/// Sends the calls numbered `which` and returns their replies in that order.
async fn send(
    connection: &Connection,
    slots: Option<&SlotMap>,
    groups: &[(u16, Vec<usize>)],
    calls: &[Cmd],
    which: &[usize],
) -> RedisResult<Vec<Reply>> {
    match (connection, slots) {
        (Connection::Cluster(cluster), Some(slots)) => {
            by_master(cluster, slots, groups, calls, which).await
        }
        (connection, _) => {
            let sends = which.iter().map(|&index| {
                let mut connection = connection.clone();
                async move { connection.req_packed_command(&calls[index]).await }
            });
            Ok(join_all(sends).await)
        }
    }
}

/// One pipeline per master; a slot the map does not know yet goes alone, routed by its key.
async fn by_master(
    cluster: &ClusterConnection,
    slots: &SlotMap,
    groups: &[(u16, Vec<usize>)],
    calls: &[Cmd],
    which: &[usize],
) -> RedisResult<Vec<Reply>> {
    let mut masters: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for &index in which {
        let master = slots.owner(groups[index].0);
        match masters
            .iter_mut()
            .find(|(seen, _)| *seen == master && master.is_some())
        {
            Some((_, indexes)) => indexes.push(index),
            None => masters.push((master, vec![index])),
        }
    }
    let sends = masters.iter().map(|(master, indexes)| {
        let mut cluster = cluster.clone();
        async move {
            let commands: Vec<Cmd> = indexes.iter().map(|&index| calls[index].clone()).collect();
            let replies: Vec<Reply> = match master {
                Some(master) => {
                    let replies = cluster::pipeline(&mut cluster, master, &commands).await?;
                    if replies.len() != commands.len() {
                        return Err(wrong_count("a pipeline", replies.len(), commands.len()));
                    }
                    replies.into_iter().map(Ok).collect()
                }
                None => vec![cluster.req_packed_command(&commands[0]).await],
            };
            Ok::<_, RedisError>(indexes.iter().copied().zip(replies).collect::<Vec<_>>())
        }
    });
    let mut replies: Vec<(usize, Reply)> =
        try_join_all(sends).await?.into_iter().flatten().collect();
    // Back in the order of `which`.
    replies.sort_by_key(|(index, _)| which.iter().position(|wanted| wanted == index));
    Ok(replies.into_iter().map(|(_, reply)| reply).collect())
}

/// NOSCRIPT: the call did not run; load the script and send it again.
fn is_no_script(reply: &Reply) -> bool {
    match reply {
        Ok(Value::ServerError(error)) => error.kind() == Some(ServerErrorKind::NoScript),
        Err(error) => error.kind() == ErrorKind::Server(ServerErrorKind::NoScript),
        Ok(_) => false,
    }
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
        let out = rows::<2>(3, &groups, vec![reply(&[5, 10, 7, 20]), reply(&[6, 30])]).unwrap();
        assert_eq!(out, [[5, 10], [6, 30], [7, 20]]);
    }

    #[test]
    fn a_short_batch_reply_is_an_error_not_a_count_of_zero() {
        let groups = vec![(1, vec![0]), (2, vec![1])];
        let error = rows::<2>(2, &groups, vec![reply(&[5, 10])]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedReturnType);
        assert!(error.to_string().contains("1 values where 2"), "{error}");
    }

    #[test]
    fn a_short_script_reply_is_an_error_not_a_count_of_zero() {
        let groups = vec![(1, vec![0, 1])];
        assert!(rows::<2>(2, &groups, vec![reply(&[5, 10])]).is_err());
        assert!(rows::<2>(2, &groups, vec![reply(&[5, 10, 1, 2, 3, 4])]).is_err());
    }
}
