//! What the tests of the algorithms share: one rule per algorithm (and a list) that each admit
//! 20 at once when fresh, and 64 callers racing over gRPC to prove it, on any store.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::http::Http;
use super::{Client, Code, Service, code, request};

/// One rule per algorithm, each admitting 20 at once when fresh, and a list whose tightest
/// limit admits 20.
pub const LIMITS: &str = r#"
domain: algo
descriptors:
  - key: fixed
    rate_limit: {unit: hour, requests_per_unit: 20}
  - key: five_minutes
    rate_limit: {unit: minute, unit_multiplier: 5, requests_per_unit: 20}
  - key: sliding
    rate_limit: {unit: hour, requests_per_unit: 20, algorithm: sliding_window}
  - key: bucket
    rate_limit: {unit: hour, requests_per_unit: 10, algorithm: token_bucket, burst: 20}
  - key: list
    rate_limit:
      - {unit: hour, requests_per_unit: 30}
      - {unit: minute, unit_multiplier: 60, requests_per_unit: 20, algorithm: sliding_window}
      - {unit: hour, requests_per_unit: 10, algorithm: token_bucket, burst: 25}
"#;

/// The descriptor keys of [`LIMITS`]: each admits exactly 20 from fresh.
pub const TWENTY_AT_ONCE: [&str; 5] = ["fixed", "five_minutes", "sliding", "bucket", "list"];

/// 64 callers at once, each asking once for (`key`, `value`) on the next of `clients`: how many
/// were admitted.
async fn race(clients: &[Client], key: &str, value: &str) -> usize {
    let start = Arc::new(Barrier::new(64));
    let calls: Vec<_> = (0..64)
        .map(|caller| {
            let mut client = clients[caller % clients.len()].clone();
            let start = start.clone();
            let request = request("algo", &[&[(key, value)]]);
            tokio::spawn(async move {
                start.wait().await;
                let response = client.should_rate_limit(request).await.expect("answered");
                code(&response.into_inner())
            })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        match call.await.unwrap() {
            Code::Ok => admitted += 1,
            Code::OverLimit => {}
            Code::Unknown => panic!("UNKNOWN is never an answer"),
        }
    }
    admitted
}

/// Every rule of [`LIMITS`] admits exactly 20 of 64 racing callers; `value` keeps runs apart.
pub async fn every_algorithm_admits_exactly_twenty(clients: &[Client], value: &str) {
    for key in TWENTY_AT_ONCE {
        assert_eq!(race(clients, key, value).await, 20, "{key} ({value})");
    }
}

/// The list's three counters (a fixed window, a sliding window, a bucket's tokens taken) all
/// hold exactly what was admitted: a refused request was counted by none of them.
pub async fn list_counters_agree(http: &Http, value: &str, admitted: u64) {
    let listed = http
        .get("/api/counters?prefix=1%7Calgo%7C&limit=1000")
        .await
        .json();
    let mut counts: Vec<(String, u64)> = listed["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|counter| counter["decoded"]["entries"][0]["value"] == value)
        .filter(|counter| counter["decoded"]["listed"] == true)
        .map(|counter| {
            let algorithm = counter["decoded"]["algorithm"].as_str().unwrap();
            (algorithm.to_string(), counter["count"].as_u64().unwrap())
        })
        .collect();
    counts.sort();
    let expected: Vec<(String, u64)> = ["fixed_window", "sliding_window", "token_bucket"]
        .map(|algorithm| (algorithm.to_string(), admitted))
        .into();
    assert_eq!(counts, expected, "{listed}");
}

pub async fn clients(service: &Service, count: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(service.client().await);
    }
    clients
}
