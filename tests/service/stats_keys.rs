//! The Go service's stats keys, which metrics are labelled by: the rule's path by default, the
//! request's values where `detailed_metric` or `value_to_metric` ask for them, and the pattern
//! for `share_threshold` levels; a request's own limit by its entries' keys and values. Cases
//! from envoyproxy/ratelimit's config tests. The Prometheus labels, scraped from the service,
//! are those of the Go service's default statsd_exporter mapping.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use ratelimiter::config::{Config, MatchBudget};

use crate::common::{Service, ask, request};

fn stats_key(yaml: &str, entries: &[(&str, &str)]) -> String {
    let config = Config::from_sources([("test.yaml", yaml)]).unwrap();
    let domain = &config.domains()[0];
    let rule = domain
        .find(
            entries.iter().map(|(k, v)| (*k, *v)),
            &mut MatchBudget::new(usize::MAX),
        )
        .unwrap()
        .unwrap_or_else(|| panic!("{entries:?} matches a rule"));
    let values: Vec<&str> = entries.iter().map(|(_, v)| *v).collect();
    let mut key = domain.name.clone();
    for segment in rule.stats_segments(&values) {
        key.push('.');
        key.push_str(&segment);
    }
    if !rule.has_dynamic_stats() {
        assert_eq!(
            key, rule.path_key,
            "without value-dependent flags the key is the rule's path"
        );
    }
    key
}

#[test]
fn by_default_the_key_is_the_rules_path() {
    let yaml = r#"
domain: test-domain
descriptors:
  - key: key1
    value: value1
    descriptors:
      - key: subkey1
        rate_limit: {unit: second, requests_per_unit: 5}
  - key: wild
    value: foo*
    rate_limit: {unit: minute, requests_per_unit: 20}
"#;
    assert_eq!(
        stats_key(yaml, &[("key1", "value1"), ("subkey1", "x")]),
        "test-domain.key1_value1.subkey1"
    );
    assert_eq!(
        stats_key(yaml, &[("wild", "foo1")]),
        "test-domain.wild_foo*"
    );
}

#[test]
fn detailed_metric_uses_every_request_value() {
    let yaml = r#"
domain: nested
descriptors:
  - key: key-1
    detailed_metric: true
    rate_limit: {unit: minute, requests_per_unit: 100}
    descriptors:
      - key: key-2
        detailed_metric: true
        rate_limit: {unit: minute, requests_per_unit: 5}
  - key: key7
    detailed_metric: true
    rate_limit: {unit: minute, requests_per_unit: 70}
"#;
    assert_eq!(
        stats_key(yaml, &[("key-1", "value-1")]),
        "nested.key-1_value-1"
    );
    assert_eq!(
        stats_key(yaml, &[("key-1", "value-1"), ("key-2", "value-2")]),
        "nested.key-1_value-1.key-2_value-2"
    );
    assert_eq!(stats_key(yaml, &[("key7", "")]), "nested.key7_");
}

#[test]
fn value_to_metric_uses_the_value_at_the_flagged_levels() {
    let yaml = r#"
domain: domain
descriptors:
  - key: route
    value_to_metric: true
    descriptors:
      - key: http_method
        value_to_metric: true
        descriptors:
          - key: subject_id
            rate_limit: {unit: minute, requests_per_unit: 60}
  - key: k1
    descriptors:
      - key: k2
        value_to_metric: true
        descriptors:
          - key: k3
            rate_limit: {unit: minute, requests_per_unit: 60}
  - key: user
    value_to_metric: true
    descriptors:
      - key: action
        value: read*
        value_to_metric: true
        descriptors:
          - key: resource
            rate_limit: {unit: minute, requests_per_unit: 60}
"#;
    let draw = [
        ("route", "draw"),
        ("http_method", "GET"),
        ("subject_id", "123"),
    ];
    assert_eq!(
        stats_key(yaml, &draw),
        "domain.route_draw.http_method_GET.subject_id"
    );
    let middle = [("k1", "X"), ("k2", "Y"), ("k3", "Z")];
    assert_eq!(stats_key(yaml, &middle), "domain.k1.k2_Y.k3");
    let wildcard = [("user", "alice"), ("action", "readfile"), ("resource", "r")];
    assert_eq!(
        stats_key(yaml, &wildcard),
        "domain.user_alice.action_readfile.resource"
    );
    let empty = [("route", ""), ("http_method", "GET"), ("subject_id", "1")];
    assert_eq!(
        stats_key(yaml, &empty),
        "domain.route.http_method_GET.subject_id"
    );
}

#[test]
fn share_threshold_levels_show_their_pattern() {
    let yaml = r#"
domain: test-domain
descriptors:
  - key: files
    value: files/*
    share_threshold: true
    value_to_metric: true
    rate_limit: {unit: minute, requests_per_unit: 100}
  - key: service
    value: svc/*
    share_threshold: true
    descriptors:
      - key: endpoint
        detailed_metric: true
        rate_limit: {unit: minute, requests_per_unit: 100}
"#;
    assert_eq!(
        stats_key(yaml, &[("files", "files/a.pdf")]),
        "test-domain.files_files/*"
    );
    let detailed = [("service", "svc/user"), ("endpoint", "get")];
    assert_eq!(
        stats_key(yaml, &detailed),
        "test-domain.service_svc/*.endpoint_get"
    );
}

/// The value of each scraped series that starts with `series` (a family and its labels).
async fn scraped(service: &Service, series: &str) -> Vec<String> {
    let body = service.http().get("/metrics").await.body;
    body.lines()
        .filter(|line| line.starts_with(series))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn prometheus_labels_keep_two_levels_and_overrides_show_their_values() {
    let yaml = r#"
domain: deep
descriptors:
  - key: key3
    value: val3
    descriptors:
      - key: key4
        value: val4
        rate_limit: {unit: minute, requests_per_unit: 10}
        descriptors:
          - key: key5
            value: val5
            rate_limit: {unit: minute, requests_per_unit: 10}
"#;
    let service = Service::start(&[("deep.yaml", yaml)], &[]).await;
    let mut client = service.client().await;
    let three = [("key3", "val3"), ("key4", "val4"), ("key5", "val5")];
    ask(&mut client, request("deep", &[&three[..2]])).await;
    ask(&mut client, request("deep", &[&three, &three])).await;
    // Go's TestFlushCounterWithDifferentLabels: the levels below key2 add up in one series.
    assert_eq!(
        scraped(
            &service,
            "ratelimit_service_rate_limit_total_hits{domain=\"deep\""
        )
        .await,
        [
            r#"ratelimit_service_rate_limit_total_hits{domain="deep",key1="key3_val3",key2="key4_val4"} 3"#
        ]
    );

    let mut own = request(
        "deep",
        &[&[("user", "alice"), ("path", ""), ("tier", "gold")]],
    );
    own.descriptors[0].limit = Some(RateLimitOverride {
        requests_per_unit: 5,
        unit: 2, // MINUTE
    });
    ask(&mut client, own.clone()).await;
    ask(&mut client, own).await;
    assert_eq!(
        scraped(
            &service,
            "ratelimit_service_rate_limit_within_limit{domain=\"deep\",key1=\"user"
        )
        .await,
        [
            r#"ratelimit_service_rate_limit_within_limit{domain="deep",key1="user_alice",key2="path"} 2"#
        ]
    );
}
