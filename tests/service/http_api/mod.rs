//! The HTTP listener over a real socket with a real client: every endpoint, its errors and its
//! auth. The scenarios take a [`Backend`] and start their own service on it, so the same suite
//! runs on every store (`suite!` below lists them); what needs the manual clock or the memory
//! store's bounds is at the end of this file.

mod admin;
mod check;
mod counters;
mod json;
mod metrics;

use std::time::Duration;

use crate::common::Service;
use crate::common::redis::RedisServer;

/// Limits for domain `api`: a per-user minute limit, a named rule, an unlimited rule and a
/// shared wildcard.
pub const CONFIG: &str = r#"
domain: api
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: plan
    value: gold
    rate_limit: {name: gold_plan, unit: hour, requests_per_unit: 1000}
  - key: internal
    rate_limit: {unlimited: true}
  - key: files
    value: "files/*"
    share_threshold: true
    shadow_mode: true
    rate_limit: {unit: hour, requests_per_unit: 5}
"#;

/// Which store the service counts in; a scenario adds its own flags.
pub struct Backend {
    /// The store's name in `/health`.
    pub kind: &'static str,
    flags: Vec<String>,
    /// The Redis server the service counts in, kept running for the scenario.
    _redis: Option<RedisServer>,
}

impl Backend {
    pub fn memory() -> Backend {
        Backend {
            kind: "memory",
            flags: Vec::new(),
            _redis: None,
        }
    }

    /// A fresh redis-server on a free port (generous timeout: a loaded test machine is slow).
    pub fn redis() -> Backend {
        let redis = RedisServer::start();
        Backend {
            kind: "redis",
            flags: vec![
                "--redis-url".into(),
                redis.url(),
                "--redis-timeout".into(),
                "1s".into(),
            ],
            _redis: Some(redis),
        }
    }

    /// The service on [`CONFIG`] with this backend's flags and `extra`.
    pub async fn start(&self, extra: &[&str]) -> Service {
        let mut flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        flags.extend_from_slice(extra);
        Service::start(&[("api.yaml", CONFIG)], &flags).await
    }
}

/// One `#[tokio::test]` per scenario, on `$backend`.
macro_rules! suite {
    ($name:ident, $backend:expr, [$($module:ident :: $scenario:ident),* $(,)?]) => {
        mod $name {
            $(
                #[tokio::test]
                async fn $scenario() {
                    crate::http_api::$module::$scenario(&$backend).await;
                }
            )*
        }
    };
}

/// Every scenario, handed to `suite!` once per backend.
macro_rules! every_scenario {
    ($name:ident, $backend:expr) => {
        suite!(
            $name,
            $backend,
            [
                check::three_checks_with_limit_two_answer_200_200_429,
                check::defaults_come_from_the_flags,
                check::each_key_limit_and_window_counts_apart,
                check::bad_checks_are_refused_naming_the_field,
                check::bodies_over_the_limit_are_refused_unread,
                json::json_answers_like_the_go_service,
                json::json_reads_camel_case_and_snake_case,
                json::json_refusals_are_400_naming_the_field,
                counters::counters_show_each_counters_own_limit_decoded,
                counters::blocks_are_the_counters_at_their_limit,
                counters::pages_show_every_counter,
                counters::bad_listing_parameters_are_refused_naming_them,
                counters::delete_resets_one_counter_with_the_admin_token,
                counters::resets_are_refused_without_an_admin_token,
                admin::the_admin_token_guards_every_api_endpoint,
                admin::limits_show_the_defaults_the_config_status_and_every_rule,
                admin::rlconfig_lists_every_rule_in_the_go_format,
                admin::health_reports_the_node_the_store_and_the_config,
                admin::nodes_list_this_node,
                admin::draining_turns_health_503_then_the_listener_closes,
                admin::unknown_paths_and_methods_are_json_errors,
                admin::reloads_show_in_health_limits_and_rlconfig,
                metrics::metrics_pass_promtool_and_move_with_traffic,
            ]
        );
    };
}

