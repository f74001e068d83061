//! A list of limits is all or nothing: every limit must admit, a request refused by any is
//! counted by none, and the status is the deciding limit's (when refused, the refusing limit with
//! the longest wait; when admitted, the one with the least remaining). Its counters never drift
//! apart, whatever the arrivals.

use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use proptest::prelude::*;
use ratelimiter::clock::Unit;

use crate::common::http::Http;
use crate::common::{Client, Code, DescriptorStatus, Service, ask, code, descriptor};

const LIMITS: &str = r#"
domain: lists
descriptors:
  - key: user
    rate_limit:
      - {unit: hour, requests_per_unit: 5, name: hourly}
      - {unit: minute, requests_per_unit: 3, algorithm: sliding_window, name: per_minute}
"#;

fn hits(user: &str, hits: u64) -> RateLimitRequest {
    let mut descriptor = descriptor(&[("user", user)]);
    descriptor.hits_addend = Some(envoy_types::pb::google::protobuf::UInt64Value { value: hits });
    RateLimitRequest {
        domain: "lists".into(),
        descriptors: vec![descriptor],
        hits_addend: 0,
    }
}

/// (code, deciding limit's name, its requests per unit and unit, remaining, seconds to reset)
async fn status(
    client: &mut Client,
    user: &str,
    count: u64,
) -> (Code, String, u32, Unit, u32, i64) {
    let response = ask(client, hits(user, count)).await;
    let status: &DescriptorStatus = &response.statuses[0];
    let limit = status.current_limit.as_ref().expect("a limit");
    (
        code(&response),
        limit.name.clone(),
        limit.requests_per_unit,
        Unit::from_proto_number(limit.unit).unwrap(),
        status.limit_remaining,
        status.duration_until_reset.as_ref().unwrap().seconds,
    )
}

/// The counts of `user`'s two counters: (fixed window, sliding window).
async fn counts(http: &Http, user: &str) -> (u64, u64) {
    let listed = http.get("/api/counters?prefix=1%7Clists%7C").await.json();
    let count = |algorithm: &str| {
        listed["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|counter| {
                counter["decoded"]["algorithm"] == algorithm
                    && counter["decoded"]["entries"][0]["value"] == user
            })
            .map_or(0, |counter| counter["count"].as_u64().unwrap())
    };
    (count("fixed_window"), count("sliding_window"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_counts_all_or_nothing_and_reports_its_deciding_limit() {
    use Code::{Ok as Admitted, OverLimit};
    let service = Service::start(&[("lists.yaml", LIMITS)], &[]).await;
    let mut client = service.client().await;
    let http = service.http();
    let per_minute = |code, remaining, reset| {
        (
            code,
            "per_minute".to_string(),
            3,
            Unit::Minute,
            remaining,
            reset,
        )
    };
    let hourly =
        |code, remaining, reset| (code, "hourly".to_string(), 5, Unit::Hour, remaining, reset);

    // The clock is 2 s into a minute, 30 min 2 s into an hour. Sliding buckets are 3 s wide: a
    // hit now stays counted until 61 s from now. The fourth hit is refused by the sliding window;
    // the hourly window had room and counts nothing either.
    for expected in [
        per_minute(Admitted, 2, 61),
        per_minute(Admitted, 1, 61),
        per_minute(Admitted, 0, 61),
        per_minute(OverLimit, 0, 61),
    ] {
        assert_eq!(status(&mut client, "ann", 1).await, expected);
    }
    assert_eq!(counts(&http, "ann").await, (3, 3));

    // The hourly window has the least remaining now: it decides, resetting at the hour's end.
    service.clock.advance(Duration::from_secs(61));
    for expected in [
        hourly(Admitted, 1, 1_737),
        hourly(Admitted, 0, 1_737),
        hourly(OverLimit, 0, 1_737),
    ] {
        assert_eq!(status(&mut client, "ann", 1).await, expected);
    }
    assert_eq!(counts(&http, "ann").await, (5, 2));
    // Two hits: both refuse; the one with the longer wait decides.
    assert_eq!(
        status(&mut client, "ann", 2).await,
        hourly(OverLimit, 0, 1_737)
    );
    assert_eq!(counts(&http, "ann").await, (5, 2));

    // More hits than the sliding window has room for are refused whole.
    assert_eq!(
        status(&mut client, "bob", 4).await,
        per_minute(OverLimit, 3, 60)
    );
    assert_eq!(counts(&http, "bob").await, (0, 0));

    let metrics = http.get("/metrics").await.body;
    for expected in [
        r#"ratelimit_service_rate_limit_total_hits{domain="lists",key1="user",key2=""} 13"#,
        r#"ratelimit_service_rate_limit_over_limit{domain="lists",key1="user",key2=""} 8"#,
        r#"ratelimit_service_rate_limit_within_limit{domain="lists",key1="user",key2=""} 5"#,
        r#"ratelimiter_limit_decisions_total{algorithm="fixed_window",result="admitted"} 2"#,
        r#"ratelimiter_limit_decisions_total{algorithm="fixed_window",result="refused"} 2"#,
        r#"ratelimiter_limit_decisions_total{algorithm="sliding_window",result="admitted"} 3"#,
        r#"ratelimiter_limit_decisions_total{algorithm="sliding_window",result="refused"} 2"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Random hits (some refunds) at random moments: after every request, the list's fixed and
    /// sliding counters hold the same count, and the refused requests moved neither.
    #[test]
    fn a_lists_counters_never_drift_apart(
        steps in prop::collection::vec((0u64..20, 0u64..4, any::<bool>()), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let limits = "domain: lists\ndescriptors:\n  - key: user\n    rate_limit:\n      - {unit: hour, requests_per_unit: 12}\n      - {unit: hour, requests_per_unit: 9, algorithm: sliding_window}\n      - {unit: hour, requests_per_unit: 1, algorithm: token_bucket, burst: 10}\n";
            let service = Service::start(&[("lists.yaml", limits)], &[]).await;
            let mut client = service.client().await;
            let http = service.http();
            let mut expected = 0u64;
            for (seconds, count, refund) in steps {
                service.clock.advance(Duration::from_secs(seconds));
                let mut request = hits("cy", count);
                request.descriptors[0].is_negative_hits = refund;
                let response = ask(&mut client, request).await;
                if refund {
                    expected = expected.saturating_sub(count);
                } else if code(&response) == Code::Ok {
                    expected += count;
                }
                let (fixed, sliding) = counts(&http, "cy").await;
                assert_eq!((fixed, sliding), (expected, expected));
                if code(&response) == Code::Ok && !refund {
                    // The sliding window has the least room: it decides.
                    let remaining = response.statuses[0].limit_remaining;
                    assert_eq!(u64::from(remaining), 9 - expected);
                }
            }
        });
    }
}
