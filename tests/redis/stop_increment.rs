//! `--stop-cache-key-increment-when-overlimit` on Redis: on one server the request's counters
//! are judged in one script call; on a Cluster, whose keys lie in several hash slots, in two
//! steps (read, then count). Either way the counter of the descriptor that did not go over is
//! left as it was, in Redis itself.

use crate::common::Service;
use crate::common::redis::{RedisCluster, RedisServer};
use crate::common::redis_store::TEST_TIMEOUT;
use crate::common::stop_increment::{FILES, one_over_stops_the_others};

const STOP: &str = "--stop-cache-key-increment-when-overlimit";

/// The value Redis holds for the one key whose name contains `part`, among the servers `cli`s.
fn value_in_redis(servers: &[&RedisServer], part: &str) -> String {
    let found: Vec<String> = servers
        .iter()
        .flat_map(|server| {
            let keys = server.cli(&["--scan"]);
            keys.lines()
                .filter(|key| key.contains(part))
                .map(|key| server.cli(&["GET", key]).trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found.len(), 1, "one {part} key: {found:?}");
    found[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_redis_the_other_counter_is_left_as_it_was() {
    let redis = RedisServer::start();
    let url = redis.url();
    let flags = ["--redis-url", &url, "--redis-timeout", TEST_TIMEOUT, STOP];
    let service = Service::start(FILES, &flags).await;
    one_over_stops_the_others(&service, true).await;
    assert_eq!(
        value_in_redis(&[&redis], "roomy"),
        "2",
        "1 with the pair, 1 alone"
    );
    assert_eq!(value_in_redis(&[&redis], "tight"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_other_counter_is_left_as_it_was() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let flags = [
        "--redis-url",
        &url,
        "--redis-type",
        "cluster",
        "--redis-timeout",
        TEST_TIMEOUT,
        STOP,
    ];
    let service = Service::start(FILES, &flags).await;
    one_over_stops_the_others(&service, true).await;
    let nodes: Vec<&RedisServer> = cluster.nodes.iter().collect();
    assert_eq!(value_in_redis(&nodes, "roomy"), "2");
    assert_eq!(value_in_redis(&nodes, "tight"), "2");
}
