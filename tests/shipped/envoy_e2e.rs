//! End to end through a real Envoy running the shipped configs in `envoy/`: every front-proxy
//! action meeting a rule of the shipped `config/`, limits shared by two ratelimiter nodes on one
//! Redis, Envoy's failure mode when
//! the service is gone, a limit changed while traffic flows, shadow mode, and TCP connections
//! limited by the network filter.

use std::time::Duration;

use crate::common;
use crate::common::envoy::{self, Envoy, get};
use crate::common::http::Http;
use crate::common::process::Node;
use crate::common::redis::RedisServer;
use tokio::io::AsyncReadExt;

/// Ports the shipped configs use: (listener, upstream, admin).
const FRONT_PROXY: (u16, u16, u16) = (10000, 10001, 9901);
const TCP_PROXY: (u16, u16, u16) = (10100, 10101, 9902);

/// Anything that should happen "soon" on a loaded 2-core machine happens within this.
const SETTLE: Duration = Duration::from_secs(10);

const PER_USER: &str = "
domain: edge
descriptors:
  - key: user_id
    rate_limit: {unit: hour, requests_per_unit: 3}
";

/// A node with its limits in a directory the test may edit.
struct LimitedNode {
    node: Node,
    config: tempfile::TempDir,
}

fn start_node(limits: &str, extra: &[&str]) -> LimitedNode {
    let config = common::config_dir(&[("edge.yaml", limits)]);
    let path = config.path().to_str().unwrap().to_string();
    let mut args = vec!["--config", &path, "--redis-timeout", "200ms"];
    args.extend_from_slice(extra);
    LimitedNode {
        node: Node::start(&args),
        config,
    }
}

/// The front proxy asking `nodes`, and its listener's URL.
async fn front_proxy(nodes: &[&Node], deny: bool) -> (Envoy, String) {
    let addresses: Vec<String> = nodes
        .iter()
        .map(|node| node.grpc_addr.to_string())
        .collect();
    let mut args = vec!["--ratelimit".to_string(), addresses.join(",")];
    if deny {
        args.push("--failure-mode-deny".into());
    }
    let envoy = Envoy::start("front-proxy.yaml", FRONT_PROXY, &args).await;
    let base = format!("http://127.0.0.1:{}", envoy.ports.listener);
    (envoy, base)
}

async fn statuses(base: &str, user: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(get(base, user).await.status);
    }
    statuses
}

