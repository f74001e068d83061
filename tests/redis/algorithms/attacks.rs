//! Hostile inputs against the algorithms on Redis, single and Cluster (see
//! `common::algorithm_attacks`): the longest lists on the largest request (1,024 keys in one
//! request, one script call per hash slot), the largest hits and refunds, the largest limits.

use crate::common::Service;
use crate::common::algorithm_attacks::{
    LIMITS, the_largest_hits_and_refunds_leave_every_counter_sane,
    the_longest_lists_on_the_largest_request_count_all_or_nothing,
};
use crate::common::redis::{RedisCluster, RedisServer};

/// 1,024 keys in one request take Redis a few milliseconds of script time; on a loaded 2-core
/// machine more than the default timeout allows.
const TIMEOUT: &str = "2s";

async fn on_redis(url: &str, flags: &[&str]) {
    let args = [&["--redis-url", url, "--redis-timeout", TIMEOUT][..], flags].concat();
    let service = Service::start(&[("attack.yaml", LIMITS.as_str())], &args).await;
    let mut client = service.client().await;
    the_longest_lists_on_the_largest_request_count_all_or_nothing(&mut client, &service.http())
        .await;
    the_largest_hits_and_refunds_leave_every_counter_sane(&mut client).await;
}

#[tokio::test]
async fn on_redis_hostile_lists_and_hits_leave_every_counter_sane() {
    let redis = RedisServer::start();
    on_redis(&redis.url(), &[]).await;
}

#[tokio::test]
async fn on_redis_cluster_hostile_lists_and_hits_leave_every_counter_sane() {
    let cluster = RedisCluster::start();
    on_redis(&cluster.url(), &["--redis-type", "cluster"]).await;
}
