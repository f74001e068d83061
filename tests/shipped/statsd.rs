//! statsd: the lines a statsd server receives after traffic, under the Go service's names with
//! the right values, over UDP (plain and DogStatsD) and, through the Go variable names given to
//! the binary, over TCP with the Go service's tag suffix.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use crate::common::process::Node;
use crate::common::{self, Service};

const LIMITS: &str = "
domain: basic
descriptors:
  - key: key1
    rate_limit: {unit: hour, requests_per_unit: 2}
";

/// statsd lines as received: (name, value, type and tags after the value).
fn parse(line: &str) -> Option<(String, u64, String)> {
    let (name, rest) = line.split_once(':')?;
    let (value, kind) = rest.split_once('|')?;
    Some((name.to_string(), value.parse().ok()?, kind.to_string()))
}

/// Sums the values of the lines `lines` brings, by `name|type`, until `done` says enough.
async fn collect(
    mut next_line: impl AsyncFnMut() -> Option<String>,
    done: impl Fn(&HashMap<String, u64>) -> bool,
) -> HashMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut totals = HashMap::new();
    while !done(&totals) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = tokio::time::timeout(left, next_line())
            .await
            .unwrap_or_else(|_| panic!("statsd lines so far: {totals:#?}"))
            .expect("the statsd connection stays open");
        if let Some((name, value, kind)) = parse(&line) {
            *totals.entry(format!("{name}|{kind}")).or_default() += value;
        }
    }
    totals
}

async fn traffic(service: &Service, calls: usize) {
    let mut client = service.client().await;
    for _ in 0..calls {
        common::ask(&mut client, common::request("basic", &[&[("key1", "x")]])).await;
    }
}

/// A UDP statsd server: each datagram's lines.
async fn udp_lines(socket: &UdpSocket, pending: &mut Vec<String>) -> Option<String> {
    while pending.is_empty() {
        let mut buffer = [0u8; 65_536];
        let read = socket.recv(&mut buffer).await.ok()?;
        let text = String::from_utf8_lossy(&buffer[..read]).to_string();
        pending.extend(text.lines().rev().map(str::to_string));
    }
    pending.pop()
}

#[tokio::test]
async fn counters_and_timers_reach_a_udp_statsd_under_the_go_names() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let service = Service::start(
        &[("basic.yaml", LIMITS)],
        &["--statsd-addr", &addr, "--statsd-flush-interval", "100ms"],
    )
    .await;
    traffic(&service, 3).await;
    let mut pending = Vec::new();
    let totals = collect(
        async || udp_lines(&socket, &mut pending).await,
        |totals| {
            totals
                .get("ratelimit_server.ShouldRateLimit.response_time|ms")
                .is_some()
                && totals.get("ratelimit.service.rate_limit.basic.key1.total_hits|c") == Some(&3)
                && totals.get("ratelimit_server.ShouldRateLimit.total_requests|c") == Some(&3)
        },
    )
    .await;
    let expected = [
        ("ratelimit.service.rate_limit.basic.key1.within_limit|c", 2),
        ("ratelimit.service.rate_limit.basic.key1.over_limit|c", 1),
        ("ratelimit.service.rate_limit.basic.key1.near_limit|c", 1),
        ("ratelimit.service.config_load_success|c", 1),
    ];
    for (name, value) in expected {
        assert_eq!(totals.get(name), Some(&value), "{name}: {totals:#?}");
    }
    assert!(
        totals.keys().all(|name| !name.starts_with("ratelimiter")),
        "{totals:#?}"
    );
}

#[tokio::test]
async fn dogstatsd_carries_the_extra_tags_as_tags() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let service = Service::start(
        &[("basic.yaml", LIMITS)],
        &[
            "--statsd-addr",
            &addr,
            "--statsd-flush-interval",
            "100ms",
            "--statsd-dogstatsd",
            "--stats-tag",
            "team=edge,env=test",
        ],
    )
    .await;
    traffic(&service, 1).await;
    let mut pending = Vec::new();
    let totals = collect(
        async || udp_lines(&socket, &mut pending).await,
        |totals| {
            totals.contains_key(
                "ratelimit.service.rate_limit.basic.key1.total_hits|c|#env:test,team:edge",
            )
        },
    )
    .await;
    assert!(
        totals
            .keys()
            .all(|name| name.ends_with("|#env:test,team:edge")),
        "{totals:#?}"
    );
}

#[tokio::test]
async fn the_go_variables_push_statsd_over_tcp_with_tag_suffixes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let config = common::config_dir(&[("basic.yaml", LIMITS)]);
    let node = Node::start_with_env(
        &["--config", &crate::common::tls_client::path(config.path())],
        &[
            ("STATSD_HOST", "127.0.0.1"),
            ("STATSD_PORT", &port),
            ("STATSD_PROTOCOL", "tcp"),
            ("STATS_FLUSH_INTERVAL", "100ms"),
            ("EXTRA_TAGS", "team:edge.us"),
        ],
    );
    let mut client = common::connect(node.grpc_addr).await;
    common::ask(&mut client, common::request("basic", &[&[("key1", "x")]])).await;
    let (stream, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("the node connects to the statsd server")
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let totals = collect(
        async || lines.next_line().await.ok().flatten(),
        |totals| {
            totals
                .contains_key("ratelimit.service.rate_limit.basic.key1.total_hits.__team=edge_us|c")
        },
    )
    .await;
    assert_eq!(
        totals.get("ratelimit.service.config_load_success.__team=edge_us|c"),
        Some(&1),
        "{totals:#?}"
    );
}
