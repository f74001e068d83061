//! `/metrics`: Prometheus text that promtool accepts, and counters that move with traffic.

use std::io::Write;
use std::process::{Command, Stdio};

use ratelimiter::metrics::GO_NAMED_COUNTERS;

use super::Backend;

/// The value of the one sample line that starts with `series` followed by a space.
pub fn value(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let mut values = text
        .lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()));
    let value = values
        .next()
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
    assert!(values.next().is_none(), "{series} twice");
    value.parse().unwrap()
}

/// Runs `promtool check metrics` on `text`. Its only complaints may be the `_total` suffix of the
/// counters that keep envoyproxy/ratelimit's names.
fn promtool_accepts(text: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("promtool cannot run ({error}); run scripts/setup to install it (Debian package prometheus)")
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let complaints = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    for complaint in complaints.lines().filter(|line| !line.trim().is_empty()) {
        let allowed = GO_NAMED_COUNTERS.iter().any(|name| {
            complaint == format!("{name} counter metrics should have \"_total\" suffix")
        });
        assert!(allowed, "promtool: {complaint}\n{text}");
    }
    // 0: clean; 3: lint findings only (all of them allowed above); anything else is a failure.
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "promtool exited {:?}: {complaints}",
        output.status
    );
}

pub async fn metrics_pass_promtool_and_move_with_traffic(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let check = r#"{"key": "private-user-7", "limit": 2}"#;
    for _ in 0..3 {
        http.post("/check", check).await;
    }
    http.post("/check", r#"{"key": ""}"#).await;
    let json = r#"{"domain": "api", "descriptors": [{"entries": [{"key": "user", "value": "private-user-8"}]}]}"#;
    assert_eq!(http.post("/json", json).await.status, 200);
    assert_eq!(http.post("/json", "{}").await.status, 400);
    assert_eq!(http.get("/no-such-path-9").await.status, 404);

    let scrape = http.get("/metrics").await;
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = scrape.body;
    promtool_accepts(&text);

    let expected = [
        (
            r#"ratelimiter_requests_checked_total{result="allowed"}"#,
            3.0,
        ),
        (
            r#"ratelimiter_requests_checked_total{result="blocked"}"#,
            1.0,
        ),
        ("ratelimiter_check_duration_seconds_count", 4.0),
        (
            r#"ratelimiter_http_requests_total{route="/check",status="200"}"#,
            2.0,
        ),
        (
            r#"ratelimiter_http_requests_total{route="/check",status="429"}"#,
            1.0,
        ),
        (
            r#"ratelimiter_http_requests_total{route="/check",status="422"}"#,
            1.0,
        ),
        (
            r#"ratelimiter_http_requests_total{route="/json",status="200"}"#,
            1.0,
        ),
        (
            r#"ratelimiter_http_requests_total{route="/json",status="400"}"#,
            1.0,
        ),
        (
            r#"ratelimiter_http_requests_total{route="unmatched",status="404"}"#,
            1.0,
        ),
        (
            r#"ratelimiter_http_request_duration_seconds_count{route="/check",status="200"}"#,
            2.0,
        ),
        (
            r#"ratelimit_service_rate_limit_total_hits{domain="api",key1="user",key2=""}"#,
            1.0,
        ),
        (
            r#"ratelimit_service_rate_limit_within_limit{domain="api",key1="user",key2=""}"#,
            1.0,
        ),
        (
            r#"ratelimit_service_should_rate_limit_error{err_type="service_error"}"#,
            1.0,
        ),
        ("ratelimiter_node_up", 1.0),
    ];
    for (series, number) in expected {
        assert_eq!(value(&text, series), number, "{series}");
    }
    assert!(value(&text, "ratelimiter_active_counters") >= 2.0);
    for raw in ["private-user", "no-such-path"] {
        assert!(
            !text.contains(raw),
            "a request value reached a label: {raw}"
        );
    }
    // The scrape itself is counted by the next one.
    let again = http.get("/metrics").await.body;
    assert_eq!(
        value(
            &again,
            r#"ratelimiter_http_requests_total{route="/metrics",status="200"}"#
        ),
        1.0
    );
}
