//! The Redis store on real servers, for each kind of deployment: it keeps the store contract,
//! two service nodes that share it (with clocks 30 s apart) admit exactly the limit between
//! them over gRPC, and no key it writes is ever left without a TTL.

mod common;

use std::time::Duration;

use common::redis::{RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, keys_and_ttls};
use common::redis_store::{TEST_TIMEOUT, connect};
use common::{Code, Service, ask, code, request};
use ratelimiter::store::CounterStore;

const LIMITS: &str = "
domain: shared
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 4}
";

/// Two nodes on one Redis, asked in turn: exactly 4 of 10 requests are admitted. The second
/// node's clock runs 30 s ahead, which changes nothing: windows come from Redis's clock.
async fn two_nodes_admit_exactly_the_limit(url: &str, flags: &[&str]) {
    let mut args = vec!["--redis-url", url, "--redis-timeout", TEST_TIMEOUT];
    args.extend_from_slice(flags);
    let first = Service::start(
        &[("shared.yaml", LIMITS)],
        &[&args[..], &["--node-id", "first"]].concat(),
    )
    .await;
    let second = Service::start(
        &[("shared.yaml", LIMITS)],
        &[&args[..], &["--node-id", "second"]].concat(),
    )
    .await;
    second.clock.advance(Duration::from_secs(30));
    let mut clients = [first.client().await, second.client().await];
    let mut admitted = 0;
    for turn in 0..10 {
        let response = ask(
            &mut clients[turn % 2],
            request("shared", &[&[("user", "alice")]]),
        )
        .await;
        if code(&response) == Code::Ok {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4);
}

/// Counters of both kinds under some load, then a look at every key of the server.
async fn no_key_is_left_without_a_ttl(store: &dyn CounterStore, ports: &[u16]) {
    for index in 0..200 {
        let key = format!("load|{index}");
        store
            .apply(&[
                common::contract::op(&key, 60, 1),
                common::contract::op(&key, 60, -1),
                common::contract::op(&format!("{key}|b"), 1, 2),
            ])
            .await
            .unwrap();
        store
            .slide(&format!("{key}|s"), Duration::from_secs(10), 5, 1)
            .await
            .unwrap();
    }
    let mut seen = 0;
    for &port in ports {
        for (key, ttl) in keys_and_ttls(port) {
            if key.starts_with("ratelimiter:nodes:") {
                continue;
            }
            seen += 1;
            assert!(ttl > 0, "{key} has PTTL {ttl}");
        }
    }
    assert!(seen >= 400, "only {seen} keys were found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_redis_is_shared_exactly() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "contract:").await;
    common::contract::contract(connected.store.clone(), "single|").await;
    no_key_is_left_without_a_ttl(&*connected.store, &[redis.port]).await;
    two_nodes_admit_exactly_the_limit(&redis.url(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_master_is_shared_exactly() {
    let redis = RedisSentinel::start();
    let flags = [
        "--redis-type",
        "sentinel",
        "--redis-sentinel-master",
        SENTINEL_MASTER,
    ];
    let connected = connect(&redis.url(), &flags, "contract:").await;
    common::contract::contract(connected.store.clone(), "sentinel|").await;
    no_key_is_left_without_a_ttl(&*connected.store, &[redis.master.port]).await;
    two_nodes_admit_exactly_the_limit(&redis.url(), &flags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_is_shared_exactly() {
    let cluster = RedisCluster::start();
    let flags = ["--redis-type", "cluster"];
    let connected = connect(&cluster.url(), &flags, "contract:").await;
    common::contract::contract(connected.store.clone(), "cluster|").await;
    let ports: Vec<u16> = cluster.nodes.iter().map(|node| node.port).collect();
    no_key_is_left_without_a_ttl(&*connected.store, &ports).await;
    // Every master holds some of the keys: the listing above crossed masters.
    for &port in &ports {
        assert!(!keys_and_ttls(port).is_empty(), "no key on port {port}");
    }
    two_nodes_admit_exactly_the_limit(&cluster.url(), &flags).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fixed_window_starts_over_when_redis_time_ends_it() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "rollover:").await;
    let store = &*connected.store;
    let first = store
        .apply(&[common::contract::op("k", 1, 3)])
        .await
        .unwrap()[0];
    assert_eq!(first.value, 3);
    assert!(first.resets_in <= Duration::from_secs(1), "{first:?}");
    common::redis::eventually(Duration::from_secs(5), "the 1 s window ends", || async {
        store
            .apply(&[common::contract::op("k", 1, 0)])
            .await
            .unwrap()[0]
            .value
            == 0
    })
    .await;
    assert_eq!(
        common::contract::values(store, &[common::contract::op("k", 1, 1)]).await,
        [1]
    );
}
