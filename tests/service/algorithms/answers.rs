//! What a client sees, per algorithm: `limit_remaining` is how many more it may send now, and
//! `duration_until_reset` how long until one more than that would be admitted (a fixed window:
//! until it ends), in the status, the `RateLimit-*` headers and `/json` (which also names a
//! window's `unitMultiplier`); and what an operator sees in `/api/limits`, `/rlconfig` and
//! `/api/counters`.

use std::time::Duration;

use serde_json::json;

use crate::common::algorithms::LIMITS;
use crate::common::{Client, Code, Service, ask, code, limit_of, request};

/// (code, remaining, seconds to reset, the `RateLimit-*` headers (limit, remaining, reset))
async fn answer(client: &mut Client, key: &str, value: &str) -> (Code, u32, i64, [String; 3]) {
    let response = ask(client, request("algo", &[&[(key, value)]])).await;
    let status = &response.statuses[0];
    let header = |name: &str| {
        response
            .response_headers_to_add
            .iter()
            .find(|header| header.key == name)
            .map(|header| header.value.clone())
            .unwrap_or_default()
    };
    (
        code(&response),
        status.limit_remaining,
        status.duration_until_reset.as_ref().unwrap().seconds,
        ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"].map(header),
    )
}

fn headers(limit: u32, remaining: u32, reset: i64) -> [String; 3] {
    [limit.to_string(), remaining.to_string(), reset.to_string()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_algorithm_says_how_many_more_now_and_how_long_until_one_more() {
    let service = Service::start(&[("algo.yaml", LIMITS)], &["--response-headers"]).await;
    let mut client = service.client().await;

    // A fixed window of 5 minutes: the clock is 2 s into one, which ends in 298 s.
    let response = ask(&mut client, request("algo", &[&[("five_minutes", "a")]])).await;
    assert_eq!(limit_of(&response.statuses[0]), Some((20, "MINUTE")));
    assert_eq!(
        answer(&mut client, "five_minutes", "a").await,
        (Code::Ok, 18, 298, headers(20, 18, 298))
    );

    // A sliding window of an hour (buckets of 3 minutes): a hit counted now leaves the span in
    // 3,778 s, so that is when one more than the remaining fits.
    assert_eq!(
        answer(&mut client, "sliding", "a").await,
        (Code::Ok, 19, 3_778, headers(20, 19, 3_778))
    );
    service.clock.advance(Duration::from_secs(600));
    for remaining in (0..19).rev() {
        let (code, left, reset, _) = answer(&mut client, "sliding", "a").await;
        assert_eq!((code, left, reset), (Code::Ok, remaining, 3_178));
    }
    assert_eq!(
        answer(&mut client, "sliding", "a").await,
        (Code::OverLimit, 0, 3_178, headers(20, 0, 3_178))
    );

    // A token bucket of 20 refilling 10 an hour: a token every 360 s.
    assert_eq!(
        answer(&mut client, "bucket", "a").await,
        (Code::Ok, 19, 360, headers(10, 19, 360))
    );
    for _ in 0..19 {
        answer(&mut client, "bucket", "a").await;
    }
    assert_eq!(
        answer(&mut client, "bucket", "a").await,
        (Code::OverLimit, 0, 360, headers(10, 0, 360))
    );
    service.clock.advance(Duration::from_secs(100));
    assert_eq!(
        answer(&mut client, "bucket", "a").await,
        (Code::OverLimit, 0, 260, headers(10, 0, 260))
    );
    service.clock.advance(Duration::from_secs(260));
    assert_eq!(
        answer(&mut client, "bucket", "a").await,
        (Code::Ok, 0, 360, headers(10, 0, 360))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_names_the_multiplier_and_operators_see_every_new_field() {
    let service = Service::start(&[("algo.yaml", LIMITS)], &[]).await;
    let http = service.http();
    let answer = http
        .post(
            "/json",
            r#"{"domain": "algo", "descriptors": [{"entries": [{"key": "five_minutes", "value": "a"}]}]}"#,
        )
        .await
        .json();
    assert_eq!(
        answer["statuses"][0]["currentLimit"],
        json!({"requestsPerUnit": 20, "unit": "MINUTE", "unitMultiplier": 5})
    );
    assert_eq!(answer["statuses"][0]["durationUntilReset"], "298s");

    let limits = http.get("/api/limits").await.json();
    let rules = &limits["domains"][0]["rules"];
    let rule = |path: &str| {
        rules
            .as_array()
            .unwrap()
            .iter()
            .find(|rule| rule["path"] == path)
            .unwrap()
            .clone()
    };
    let common =
        json!({"unlimited": false, "shadow_mode": false, "quota_mode": false, "name": null});
    let with = |fields: serde_json::Value| {
        let mut merged = common.clone();
        merged
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        merged
    };
    assert_eq!(
        rule("algo.five_minutes"),
        with(
            json!({"path": "algo.five_minutes", "unit": "MINUTE", "requests_per_unit": 20,
                    "unit_multiplier": 5, "window_seconds": 300})
        )
    );
    assert_eq!(
        rule("algo.bucket"),
        with(
            json!({"path": "algo.bucket", "unit": "HOUR", "requests_per_unit": 10,
                    "algorithm": "token_bucket", "burst": 20})
        )
    );
    assert_eq!(
        rule("algo.list"),
        with(
            json!({"path": "algo.list", "unit": null, "requests_per_unit": null, "limits": [
                {"unit": "HOUR", "requests_per_unit": 30, "name": null},
                {"unit": "MINUTE", "requests_per_unit": 20, "name": null, "unit_multiplier": 60,
                 "window_seconds": 3600, "algorithm": "sliding_window"},
                {"unit": "HOUR", "requests_per_unit": 10, "name": null, "algorithm": "token_bucket",
                 "burst": 25},
            ]})
        )
    );

    let rlconfig = http.get("/rlconfig").await.body;
    for line in [
        "algo.fixed: unit=HOUR requests_per_unit=20, shadow_mode: false, quota_mode: false",
        "algo.five_minutes: unit=MINUTE requests_per_unit=20 unit_multiplier=5, shadow_mode: false, quota_mode: false",
        "algo.bucket: unit=HOUR requests_per_unit=10 algorithm=token_bucket burst=20, shadow_mode: false, quota_mode: false",
        "algo.list: unit=HOUR requests_per_unit=30; unit=MINUTE requests_per_unit=20 unit_multiplier=60 algorithm=sliding_window; unit=HOUR requests_per_unit=10 algorithm=token_bucket burst=25, shadow_mode: false, quota_mode: false",
    ] {
        assert!(
            rlconfig.lines().any(|l| l == line),
            "{line} missing from:\n{rlconfig}"
        );
    }

    let mut client = service.client().await;
    for key in ["bucket", "list"] {
        ask(&mut client, request("algo", &[&[(key, "z")]])).await;
    }
    let counters = http.get("/api/counters?prefix=1%7Calgo%7C").await.json();
    let mut seen: Vec<(String, bool, u64, u64)> = counters["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|counter| counter["decoded"]["entries"][0]["value"] == "z")
        .map(|counter| {
            let decoded = &counter["decoded"];
            (
                decoded["algorithm"].as_str().unwrap().to_string(),
                decoded["listed"] == true,
                counter["count"].as_u64().unwrap(),
                counter["limit"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("fixed_window".to_string(), true, 1, 30),
            ("sliding_window".to_string(), true, 1, 20),
            ("token_bucket".to_string(), false, 1, 20),
            ("token_bucket".to_string(), true, 1, 25),
        ]
    );
}
