//! What the answers hold, over gRPC with a clock moved by hand: remaining counts, resets, windows,
//! hits_addend, limit overrides, shadow and quota modes, headers and dynamic metadata.

use std::time::Duration;

use crate::common;
use crate::common::{Code, Service, ask, code, descriptor, limit_of, request, status_code};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{UInt64Value, Value};

const LIMITS: &str = r#"
domain: answers
descriptors:
  - key: per_minute
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: per_hour
    rate_limit: {unit: hour, requests_per_unit: 10}
  - key: blocked
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: quota_small
    quota_mode: true
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: quota_large
    quota_mode: true
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: service
    value: service_1
    quota_mode: true
    metadata:
      service_with_quota:
        name: service_1
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: service
    value: service_2
    quota_mode: true
    metadata:
      service_with_quota:
        name: service_2
        tier: backup
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: unlimited
    rate_limit: {unlimited: true}
  - key: files
    value: files/*
    share_threshold: true
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: files_no_share
    value: files/*
    rate_limit: {unit: hour, requests_per_unit: 3}
"#;

async fn start(extra: &[&str]) -> (Service, common::Client) {
    let service = Service::start(&[("answers.yaml", LIMITS)], extra).await;
    let client = service.client().await;
    (service, client)
}

fn one(key: &str, value: &str) -> RateLimitRequest {
    request("answers", &[&[(key, value)]])
}

#[tokio::test]
async fn remaining_counts_down_then_over_limit_until_the_window_ends() {
    let (service, mut client) = start(&[]).await;
    for expected in [2, 1, 0] {
        let response = ask(&mut client, one("per_minute", "alice")).await;
        let status = &response.statuses[0];
        assert_eq!(code(&response), Code::Ok);
        assert_eq!(status_code(status), Code::Ok);
        assert_eq!(status.limit_remaining, expected);
        assert_eq!(limit_of(status), Some((3, "MINUTE")));
        // START_MS is 2 s into a minute, as in the Go service's tests (now = 2222).
        assert_eq!(status.duration_until_reset.unwrap().seconds, 58);
    }
    let response = ask(&mut client, one("per_minute", "alice")).await;
    assert_eq!(code(&response), Code::OverLimit);
    assert_eq!(status_code(&response.statuses[0]), Code::OverLimit);
    assert_eq!(response.statuses[0].limit_remaining, 0);

    // Another value has its own counter.
    assert_eq!(
        ask(&mut client, one("per_minute", "bob")).await.statuses[0].limit_remaining,
        2
    );

    // The window ends on the minute boundary of the epoch, not a minute after the first hit.
    service.clock.advance(Duration::from_millis(57_500));
    let response = ask(&mut client, one("per_minute", "alice")).await;
    assert_eq!(code(&response), Code::OverLimit);
    assert_eq!(
        response.statuses[0].duration_until_reset.unwrap().seconds,
        1
    );
    service.clock.advance(Duration::from_millis(500));
    let response = ask(&mut client, one("per_minute", "alice")).await;
    assert_eq!(code(&response), Code::Ok);
    assert_eq!(response.statuses[0].limit_remaining, 2);
    assert_eq!(
        response.statuses[0].duration_until_reset.unwrap().seconds,
        60
    );
}

#[tokio::test]
async fn a_limit_of_zero_blocks_every_request() {
    let (_service, mut client) = start(&[]).await;
    let response = ask(&mut client, one("blocked", "x")).await;
    assert_eq!(code(&response), Code::OverLimit);
    assert_eq!(limit_of(&response.statuses[0]), Some((0, "SECOND")));
}

#[tokio::test]
async fn unknown_domains_and_unmatched_descriptors_are_ok_without_a_limit() {
    let (_service, mut client) = start(&[]).await;
    for request in [
        request("nope", &[&[("per_minute", "x")]]),
        one("not_configured", "x"),
    ] {
        let response = ask(&mut client, request).await;
        assert_eq!(code(&response), Code::Ok);
        let status = &response.statuses[0];
        assert_eq!(
            (
                status_code(status),
                status.current_limit.clone(),
                status.limit_remaining
            ),
            (Code::Ok, None, 0)
        );
        assert_eq!(status.duration_until_reset, None);
    }
}

#[tokio::test]
async fn statuses_come_back_in_request_order() {
    let (_service, mut client) = start(&[]).await;
    let request = request(
        "answers",
        &[
            &[("per_hour", "a")],
            &[("nothing", "x")],
            &[("unlimited", "x")],
            &[("blocked", "b")],
            &[("per_minute", "c")],
        ],
    );
    let response = ask(&mut client, request).await;
    let limits: Vec<_> = response.statuses.iter().map(limit_of).collect();
    assert_eq!(
        limits,
        [
            Some((10, "HOUR")),
            None,
            None,
            Some((0, "SECOND")),
            Some((3, "MINUTE"))
        ]
    );
    let remaining: Vec<_> = response
        .statuses
        .iter()
        .map(|s| s.limit_remaining)
        .collect();
    assert_eq!(remaining, [9, 0, u32::MAX, 0, 2]);
    assert_eq!(code(&response), Code::OverLimit);
}

#[tokio::test]
async fn hits_addend_zero_means_one_and_a_descriptor_value_overrides_it() {
    let (_service, mut client) = start(&[]).await;
    let mut request = one("per_hour", "h");
    request.hits_addend = 0;
    assert_eq!(
        ask(&mut client, request.clone()).await.statuses[0].limit_remaining,
        9
    );
    request.hits_addend = 3;
    assert_eq!(
        ask(&mut client, request.clone()).await.statuses[0].limit_remaining,
        6
    );
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 2 });
    assert_eq!(
        ask(&mut client, request.clone()).await.statuses[0].limit_remaining,
        4
    );
    // 0 on the descriptor only checks: nothing is consumed.
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
    for _ in 0..3 {
        let response = ask(&mut client, request.clone()).await;
        assert_eq!(response.statuses[0].limit_remaining, 4);
        assert_eq!(code(&response), Code::Ok);
    }
    // Consuming more than is left goes over; a later check-only call sees it over too.
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 5 });
    assert_eq!(
        code(&ask(&mut client, request.clone()).await),
        Code::OverLimit
    );
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
    assert_eq!(code(&ask(&mut client, request).await), Code::OverLimit);
}

#[tokio::test]
async fn negative_hits_refund_what_was_consumed() {
    let (_service, mut client) = start(&[]).await;
    let mut request = one("per_hour", "refund");
    request.hits_addend = 4;
    assert_eq!(
        ask(&mut client, request.clone()).await.statuses[0].limit_remaining,
        6
    );
    request.descriptors[0].is_negative_hits = true;
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 3 });
    assert_eq!(
        ask(&mut client, request.clone()).await.statuses[0].limit_remaining,
        9
    );
    // A refund never takes a counter below zero.
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 50 });
    assert_eq!(
        ask(&mut client, request).await.statuses[0].limit_remaining,
        10
    );
}

#[tokio::test]
async fn a_descriptor_limit_override_replaces_the_config_and_counts_apart() {
    let (_service, mut client) = start(&[]).await;
    let mut request = one("per_hour", "o");
    request.descriptors[0].limit = Some(RateLimitOverride {
        requests_per_unit: 2,
        unit: 4, // DAY
    });
    let first = ask(&mut client, request.clone()).await;
    assert_eq!(limit_of(&first.statuses[0]), Some((2, "DAY")));
    assert_eq!(first.statuses[0].limit_remaining, 1);
    assert_eq!(
        first.statuses[0].duration_until_reset.unwrap().seconds,
        86_400 - 45_002
    );
    ask(&mut client, request.clone()).await;
    assert_eq!(
        code(&ask(&mut client, request.clone()).await),
        Code::OverLimit
    );
    // The configured rule for the same entries has its own counter.
    assert_eq!(
        ask(&mut client, one("per_hour", "o")).await.statuses[0].limit_remaining,
        9
    );
    // A different override on the same entries does not share the counter either.
    request.descriptors[0].limit = Some(RateLimitOverride {
        requests_per_unit: 5,
        unit: 4,
    });
    assert_eq!(
        ask(&mut client, request.clone()).await.statuses[0].limit_remaining,
        4
    );
    // Overrides apply to descriptors that match no rule, but only in a known domain.
    let mut unmatched = one("anything", "x");
    unmatched.descriptors[0].limit = request.descriptors[0].limit;
    assert_eq!(
        limit_of(&ask(&mut client, unmatched.clone()).await.statuses[0]),
        Some((5, "DAY"))
    );
    unmatched.domain = "unknown-domain".into();
    assert_eq!(
        limit_of(&ask(&mut client, unmatched).await.statuses[0]),
        None
    );
}

#[tokio::test]
async fn shadow_rules_count_but_never_block() {
    let (_service, mut client) = start(&[]).await;
    for expected_remaining in [0, 0, 0] {
        let response = ask(&mut client, one("shadow", "s")).await;
        assert_eq!(code(&response), Code::Ok);
        assert_eq!(status_code(&response.statuses[0]), Code::Ok);
        assert_eq!(response.statuses[0].limit_remaining, expected_remaining);
        assert_eq!(limit_of(&response.statuses[0]), Some((1, "HOUR")));
    }
    // A regular rule over its limit still blocks a request that also has a shadow descriptor.
    let mixed = request("answers", &[&[("shadow", "s")], &[("blocked", "b")]]);
    assert_eq!(code(&ask(&mut client, mixed).await), Code::OverLimit);
}

#[tokio::test]
async fn quota_descriptors_block_only_when_all_are_over() {
    let (_service, mut client) = start(&[]).await;
    let both = || {
        request(
            "answers",
            &[&[("quota_small", "q")], &[("quota_large", "q")]],
        )
    };
    let first = ask(&mut client, both()).await;
    assert_eq!(code(&first), Code::Ok);
    let second = ask(&mut client, both()).await;
    let codes: Vec<_> = second.statuses.iter().map(status_code).collect();
    assert_eq!(codes, [Code::OverLimit, Code::Ok]);
    assert_eq!(
        code(&second),
        Code::Ok,
        "one quota descriptor still has room"
    );
    let third = ask(&mut client, both()).await;
    assert_eq!(
        code(&third),
        Code::OverLimit,
        "every quota descriptor is over"
    );
    // A regular descriptor within its limit does not rescue an all-over quota.
    let mixed = request("answers", &[&[("per_hour", "m")], &[("quota_small", "q")]]);
    assert_eq!(code(&ask(&mut client, mixed).await), Code::OverLimit);
}

#[tokio::test]
async fn global_shadow_mode_keeps_statuses_but_never_blocks() {
    let (service, mut client) = start(&["--global-shadow-mode"]).await;
    let response = ask(&mut client, one("blocked", "x")).await;
    assert_eq!(status_code(&response.statuses[0]), Code::OverLimit);
    assert_eq!(code(&response), Code::Ok);
    ask(&mut client, one("nothing", "y")).await;
    assert_eq!(
        service.metrics.global_shadow_mode.get(),
        1,
        "counts what it let through, as the Go service's global_shadow_mode"
    );
}

#[tokio::test]
async fn global_quota_mode_makes_every_descriptor_a_quota_descriptor() {
    let (_service, mut client) = start(&["--global-quota-mode"]).await;
    // One descriptor over, one unmatched (a passing quota descriptor): not blocked.
    let response = ask(
        &mut client,
        request("answers", &[&[("blocked", "x")], &[("nothing", "y")]]),
    )
    .await;
    assert_eq!(code(&response), Code::Ok);
    let response = ask(
        &mut client,
        request("answers", &[&[("blocked", "x")], &[("blocked", "y")]]),
    )
    .await;
    assert_eq!(code(&response), Code::OverLimit);
}

fn headers(
    response: &envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse,
) -> Vec<(String, String)> {
    response
        .response_headers_to_add
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

#[tokio::test]
async fn headers_describe_the_tightest_descriptor_when_enabled() {
    let (_service, mut client) = start(&[]).await;
    assert!(
        ask(&mut client, one("per_minute", "h"))
            .await
            .response_headers_to_add
            .is_empty(),
        "off by default"
    );

    let (_service, mut client) = start(&["--response-headers"]).await;
    let request = request(
        "answers",
        &[
            &[("per_hour", "h")],
            &[("per_minute", "h")],
            &[("nothing", "x")],
        ],
    );
    let response = ask(&mut client, request.clone()).await;
    let expected = [
        ("RateLimit-Limit", "3"),
        ("RateLimit-Remaining", "2"),
        ("RateLimit-Reset", "58"),
    ];
    assert_eq!(
        headers(&response),
        expected.map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // A descriptor over its limit is always the one described.
    let with_blocked = common::request(
        "answers",
        &[
            &[("per_minute", "h")],
            &[("blocked", "b")],
            &[("per_hour", "h")],
        ],
    );
    let response = ask(&mut client, with_blocked).await;
    let expected = [
        ("RateLimit-Limit", "0"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", "1"),
    ];
    assert_eq!(
        headers(&response),
        expected.map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // No limited descriptor, no headers.
    assert!(
        ask(&mut client, one("nothing", "x"))
            .await
            .response_headers_to_add
            .is_empty()
    );

    let names = [
        "--response-headers",
        "--header-limit",
        "A-Limit",
        "--header-remaining",
        "A-Remaining",
        "--header-reset",
        "A-Reset",
    ];
    let (_service, mut client) = start(&names).await;
    let keys: Vec<String> = headers(&ask(&mut client, one("per_hour", "h")).await)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["A-Limit", "A-Remaining", "A-Reset"]);
}

fn field<'a>(
    value: &'a envoy_types::pb::google::protobuf::Struct,
    path: &[&str],
) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = value.fields.get(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match &value.kind {
        Some(Kind::StructValue(inner)) => field(inner, rest),
        _ => None,
    }
}

fn text(value: Option<&Value>) -> Option<&str> {
    match value.and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn dynamic_metadata_carries_the_metadata_of_rules_that_passed() {
    let (_service, mut client) = start(&[]).await;
    assert_eq!(
        ask(&mut client, one("per_hour", "m"))
            .await
            .dynamic_metadata,
        None,
        "off by default"
    );

    let (_service, mut client) = start(&["--response-dynamic-metadata"]).await;
    let quota = || {
        request(
            "answers",
            &[&[("service", "service_1")], &[("service", "service_2")]],
        )
    };
    // Both pass: the first descriptor's values win where both rules have the same key.
    let response = ask(&mut client, quota()).await;
    let metadata = response.dynamic_metadata.expect("dynamic metadata");
    assert_eq!(text(field(&metadata, &["domain"])), Some("answers"));
    assert_eq!(
        text(field(
            &metadata,
            &["metadata", "service_with_quota", "name"]
        )),
        Some("service_1")
    );
    assert_eq!(
        text(field(
            &metadata,
            &["metadata", "service_with_quota", "tier"]
        )),
        Some("backup")
    );
    let Some(Kind::ListValue(descriptors)) =
        field(&metadata, &["descriptors"]).and_then(|v| v.kind.clone())
    else {
        panic!("descriptors is a list");
    };
    let Some(Kind::StructValue(first)) = &descriptors.values[0].kind else {
        panic!("a descriptor is a struct");
    };
    let Some(Kind::ListValue(entries)) = first.fields["entries"].kind.clone() else {
        panic!("entries is a list");
    };
    assert_eq!(text(entries.values.first()), Some("service=service_1"));

    // service_1 (1/min) is now over: only service_2 passes, so its metadata is returned.
    let response = ask(&mut client, quota()).await;
    assert_eq!(
        code(&response),
        Code::Ok,
        "quota mode: service_2 still has room"
    );
    let metadata = response.dynamic_metadata.unwrap();
    assert_eq!(
        text(field(
            &metadata,
            &["metadata", "service_with_quota", "name"]
        )),
        Some("service_2")
    );
}

#[tokio::test]
async fn per_descriptor_hits_addend_is_echoed_in_dynamic_metadata() {
    let (_service, mut client) = start(&["--response-dynamic-metadata"]).await;
    let mut request = request("answers", &[]);
    let mut d = descriptor(&[("per_hour", "x")]);
    d.hits_addend = Some(UInt64Value { value: 0 });
    request.descriptors.push(d);
    request.hits_addend = 2;
    let metadata = ask(&mut client, request).await.dynamic_metadata.unwrap();
    assert_eq!(
        field(&metadata, &["hitsAddend"]).and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(2.0))
    );
}

#[tokio::test]
async fn share_threshold_makes_every_matching_value_share_one_counter() {
    let (_service, mut client) = start(&[]).await;
    for (value, remaining) in [("files/a.pdf", 2), ("files/b.csv", 1), ("files/c.txt", 0)] {
        assert_eq!(
            ask(&mut client, one("files", value)).await.statuses[0].limit_remaining,
            remaining
        );
    }
    assert_eq!(
        code(&ask(&mut client, one("files", "files/new.doc")).await),
        Code::OverLimit
    );
    for value in ["files/a.pdf", "files/b.csv", "files/c.txt"] {
        assert_eq!(
            ask(&mut client, one("files_no_share", value))
                .await
                .statuses[0]
                .limit_remaining,
            2
        );
    }
}
