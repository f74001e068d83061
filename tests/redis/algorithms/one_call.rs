//! A list of limits is decided in one script call, also on a Cluster and through the store's
//! coalesced pipelines: Redis's own command statistics count the `EVALSHA` calls a request of
//! two lists made (one per list on a Cluster, whose lists' keys lie in one slot each; one for
//! the whole request on a single server).

use crate::common::algorithms::LIMITS;
use crate::common::redis::{RedisCluster, RedisServer};
use crate::common::{Code, Service, ask, code, request};

/// `EVALSHA` calls a Redis node ran since its statistics were last reset.
fn evalsha_calls(node: &RedisServer) -> u64 {
    let stats = node.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a number of calls"))
}

/// A request of two lists (three limits each) for two users, after one that loads the script.
async fn two_lists(nodes: &[RedisServer], url: &str, flags: &[&str]) -> u64 {
    let args = [&["--redis-url", url][..], flags].concat();
    let service = Service::start(&[("algo.yaml", LIMITS)], &args).await;
    let mut client = service.client().await;
    ask(&mut client, request("algo", &[&[("list", "warm-up")]])).await;
    for node in nodes {
        node.cli(&["CONFIG", "RESETSTAT"]);
    }
    let both = request("algo", &[&[("list", "ann")], &[("list", "bob")]]);
    assert_eq!(code(&ask(&mut client, both).await), Code::Ok);
    nodes.iter().map(evalsha_calls).sum()
}

#[tokio::test]
async fn on_redis_a_request_of_two_lists_is_one_script_call() {
    let redis = RedisServer::start();
    let calls = two_lists(std::slice::from_ref(&redis), &redis.url(), &[]).await;
    assert_eq!(calls, 1, "six limits, one call");
}

#[tokio::test]
async fn on_redis_cluster_each_list_is_one_script_call() {
    let cluster = RedisCluster::start();
    let flags = ["--redis-type", "cluster"];
    let calls = two_lists(&cluster.nodes, &cluster.url(), &flags).await;
    assert_eq!(calls, 2, "one call per list, each in its own slot");
}