every_scenario!(memory, crate::http_api::Backend::memory());
every_scenario!(redis, crate::http_api::Backend::redis());

#[tokio::test]
async fn on_the_manual_clock_a_denied_check_waits_until_its_oldest_bucket_leaves() {
    let service = Backend::memory().start(&[]).await;
    let http = service.http();
    let body = r#"{"key": "clocked", "limit": 2, "window_ms": 60000}"#;
    assert_eq!(http.post("/check", body).await.status, 200);
    assert_eq!(http.post("/check", body).await.status, 200);
    let denied = http.post("/check", body).await;
    // Buckets of 3 s; the first hit's bucket started 2 s before START_MS and is counted for 21
    // buckets, so it leaves 61 s from now (an exact log would say 60 s).
    assert_eq!(denied.json()["retry_after_seconds"], 61);
    assert_eq!(denied.header("retry-after"), Some("61"));
    service.clock.advance(Duration::from_secs(60));
    assert_eq!(http.post("/check", body).await.status, 429);
    service.clock.advance(Duration::from_secs(1));
    let allowed = http.post("/check", body).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    // Both earlier hits shared a bucket and left together.
    assert_eq!(allowed.json()["current_count"], 1);
}

#[tokio::test]
async fn on_the_manual_clock_json_answers_byte_for_byte_as_the_go_service() {
    let service = Backend::memory().start(&[]).await;
    let http = service.http();
    let request =
        r#"{"domain": "api", "descriptors": [{"entries": [{"key": "user", "value": "zoe"}]}]}"#;
    let first = http.post("/json", request).await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (
            200,
            r#"{"overallCode":"OK","statuses":[{"code":"OK","currentLimit":{"requestsPerUnit":2,"unit":"MINUTE"},"limitRemaining":1,"durationUntilReset":"58s"}]}"#
        )
    );
    http.post("/json", request).await;
    let over = http.post("/json", request).await;
    assert_eq!(
        (over.status, over.body.as_str()),
        (
            429,
            r#"{"overallCode":"OVER_LIMIT","statuses":[{"code":"OVER_LIMIT","currentLimit":{"requestsPerUnit":2,"unit":"MINUTE"},"durationUntilReset":"58s"}]}"#
        )
    );
}

#[tokio::test]
async fn the_memory_stores_live_evictions_reach_the_metrics() {
    let service = Backend::memory()
        .start(&["--memory-max-counters", "64"])
        .await;
    let http = service.http();
    for index in 0..200 {
        let body = format!(r#"{{"key": "evicted-{index}", "limit": 5}}"#);
        assert_eq!(http.post("/check", &body).await.status, 200);
    }
    let text = http.get("/metrics").await.body;
    let active = metrics::value(&text, "ratelimiter_active_counters");
    let evicted = metrics::value(&text, "ratelimiter_memory_live_evictions_total");
    assert!(
        evicted > 0.0 && active <= 64.0,
        "{active} held, {evicted} evicted"
    );
    // Every counter is live (one-minute windows): each one is either held or was evicted.
    assert_eq!(active + evicted, 200.0);
}

/// Sends `request` on a raw connection and reads until the server closes it. Time is paused,
/// so the server's timeouts pass as soon as nothing else is left to do.
async fn cut_off(service: &Service, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(service.http_addr)
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3_600), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes a connection that stalls")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let service = Backend::memory().start(&[]).await;
    let answer = cut_off(&service, "GET /health HTTP/1.1\r\nHost: ratelimiter\r\n").await;
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_arrives_is_answered_408() {
    let service = Backend::memory().start(&[]).await;
    let answer = cut_off(
        &service,
        "POST /check HTTP/1.1\r\nHost: ratelimiter\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"key\"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"the request body did not arrive within 10s"}"#),
        "{answer}"
    );
}
