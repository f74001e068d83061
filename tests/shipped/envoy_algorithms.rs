//! Through a real Envoy running the shipped front proxy: a 5-minute window and a two-limit list
//! limit traffic, with `x-ratelimit-*` headers that say the deciding limit's window in seconds
//! (`w=300` from the response's `unit_multiplier`), how many more may come now, and when one
//! more will.

use crate::common::envoy::{self, Envoy};
use crate::common::http::Http;
use crate::common::process::Node;

const LIMITS: &str = r#"
domain: edge
descriptors:
  - key: user_id
    value: five
    rate_limit: {unit: minute, unit_multiplier: 5, requests_per_unit: 3}
  - key: user_id
    value: listed
    rate_limit:
      - {unit: hour, requests_per_unit: 3, name: hourly}
      - {unit: minute, requests_per_unit: 1, algorithm: token_bucket, burst: 2, name: per_minute}
"#;

/// The shipped front proxy's ports: (listener, upstream, admin).
const FRONT_PROXY: (u16, u16, u16) = (10000, 10001, 9901);

/// (status, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset)
async fn get(base: &str, user: &str) -> (u16, String, String, u64) {
    let answer = envoy::get(base, user).await;
    let text = |header: Option<String>| header.expect("an x-ratelimit header");
    let reset = answer.reset.expect("x-ratelimit-reset");
    (
        answer.status,
        text(answer.limit),
        text(answer.remaining),
        reset,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_minute_window_and_a_list_limit_traffic_with_the_right_headers() {
    let config = crate::common::config_dir(&[("edge.yaml", LIMITS)]);
    let node = Node::start(&["--config", config.path().to_str().unwrap()]);
    let args = ["--ratelimit".to_string(), node.grpc_addr.to_string()];
    let envoy = Envoy::start("front-proxy.yaml", FRONT_PROXY, &args).await;
    let base = format!("http://127.0.0.1:{}", envoy.ports.listener);

    for remaining in ["2", "1", "0"] {
        let (status, limit, left, reset) = get(&base, "five").await;
        assert_eq!(
            (status, limit.as_str(), left.as_str()),
            (200, "3, 3;w=300", remaining)
        );
        assert!((1..=300).contains(&reset), "{reset}");
    }
    let (status, limit, left, _) = get(&base, "five").await;
    assert_eq!(
        (status, limit.as_str(), left.as_str()),
        (429, "3, 3;w=300", "0")
    );

    // The list: the bucket (2 at once, one a minute) has the least remaining, so it decides;
    // the third request is refused by it and counted by neither limit.
    let per_minute = r#"1, 1;w=60;name="per_minute""#;
    for (expected_status, remaining) in [(200, "1"), (200, "0"), (429, "0")] {
        let (status, limit, left, reset) = get(&base, "listed").await;
        assert_eq!(
            (status, limit.as_str(), left.as_str()),
            (expected_status, per_minute, remaining)
        );
        assert!((59..=60).contains(&reset), "{reset}");
    }
    let counters = Http::new(node.http_addr)
        .get("/api/counters?prefix=1%7Cedge%7C")
        .await
        .json();
    let hourly = counters["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|counter| counter["decoded"]["algorithm"] == "fixed_window")
        .expect("the hourly window's counter");
    assert_eq!(hourly["count"], 2, "{counters}");
}
