//! The node registry on a real Redis (what `/api/nodes` shows): live nodes are listed, a node
//! that shuts down leaves at once, a killed one within its TTL, and entries come back by
//! themselves after Redis loses them.

use std::time::{Duration, SystemTime};

use crate::common;
use crate::common::Service;
use crate::common::eventually;
use crate::common::process::Node;
use crate::common::redis::RedisServer;
use crate::common::redis_store::{TEST_TIMEOUT, connect};
use ratelimiter::registry::{NodeInfo, read_nodes};
use ratelimiter::store::redis::RedisLink;

const LIMITS: &str = "domain: registry\n";

/// Registry flags short enough for a test: entries live 2 s, refreshed every 300 ms.
const FAST_REGISTRY: [&str; 4] = ["--node-ttl", "2s", "--node-heartbeat", "300ms"];

/// Generous bound for anything the registry promises "within one heartbeat" or "within TTL".
const SETTLE: Duration = Duration::from_secs(6);

async fn nodes(link: &RedisLink) -> Vec<NodeInfo> {
    read_nodes(link).await.unwrap()
}

async fn ids(link: &RedisLink) -> Vec<String> {
    nodes(link).await.into_iter().map(|node| node.id).collect()
}

async fn node_service(redis: &RedisServer, id: &str) -> Service {
    let url = redis.url();
    let mut flags = vec![
        "--redis-url",
        &url,
        "--redis-timeout",
        TEST_TIMEOUT,
        "--node-id",
        id,
    ];
    flags.extend_from_slice(&FAST_REGISTRY);
    Service::start(&[("registry.yaml", LIMITS)], &flags).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_nodes_are_listed_and_a_stopped_node_leaves_at_once() {
    let redis = RedisServer::start();
    let observer = connect(&redis.url(), &[], "registry:").await;
    let first = node_service(&redis, "node-a").await;
    let second = node_service(&redis, "node-b").await;
    eventually(SETTLE, "both nodes are listed", || async {
        ids(&observer.link).await == ["node-a", "node-b"]
    })
    .await;

    // `/api/nodes` of either node shows the fleet.
    let listed_over_http = common::http::Http::new(second.http_addr)
        .get("/api/nodes")
        .await
        .json();
    let http_ids: Vec<&str> = listed_over_http["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["id"].as_str().unwrap())
        .collect();
    assert_eq!(http_ids, ["node-a", "node-b"], "{listed_over_http}");

    let listed = nodes(&observer.link).await;
    let a = &listed[0];
    assert_eq!(a.grpc_address, first.grpc_addr.to_string());
    assert_eq!(a.version, env!("CARGO_PKG_VERSION"));
    let age = SystemTime::now().duration_since(a.registered_at).unwrap();
    assert!(age < Duration::from_secs(60), "registered {age:?} ago");

    first.stop().await.unwrap();
    assert_eq!(ids(&observer.link).await, ["node-b"]);

    // Redis loses everything; the surviving node writes itself back.
    redis.cli(&["flushall"]);
    eventually(SETTLE, "the node registers again after a flush", || async {
        ids(&observer.link).await == ["node-b"]
    })
    .await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_that_fail_are_counted_and_the_entry_returns_with_redis() {
    let mut redis = RedisServer::start();
    let node = node_service(&redis, "node-a").await;
    let failures = || node.metrics.registry_heartbeat_failures.get();
    let observer = connect(&redis.url(), &[], "registry:").await;
    eventually(SETTLE, "the node is listed", || async {
        ids(&observer.link).await == ["node-a"]
    })
    .await;
    assert_eq!(failures(), 0);

    redis.kill();
    eventually(SETTLE, "failed heartbeats are counted", || async {
        failures() >= 2
    })
    .await;

    redis.restart();
    // The observer reconnects too: its reads may fail for a moment.
    eventually(SETTLE, "the node registers again", || async {
        read_nodes(&observer.link)
            .await
            .is_ok_and(|nodes| nodes.len() == 1 && nodes[0].id == "node-a")
    })
    .await;
    let after_return = failures();
    // A failing beat is counted before the next beat is tried: none failed between three that
    // landed.
    beats_land(&redis, "node-a", 3).await;
    assert_eq!(
        failures(),
        after_return,
        "heartbeats still fail with Redis back"
    );
}

/// Waits until `beats` more heartbeats of node `id` have landed, seen from Redis: each one
/// writes the entry's TTL afresh, so its PTTL goes up.
async fn beats_land(redis: &RedisServer, id: &str, beats: usize) {
    // The registry's key, whatever `--redis-key-prefix` says.
    let key = format!("ratelimiter:nodes:{id}");
    let pttl = || redis.cli(&["pttl", &key]).trim().parse::<i64>().unwrap();
    let mut last = pttl();
    let mut landed = 0;
    eventually(SETTLE, &format!("{beats} heartbeats land"), || {
        let now = pttl();
        if now > last {
            landed += 1;
        }
        last = now;
        std::future::ready(landed >= beats)
    })
    .await;
}

/// The built binary on `redis`, listening on every interface (so that it must publish a
/// reachable name), with a fast registry.
fn spawn_node(redis: &RedisServer, id: &str) -> Node {
    let url = redis.url();
    let mut args = vec!["--grpc-addr", "127.0.0.1:0", "--http-addr", "0.0.0.0:0"];
    args.extend_from_slice(&["--redis-url", &url, "--node-id", id]);
    args.extend_from_slice(&FAST_REGISTRY);
    Node::start_exactly(&args, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_disappears_within_its_ttl_and_a_terminated_one_at_once() {
    let redis = RedisServer::start();
    let observer = connect(&redis.url(), &[], "registry:").await;
    let mut killed = spawn_node(&redis, "killed");
    let mut terminated = spawn_node(&redis, "terminated");
    eventually(SETTLE, "both processes register", || async {
        ids(&observer.link).await == ["killed", "terminated"]
    })
    .await;
    // Listening on every interface, a node publishes a reachable name, never 0.0.0.0.
    for node in nodes(&observer.link).await {
        assert!(!node.address.starts_with("0.0.0.0"), "{node:?}");
        assert!(node.address.rsplit_once(':').is_some(), "{node:?}");
    }

    terminated.signal("TERM");
    assert_eq!(terminated.wait_for_exit(SETTLE).await, Some(0));
    assert_eq!(ids(&observer.link).await, ["killed"]);

    killed.signal("KILL");
    let _ = killed.wait_for_exit(SETTLE).await;
    // Nobody deleted the entry: it is still there, and goes when its TTL runs out.
    assert_eq!(ids(&observer.link).await, ["killed"]);
    eventually(SETTLE, "the killed node's entry expires", || async {
        ids(&observer.link).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_host_without_node_ids_register_apart() {
    let redis = RedisServer::start();
    let observer = connect(&redis.url(), &[], "registry:").await;
    let url = redis.url();
    let config = common::config_dir(&[("registry.yaml", LIMITS)]);
    let mut args = vec!["--redis-url", &url, "--config"];
    args.push(config.path().to_str().unwrap());
    args.extend_from_slice(&FAST_REGISTRY);
    let mut first = Node::start(&args);
    let second = Node::start(&args);
    let host = ratelimiter::registry::host_name().expect("this machine has a host name");
    let id = |node: &Node| format!("{host}:{}", node.grpc_addr.port());
    let mut both = vec![id(&first), id(&second)];
    both.sort();
    eventually(SETTLE, "both processes are listed apart", || async {
        ids(&observer.link).await == both
    })
    .await;
    let health = common::http::Http::new(second.http_addr)
        .get("/health")
        .await
        .json();
    assert_eq!(health["node_id"], id(&second), "{health}");

    first.signal("TERM");
    assert_eq!(first.wait_for_exit(SETTLE).await, Some(0));
    assert_eq!(ids(&observer.link).await, [id(&second)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_leaving_does_not_delete_the_entry_another_node_with_its_id_wrote() {
    let redis = RedisServer::start();
    let observer = connect(&redis.url(), &[], "registry:").await;
    let url = redis.url();
    // The first beats once at startup and not again during the test; the second every 300 ms.
    let slow = ["--node-ttl", "60s", "--node-heartbeat", "30s"];
    let mut first = Node::start(&[&["--redis-url", &url, "--node-id", "twin"][..], &slow].concat());
    let second = spawn_node(&redis, "twin");
    let address = second.grpc_addr.to_string();
    eventually(SETTLE, "the second twin owns the entry", || async {
        nodes(&observer.link)
            .await
            .iter()
            .any(|node| node.grpc_address == address)
    })
    .await;
    // Its first beat replaced the first twin's entry and said so (at startup, or just after).
    let replaced = "another node uses this node id";
    if !second
        .startup_log
        .iter()
        .any(|line| line.contains(replaced))
    {
        second.log_until(replaced, SETTLE);
    }

    first.signal("TERM");
    assert_eq!(first.wait_for_exit(SETTLE).await, Some(0));
    let left = first.logged().join("\n");
    assert!(
        left.contains("another node with this --node-id owns it now"),
        "{left}"
    );
    let listed = nodes(&observer.link).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].grpc_address, address);
}
