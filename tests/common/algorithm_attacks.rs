//! Hostile inputs against the algorithms, shared by the memory and Redis suites: the longest
//! list the config accepts on every descriptor of the largest request (1,024 counters decided
//! in one store call), and the largest hits and refunds a request may carry on every algorithm,
//! on the largest limits the config accepts.

use std::sync::LazyLock;

use super::http::Http;
use super::{Client, Code, ask, code, request, status_code};

/// The most hits one descriptor may carry (`rls::request::MAX_HITS`).
const MAX_HITS: u64 = u32::MAX as u64;

/// Limits of domain `attack`: `wide` is a list of 16 limits (the most a list may hold) of
/// every algorithm, windows of 1 to 16 days, whose tightest is a sliding window of 3 a day;
/// `fixed`, `sliding` and `bucket` admit 5 a day; `giant_*` are the largest limits accepted.
pub static LIMITS: LazyLock<String> = LazyLock::new(|| {
    let algorithms = ["sliding_window", "fixed_window", "token_bucket"];
    let wide: Vec<String> = (0..16)
        .map(|index| {
            let requests = if index == 0 { 3 } else { 1_000 };
            format!(
                "      - {{unit: day, unit_multiplier: {}, requests_per_unit: {requests}, algorithm: {}}}",
                index + 1,
                algorithms[index % 3]
            )
        })
        .collect();
    format!(
        "domain: attack
descriptors:
  - key: wide
    rate_limit:
{}
  - {{key: fixed, rate_limit: {{unit: day, requests_per_unit: 5}}}}
  - {{key: sliding, rate_limit: {{unit: day, requests_per_unit: 5, algorithm: sliding_window}}}}
  - {{key: bucket, rate_limit: {{unit: day, requests_per_unit: 5, algorithm: token_bucket}}}}
  - key: giant_sliding
    rate_limit: {{unit: second, unit_multiplier: 31536000, requests_per_unit: 4294967295, algorithm: sliding_window}}
  - key: giant_bucket
    rate_limit: {{unit: year, requests_per_unit: 4294967295, algorithm: token_bucket, burst: 4294967295}}
",
        wide.join("\n")
    )
});

/// A request for (`key`, `value`) with `hits` (refunded when `refund`).
fn hits(key: &str, value: &str, hits: u64, refund: bool) -> super::RateLimitRequest {
    let mut request = request("attack", &[&[(key, value)]]);
    request.descriptors[0].hits_addend =
        Some(envoy_types::pb::google::protobuf::UInt64Value { value: hits });
    request.descriptors[0].is_negative_hits = refund;
    request
}

/// 64 descriptors (the most a request may have) on the 16-limit list: three requests are
/// admitted whole, the fourth refused whole, and every one of the 1,024 counters holds exactly
/// the three admitted hits.
pub async fn the_longest_lists_on_the_largest_request_count_all_or_nothing(
    client: &mut Client,
    http: &Http,
) {
    let values: Vec<String> = (0..64).map(|index| format!("v{index}")).collect();
    let entries: Vec<[(&str, &str); 1]> = values
        .iter()
        .map(|value| [("wide", value.as_str())])
        .collect();
    let descriptors: Vec<&[(&str, &str)]> = entries.iter().map(|entry| &entry[..]).collect();
    for remaining in [2, 1, 0] {
        let response = ask(client, request("attack", &descriptors)).await;
        assert_eq!(code(&response), Code::Ok);
        assert!(
            response
                .statuses
                .iter()
                .all(|status| status.limit_remaining == remaining),
            "the sliding window of 3 decides: {response:?}"
        );
    }
    let refused = ask(client, request("attack", &descriptors)).await;
    assert_eq!(code(&refused), Code::OverLimit);
    assert!(
        refused
            .statuses
            .iter()
            .all(|status| status_code(status) == Code::OverLimit)
    );

    let mut counts = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = http
            .get(&format!(
                "/api/counters?prefix=1%7Cattack%7C&limit=1000{cursor}"
            ))
            .await
            .json();
        let counters = page["counters"].as_array().expect("a page of counters");
        for counter in counters {
            let entry = &counter["decoded"]["entries"][0];
            if entry["key"] == "wide" && entry["value"].as_str().is_some_and(|v| v.starts_with('v'))
            {
                counts.push(counter["count"].as_u64().expect("a count"));
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(counts.len(), 64 * 16, "a counter per limit and descriptor");
    counts.dedup();
    assert_eq!(
        counts,
        [3],
        "every counter of every list holds the 3 admitted"
    );
}

/// The largest hits on every algorithm: a Go-style fixed window counts them (and a refund as
/// large takes them back); the other algorithms and a list refuse them uncounted, and a refund
/// as large leaves them as they were; the largest limits admit the largest hits exactly.
pub async fn the_largest_hits_and_refunds_leave_every_counter_sane(client: &mut Client) {
    let once = async |client: &mut Client, key: &str, count: u64, refund: bool| {
        let response = ask(client, hits(key, "max", count, refund)).await;
        (code(&response), response.statuses[0].limit_remaining)
    };
    assert_eq!(
        once(client, "fixed", MAX_HITS, false).await,
        (Code::OverLimit, 0)
    );
    assert_eq!(once(client, "fixed", MAX_HITS, true).await, (Code::Ok, 5));
    assert_eq!(once(client, "fixed", MAX_HITS, true).await, (Code::Ok, 5));
    assert_eq!(once(client, "fixed", 1, false).await, (Code::Ok, 4));
    for (key, capacity) in [("sliding", 5), ("bucket", 5), ("wide", 3)] {
        assert_eq!(
            once(client, key, MAX_HITS, false).await.0,
            Code::OverLimit,
            "{key}: refused, nothing counted"
        );
        assert_eq!(once(client, key, MAX_HITS, true).await.0, Code::Ok, "{key}");
        assert_eq!(
            once(client, key, 1, false).await,
            (Code::Ok, capacity - 1),
            "{key}: the refund of nothing counted left nothing owed"
        );
    }
    assert_eq!(
        once(client, "giant_sliding", MAX_HITS, false).await,
        (Code::Ok, 0)
    );
    assert_eq!(
        once(client, "giant_sliding", 1, false).await,
        (Code::OverLimit, 0)
    );
    let (admitted, left) = once(client, "giant_bucket", MAX_HITS, false).await;
    assert_eq!(admitted, Code::Ok, "a full bucket gives its whole burst");
    assert!(
        left < 1_000,
        "a few tokens refill per second at most: {left}"
    );
    assert_eq!(
        once(client, "giant_bucket", MAX_HITS, false).await.0,
        Code::OverLimit
    );
}
