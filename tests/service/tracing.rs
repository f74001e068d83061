//! Traces: a ShouldRateLimit call gets a server span in the caller's trace (W3C `traceparent`
//! or B3 headers), with the domain, descriptor count, outcome and store, and a child span for
//! the store call, exported over OTLP/gRPC and OTLP/HTTP to a receiver the test runs.

use tonic::metadata::MetadataValue;

use crate::common::otlp::{self, Received};
use crate::common::{self, Service};

const LIMITS: &str = "
domain: traced
descriptors:
  - key: user
    rate_limit: {unit: hour, requests_per_unit: 1}
";

const SERVER_SPAN: &str = "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// The service tracing over `protocol` to `endpoint`, as `ratelimiter-test`.
async fn traced_service(protocol: &str, endpoint: &str) -> Service {
    Service::start(
        &[("traced.yaml", LIMITS)],
        &[
            "--tracing",
            "--tracing-protocol",
            protocol,
            "--tracing-endpoint",
            endpoint,
            "--tracing-service-name",
            "ratelimiter-test",
        ],
    )
    .await
}

/// Two calls for one user (OK, then OVER_LIMIT), each with `headers`.
async fn two_calls(service: &Service, headers: &[(&'static str, String)]) {
    let mut client = service.client().await;
    for _ in 0..2 {
        let mut request = tonic::Request::new(common::request(
            "traced",
            &[&[("user", "u")], &[("other", "x")]],
        ));
        for (name, value) in headers {
            request
                .metadata_mut()
                .insert(*name, MetadataValue::try_from(value.as_str()).unwrap());
        }
        client.should_rate_limit(request).await.unwrap();
    }
}

/// The server spans of `trace_id` whose parent is `parent`, and their store spans.
fn ours(
    spans: &[Received],
    trace_id: &str,
    parent: &str,
) -> Option<(Vec<Received>, Vec<Received>)> {
    let servers: Vec<Received> = spans
        .iter()
        .filter(|s| s.name == SERVER_SPAN && s.trace_id == trace_id && s.parent_span_id == parent)
        .cloned()
        .collect();
    let stores: Vec<Received> = spans
        .iter()
        .filter(|s| s.name == "ratelimit.store")
        .filter(|s| {
            servers
                .iter()
                .any(|server| server.span_id == s.parent_span_id)
        })
        .cloned()
        .collect();
    (servers.len() == 2 && stores.len() == 2).then_some((servers, stores))
}

fn assert_attributes(servers: &[Received], stores: &[Received]) {
    for server in servers {
        assert_eq!(server.service, "ratelimiter-test", "{server:?}");
        assert_eq!(
            server.attribute("ratelimit.domain"),
            Some("traced"),
            "{server:?}"
        );
        assert_eq!(
            server.attribute("ratelimit.descriptor_count"),
            Some("2"),
            "{server:?}"
        );
        assert_eq!(
            server.attribute("ratelimit.store"),
            Some("memory"),
            "{server:?}"
        );
    }
    let mut outcomes: Vec<_> = servers
        .iter()
        .map(|s| s.attribute("ratelimit.outcome").unwrap_or_default())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["OK", "OVER_LIMIT"]);
    for store in stores {
        assert_eq!(
            store.attribute("ratelimit.store"),
            Some("memory"),
            "{store:?}"
        );
        assert_eq!(
            store.attribute("ratelimit.operations"),
            Some("1"),
            "{store:?}"
        );
    }
}

#[tokio::test]
async fn a_traceparent_call_is_continued_over_otlp_grpc_with_a_store_child() {
    let (receiver, spans) = otlp::grpc_receiver().await;
    let endpoint = format!("http://{receiver}");
    let service = traced_service("grpc", &endpoint).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    two_calls(
        &service,
        &[("traceparent", format!("00-{trace}-{parent}-01"))],
    )
    .await;
    // Stopping flushes the batch of spans.
    service.stop().await.unwrap();
    let (servers, stores) = spans
        .wait_for("our spans in the caller's trace", |spans| {
            ours(spans, trace, parent)
        })
        .await;
    assert_attributes(&servers, &stores);
}

#[tokio::test]
async fn b3_headers_are_continued_over_otlp_http() {
    let (receiver, spans) = otlp::http_receiver().await;
    let endpoint = format!("http://{receiver}/v1/traces");
    let service = traced_service("http", &endpoint).await;
    let (trace, parent) = ("80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1");
    two_calls(
        &service,
        &[
            ("x-b3-traceid", trace.to_string()),
            ("x-b3-spanid", parent.to_string()),
            ("x-b3-sampled", "1".to_string()),
        ],
    )
    .await;
    service.stop().await.unwrap();
    let (servers, stores) = spans
        .wait_for("our spans in the B3 trace", |spans| {
            ours(spans, trace, parent)
        })
        .await;
    assert_attributes(&servers, &stores);
}

#[tokio::test]
async fn a_caller_that_did_not_sample_its_trace_gets_no_spans() {
    let (receiver, spans) = otlp::grpc_receiver().await;
    let endpoint = format!("http://{receiver}");
    let service = traced_service("grpc", &endpoint).await;
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-00";
    two_calls(&service, &[("traceparent", unsampled.to_string())]).await;
    // A sampled call after them, to know the export has happened.
    let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4738-00f067aa0ba902b7-01";
    let mut client = service.client().await;
    let mut request = tonic::Request::new(common::request("traced", &[&[("user", "v")]]));
    request
        .metadata_mut()
        .insert("traceparent", MetadataValue::from_static(sampled));
    client.should_rate_limit(request).await.unwrap();
    // /json runs outside any span: its store call must not start a trace of its own.
    let json = r#"{"domain":"traced","descriptors":[{"entries":[{"key":"user","value":"w"}]}]}"#;
    assert_eq!(service.http().post("/json", json).await.status, 200);
    service.stop().await.unwrap();
    spans
        .wait_for("the sampled call's span", |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == "4bf92f3577b34da6a3ce929d0e0e4738")
                .then_some(())
        })
        .await;
    let received = spans
        .wait_for("every span", |spans| Some(spans.to_vec()))
        .await;
    assert!(
        received
            .iter()
            .all(|s| s.trace_id == "4bf92f3577b34da6a3ce929d0e0e4738"),
        "only the sampled call's spans (none for the unsampled trace, none for /json): {received:#?}"
    );
}
