//! `--stop-cache-key-increment-when-overlimit` (the Go service's
//! STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT), on whichever store the service was started with:
//! when one descriptor of a request goes over its limit, the others are not counted; the one
//! going over is.

use serde_json::Value;

use super::{Code, Service, ask, code, request, status_code};

/// Two rules of one domain: `roomy` (5 a minute) and `tight` (1 a minute).
pub const LIMITS: &str = "domain: shop
descriptors:
  - key: roomy
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: tight
    rate_limit: {unit: minute, requests_per_unit: 1}
";

/// The config file to start the service with.
pub const FILES: &[(&str, &str)] = &[("shop.yaml", LIMITS)];

/// Each rule's counter value, by rule (`shop.roomy`, `shop.tight`), from `/api/counters`.
pub async fn counter_values(service: &Service) -> Vec<(String, u64)> {
    let listing = service.http().get("/api/counters?limit=1000").await;
    assert_eq!(listing.status, 200, "{}", listing.body);
    let listing = listing.json();
    let mut values: Vec<(String, u64)> = listing["counters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|counter| {
            let path = &counter["decoded"]["rule"]["path"];
            (
                path.as_str().unwrap_or_default().to_string(),
                counter["count"].as_u64().unwrap(),
            )
        })
        .collect();
    values.sort();
    assert_eq!(listing["next_cursor"], Value::Null, "one page");
    values
}

/// Asks `[roomy, tight]` twice: the second time `tight` goes over, so `roomy` is not counted
/// (its remaining stays 4) and `tight` is (2). `stopped` says whether the service was started
/// with the setting; without it `roomy` is counted both times, as the Go service's default does.
pub async fn one_over_stops_the_others(service: &Service, stopped: bool) {
    let mut client = service.client().await;
    let both = || request("shop", &[&[("roomy", "r")], &[("tight", "t")]]);
    let first = ask(&mut client, both()).await;
    assert_eq!(code(&first), Code::Ok, "{first:?}");
    let second = ask(&mut client, both()).await;
    assert_eq!(code(&second), Code::OverLimit, "{second:?}");
    assert_eq!(status_code(&second.statuses[0]), Code::Ok);
    assert_eq!(status_code(&second.statuses[1]), Code::OverLimit);
    let roomy: u32 = if stopped { 1 } else { 2 };
    assert_eq!(second.statuses[0].limit_remaining, 5 - roomy);
    assert_eq!(
        counter_values(service).await,
        [
            ("shop.roomy".to_string(), u64::from(roomy)),
            ("shop.tight".to_string(), 2)
        ],
        "roomy counted {roomy} times, tight every time (it went over)"
    );
    let alone = ask(&mut client, request("shop", &[&[("roomy", "r")]])).await;
    assert_eq!(code(&alone), Code::Ok);
    assert_eq!(
        alone.statuses[0].limit_remaining,
        5 - roomy - 1,
        "alone, counted"
    );
}