/// A Prometheus sample of a node, summed over the series whose labels contain `labels`.
async fn metric(node: &Node, name: &str, labels: &str) -> f64 {
    let text = Http::new(node.http_addr).get("/metrics").await.body;
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn every_shipped_envoy_config_passes_envoy_validate() {
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/envoy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }
        let output = std::process::Command::new(envoy::binary())
            .args(["--mode", "validate", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && said.contains("OK"),
            "{}: {said}{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "front-proxy.yaml and tcp-proxy.yaml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limits_through_envoy_are_shared_by_two_nodes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let first = start_node(PER_USER, &["--redis-url", &url, "--node-id", "a"]);
    let second = start_node(PER_USER, &["--redis-url", &url, "--node-id", "b"]);
    let (_envoy, base) = front_proxy(&[&first.node, &second.node], false).await;

    for expected_remaining in ["2", "1", "0"] {
        let answer = get(&base, "alice").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.remaining.as_deref(), Some(expected_remaining));
        assert_eq!(answer.limit.as_deref(), Some("3, 3;w=3600"));
        assert!(
            answer
                .reset
                .is_some_and(|reset| (1..=3600).contains(&reset)),
            "reset {:?}",
            answer.reset
        );
    }
    let blocked = get(&base, "alice").await;
    assert_eq!(
        (blocked.status, blocked.remaining.as_deref()),
        (429, Some("0"))
    );
    assert_eq!(blocked.limit.as_deref(), Some("3, 3;w=3600"));
    // Another user is not affected.
    let other = get(&base, "bob").await;
    assert_eq!((other.status, other.remaining.as_deref()), (200, Some("2")));

    // Envoy spread the checks over both nodes, and still only three got through: the nodes
    // share their counters in Redis.
    let calls = r#"grpc_method="ShouldRateLimit""#;
    let on_first = metric(&first.node, "ratelimit_service_total_requests", calls).await;
    let on_second = metric(&second.node, "ratelimit_service_total_requests", calls).await;
    assert!(
        on_first >= 1.0 && on_second >= 1.0,
        "{on_first} and {on_second} checks"
    );
    assert_eq!(on_first + on_second, 5.0);
}

/// The shipped front proxy against the shipped `config/`: every rate-limit action of the route
/// sends a descriptor that a rule of `config/edge.yaml` counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_front_proxy_action_meets_a_shipped_rule() {
    let served = Node::start(&["--config", "config"]);
    let (_envoy, base) = front_proxy(&[&served], false).await;
    let client = reqwest::Client::new();
    for (user, plan) in [("alice", "premium"), ("bob", "basic")] {
        let response = client
            .get(format!("{base}/api/orders/7"))
            .header("x-user-id", user)
            .header("x-plan", plan)
            .send()
            .await
            .expect("Envoy answers");
        assert_eq!(response.status(), 200);
    }
    let listed = Http::new(served.http_addr)
        .get("/api/counters?limit=1000")
        .await
        .json();
    let rules: std::collections::BTreeSet<String> = listed["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|counter| {
            counter["decoded"]["rule"]["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let expected = [
        "edge.destination_cluster_backend",
        "edge.plan_default.user_id",
        "edge.plan_premium.user_id",
        "edge.remote_address",
        "edge.user_id",
        "edge.user_id.path_/api/orders*",
    ];
    assert_eq!(rules, expected.map(String::from).into(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_service_gone_envoys_failure_mode_decides_and_limiting_resumes_after() {
    let limits = "domain: edge\ndescriptors:\n  - key: user_id\n    rate_limit: {unit: hour, requests_per_unit: 1}\n";
    let config = common::config_dir(&[("edge.yaml", limits)]);
    let path = config.path().to_str().unwrap().to_string();
    // On fixed addresses, so that Envoy finds it again when it comes back.
    let mut node = Node::start_pinned(&["--config", &path]);
    let (_open_envoy, open) = front_proxy(&[&node], false).await;
    let (_closed_envoy, closed) = front_proxy(&[&node], true).await;
    assert_eq!(statuses(&open, "carol", 1).await, [200]);
    assert_eq!(statuses(&closed, "carol", 1).await, [429]);

    node.signal("TERM");
    assert_eq!(node.wait_for_exit(SETTLE).await, Some(0));
    // Fail open lets traffic through; fail closed answers Envoy's error status.
    assert_eq!(statuses(&open, "carol", 2).await, [200, 200]);
    assert_eq!(statuses(&closed, "carol", 2).await, [500, 500]);

    let node = node.start_again();
    common::eventually(SETTLE, "Envoy reaches the restarted node", || async {
        get(&closed, "dave").await.status == 200
    })
    .await;
    assert_eq!(statuses(&closed, "dave", 1).await, [429]);
    assert_eq!(statuses(&open, "dave", 1).await, [429]);
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_changed_in_the_yaml_applies_while_traffic_flows() {
    let generous = "domain: edge\ndescriptors:\n  - key: user_id\n    rate_limit: {unit: hour, requests_per_unit: 1000}\n";
    let tight = generous.replace("1000", "5");
    let served = start_node(generous, &[]);
    let (_envoy, base) = front_proxy(&[&served.node], false).await;
    assert_eq!(statuses(&base, "erin", 10).await, [200; 10]);

    // Saved the way editors save: a new file renamed over the old one.
    let file = served.config.path().join("edge.yaml");
    let temporary = served.config.path().join(".edge.yaml.swp");
    std::fs::write(&temporary, tight).unwrap();
    std::fs::rename(&temporary, &file).unwrap();
    let pid = served.node.pid();
    common::eventually(SETTLE, "the new limit blocks erin", || async {
        get(&base, "erin").await.status == 429
    })
    .await;
    let answer = get(&base, "erin").await;
    assert_eq!(
        (answer.status, answer.limit.as_deref()),
        (429, Some("5, 5;w=3600"))
    );
    assert_eq!(served.node.pid(), pid, "nothing was restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_lets_traffic_through_and_the_shadow_metric_counts_it() {
    let limits = "
domain: edge
descriptors:
  - key: destination_cluster
    value: backend
    shadow_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
";
    let served = start_node(limits, &[]);
    let (_envoy, base) = front_proxy(&[&served.node], false).await;
    assert_eq!(statuses(&base, "frank", 5).await, [200; 5]);
    let shadow = r#"domain="edge",key1="destination_cluster_backend""#;
    assert_eq!(
        metric(
            &served.node,
            "ratelimit_service_rate_limit_shadow_mode",
            shadow
        )
        .await,
        4.0
    );
    assert_eq!(
        metric(
            &served.node,
            "ratelimit_service_rate_limit_over_limit",
            shadow
        )
        .await,
        4.0
    );
    assert_eq!(
        metric(
            &served.node,
            "ratelimiter_requests_checked_total",
            r#"result="blocked""#
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_over_the_limit_are_closed_by_the_network_filter() {
    let limits = "domain: tcp\ndescriptors:\n  - key: tcp_listener\n    value: db\n    rate_limit: {unit: hour, requests_per_unit: 2}\n";
    let config = common::config_dir(&[("tcp.yaml", limits)]);
    let node = Node::start(&["--config", config.path().to_str().unwrap()]);
    let args = ["--ratelimit".to_string(), node.grpc_addr.to_string()];
    let envoy = Envoy::start("tcp-proxy.yaml", TCP_PROXY, &args).await;

    let mut answers = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", envoy.ports.listener))
            .await
            .unwrap();
        let mut answer = String::new();
        let read = tokio::time::timeout(SETTLE, stream.read_to_string(&mut answer)).await;
        assert!(
            read.is_ok(),
            "the connection was neither answered nor closed"
        );
        answers.push(answer);
    }
    let upstream = "hello from the tcp upstream\n".to_string();
    assert_eq!(answers, [upstream.clone(), upstream, String::new()]);
    assert_eq!(envoy.stat("ratelimit.tcp_front.over_limit").await, 1);
    assert_eq!(envoy.stat("ratelimit.tcp_front.ok").await, 2);
}
