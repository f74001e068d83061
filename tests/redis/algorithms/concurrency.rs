//! Exactness under concurrency on Redis: 64 callers racing over gRPC on one descriptor are
//! admitted exactly what its algorithm allows from fresh (20 for every rule of [`LIMITS`]), on a
//! single server and a Cluster, across two service processes on one Redis and across two nodes
//! whose clocks are 30 s apart (Redis's clock decides); and a list's counters never drift apart.

use std::time::Duration;

use crate::common::algorithms::{
    LIMITS, clients, every_algorithm_admits_exactly_twenty, list_counters_agree,
};
use crate::common::process::Node;
use crate::common::redis::{RedisCluster, RedisServer};
use crate::common::{self, Service, config_dir};

/// How long a call may wait for Redis here: 64 racing calls on a loaded 2-core machine may take
/// long, and a call that times out may still have been counted, which would blur the count.
const RACE_TIMEOUT: &str = "5s";

/// One node, two service processes, and two nodes 30 s apart, all on the Redis at `url`.
async fn on_redis(url: &str, flags: &[&str]) {
    let mut args = vec!["--redis-url", url, "--redis-timeout", RACE_TIMEOUT];
    args.extend_from_slice(flags);
    let files = [("algo.yaml", LIMITS)];

    let one = Service::start(&files, &[&args[..], &["--node-id", "one"]].concat()).await;
    every_algorithm_admits_exactly_twenty(&clients(&one, 8).await, "one-node").await;
    list_counters_agree(&one.http(), "one-node", 20).await;

    let limits = config_dir(&files);
    let config = limits.path().to_str().unwrap();
    let processes = ["first", "second"]
        .map(|id| Node::start(&[&args[..], &["--config", config, "--node-id", id]].concat()));
    let mut spread = Vec::new();
    for process in &processes {
        for _ in 0..4 {
            spread.push(common::connect(process.grpc_addr).await);
        }
    }
    every_algorithm_admits_exactly_twenty(&spread, "two-processes").await;
    list_counters_agree(&one.http(), "two-processes", 20).await;

    let behind = Service::start(&files, &[&args[..], &["--node-id", "behind"]].concat()).await;
    let ahead = Service::start(&files, &[&args[..], &["--node-id", "ahead"]].concat()).await;
    ahead.clock.advance(Duration::from_secs(30));
    let skewed = [clients(&behind, 4).await, clients(&ahead, 4).await].concat();
    every_algorithm_admits_exactly_twenty(&skewed, "skewed-clocks").await;
    list_counters_agree(&ahead.http(), "skewed-clocks", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_redis_every_algorithm_admits_exactly_what_it_allows() {
    let redis = RedisServer::start();
    on_redis(&redis.url(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_redis_cluster_every_algorithm_admits_exactly_what_it_allows() {
    let cluster = RedisCluster::start();
    on_redis(&cluster.url(), &["--redis-type", "cluster"]).await;
}
