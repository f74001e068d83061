//! Malformed and oversized requests are refused with a status that names the problem, and the
//! service keeps answering afterwards.

use crate::common::{Code, Service, ask, code, descriptor, request};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::UInt64Value;

const LIMITS: &str = r#"
domain: bad
descriptors:
  - key: k
    rate_limit: {unit: hour, requests_per_unit: 1}
"#;

fn with(modify: impl FnOnce(&mut RateLimitRequest)) -> RateLimitRequest {
    let mut request = request("bad", &[&[("k", "v")]]);
    modify(&mut request);
    request
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_naming_the_field() {
    let extra = [
        "--max-descriptors",
        "4",
        "--max-entries",
        "3",
        "--max-key-bytes",
        "8",
        "--max-value-bytes",
        "16",
    ];
    let service = Service::start(&[("bad.yaml", LIMITS)], &extra).await;
    let mut client = service.client().await;
    let cases: Vec<(RateLimitRequest, &str)> = vec![
        (
            with(|r| r.domain.clear()),
            "rate limit domain must not be empty",
        ),
        (
            with(|r| r.descriptors.clear()),
            "rate limit descriptor list must not be empty",
        ),
        (
            with(|r| r.descriptors.push(descriptor(&[]))),
            "descriptors[1] has no entries",
        ),
        (
            with(|r| r.descriptors[0] = descriptor(&[("k", "v"), ("", "x")])),
            "descriptors[0].entries[1].key must not be empty",
        ),
        (
            with(|r| r.descriptors = vec![descriptor(&[("k", "v")]); 5]),
            "rate limit request has 5 descriptors, more than the 4 allowed",
        ),
        (
            with(|r| {
                r.descriptors[0] = descriptor(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])
            }),
            "descriptors[0] has 4 entries, more than the 3 allowed",
        ),
        (
            with(|r| r.descriptors[0] = descriptor(&[("k23456789", "v")])),
            "descriptors[0].entries[0].key is 9 bytes, more than the 8 allowed",
        ),
        (
            with(|r| r.descriptors[0] = descriptor(&[("k", "v2345678901234567")])),
            "descriptors[0].entries[0].value is 17 bytes, more than the 16 allowed",
        ),
        (
            with(|r| {
                r.descriptors[0].limit = Some(RateLimitOverride {
                    requests_per_unit: 5,
                    unit: 0,
                })
            }),
            "descriptors[0].limit.unit 0 is not a rate limit unit",
        ),
        (
            with(|r| {
                r.descriptors[0].limit = Some(RateLimitOverride {
                    requests_per_unit: 5,
                    unit: 42,
                })
            }),
            "descriptors[0].limit.unit 42 is not a rate limit unit",
        ),
        (
            with(|r| r.descriptors[0].hits_addend = Some(UInt64Value { value: 1 << 40 })),
            "descriptors[0].hits_addend 1099511627776 is more than the 4294967295 allowed",
        ),
    ];
    for (request, message) in cases {
        let status = client.should_rate_limit(request).await.expect_err(message);
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{message}: {status:?}"
        );
        assert!(
            status.message().starts_with(message),
            "expected {message:?}, got {:?}",
            status.message()
        );
    }
    // Nothing was counted by the refused requests, and the service still answers.
    let response = ask(&mut client, with(|_| {})).await;
    assert_eq!(
        (code(&response), response.statuses[0].limit_remaining),
        (Code::Ok, 0)
    );
}

#[tokio::test]
async fn an_oversized_message_is_resource_exhausted() {
    let service = Service::start(&[("bad.yaml", LIMITS)], &["--max-message-bytes", "65536"]).await;
    let mut client = service.client().await;
    let huge = "x".repeat(100_000);
    let status = client
        .should_rate_limit(with(|r| r.descriptors[0] = descriptor(&[("k", &huge)])))
        .await
        .expect_err("a 100 kB message is over the 64 kB limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{status:?}"
    );
    assert_eq!(code(&ask(&mut client, with(|_| {})).await), Code::Ok);
}

#[tokio::test]
async fn thousands_of_descriptors_are_refused_before_any_work() {
    let service = Service::start(&[("bad.yaml", LIMITS)], &[]).await;
    let mut client = service.client().await;
    let many = with(|r| r.descriptors = vec![descriptor(&[("k", "v")]); 10_000]);
    let status = client
        .should_rate_limit(many)
        .await
        .expect_err("10,000 descriptors");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "rate limit request has 10000 descriptors, more than the 64 allowed"
    );
    assert_eq!(
        ask(&mut client, with(|_| {})).await.statuses[0].limit_remaining,
        0
    );
}
