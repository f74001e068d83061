//! Matching over gRPC: which rule (if any) answers a descriptor, following envoyproxy/ratelimit's
//! own test cases (exact > first wildcard in config order > key only; depth must match; no
//! backtracking; whitelist nodes; `replaces`).

use crate::common;
use crate::common::{Service, ask, limit_of, request};

const BASIC: &str = r#"
domain: test-domain
descriptors:
  - key: key1
    value: value1
    descriptors:
      - key: subkey1
        rate_limit: {unit: second, requests_per_unit: 5}
      - key: subkey1
        value: subvalue1
        rate_limit: {unit: second, requests_per_unit: 10}
  - key: key2
    rate_limit: {unit: minute, requests_per_unit: 20}
  - key: key2
    value: value2
    rate_limit: {unit: minute, requests_per_unit: 30}
  - key: key2
    value: value3
  - key: key3
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: key4
    rate_limit: {unit: day, requests_per_unit: 1, name: key4_rate_limit}
  - key: key5
    value: value5
    rate_limit: {unit: day, requests_per_unit: 15}
    descriptors:
      - key: subkey5
        value: subvalue5
        rate_limit: {unit: day, requests_per_unit: 25}
  - key: key6
    rate_limit: {unlimited: true}
  - key: key7
    rate_limit: {unit: minute, requests_per_unit: 70}
    detailed_metric: true
"#;

const WILDCARD: &str = r#"
domain: wildcard
descriptors:
  - key: wild
    value: foo*
    rate_limit: {unit: minute, requests_per_unit: 20}
  - key: noWild
    value: foo
    rate_limit: {unit: minute, requests_per_unit: 21}
  - key: noVal
    rate_limit: {unit: minute, requests_per_unit: 22}
  - key: midWild
    value: bar*b
    rate_limit: {unit: minute, requests_per_unit: 23}
  - key: multiWild
    value: foo*bar*baz
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: nestedWild
    value: val1
    descriptors:
      - key: wild
        value: goo*
        rate_limit: {unit: minute, requests_per_unit: 24}
  - key: host
    value: "*.example.com"
    rate_limit: {unit: minute, requests_per_unit: 25}
"#;

const PRECEDENCE: &str = r#"
domain: precedence
descriptors:
  - key: path
    rate_limit: {unit: hour, requests_per_unit: 1}
  - key: path
    value: /api/*
    rate_limit: {unit: hour, requests_per_unit: 2}
  - key: path
    value: /api/v1/*
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: path
    value: /api/health
    rate_limit: {unit: hour, requests_per_unit: 4}
  - key: user
    value: alice
    descriptors:
      - key: path
        rate_limit: {unit: hour, requests_per_unit: 5}
  - key: user
    descriptors:
      - key: method
        rate_limit: {unit: hour, requests_per_unit: 6}
  - key: tenant
    rate_limit: {unit: hour, requests_per_unit: 7}
    descriptors:
      - key: plan
        rate_limit: {unit: hour, requests_per_unit: 8}
"#;

type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<(u32, &'static str)>,
);

async fn expect_limits(cases: &[Case]) {
    let service = Service::start(
        &[
            ("basic.yaml", BASIC),
            ("wildcard.yaml", WILDCARD),
            ("precedence.yaml", PRECEDENCE),
        ],
        &[],
    )
    .await;
    let mut client = service.client().await;
    for (domain, entries, expected) in cases {
        let response = ask(&mut client, request(domain, &[entries])).await;
        assert_eq!(response.statuses.len(), 1);
        assert_eq!(
            limit_of(&response.statuses[0]),
            *expected,
            "{domain} {entries:?}"
        );
    }
}

#[tokio::test]
async fn the_go_services_basic_config_cases() {
    expect_limits(&[
        ("foo_domain", &[("key1", "value1"), ("subkey1", "x")], None),
        ("test-domain", &[("key1", "something")], None),
        ("test-domain", &[("key1", "value1")], None),
        (
            "test-domain",
            &[("key2", "value2"), ("subkey", "subvalue")],
            None,
        ),
        (
            "test-domain",
            &[("key5", "value5"), ("subkey5", "subvalue")],
            None,
        ),
        (
            "test-domain",
            &[("key1", "value1"), ("subkey1", "something")],
            Some((5, "SECOND")),
        ),
        (
            "test-domain",
            &[("key1", "value1"), ("subkey1", "subvalue1")],
            Some((10, "SECOND")),
        ),
        (
            "test-domain",
            &[("key2", "something")],
            Some((20, "MINUTE")),
        ),
        ("test-domain", &[("key2", "value2")], Some((30, "MINUTE"))),
        ("test-domain", &[("key2", "value3")], None),
        ("test-domain", &[("key3", "foo")], Some((1, "HOUR"))),
        ("test-domain", &[("key4", "foo")], Some((1, "DAY"))),
        ("test-domain", &[("key5", "value5")], Some((15, "DAY"))),
        (
            "test-domain",
            &[("key5", "value5"), ("subkey5", "subvalue5")],
            Some((25, "DAY")),
        ),
        (
            "test-domain",
            &[("key7", "unspecified_value")],
            Some((70, "MINUTE")),
        ),
    ])
    .await;
}

#[tokio::test]
async fn wildcards_match_anywhere_in_the_value() {
    expect_limits(&[
        ("wildcard", &[("noVal", "foo1")], Some((22, "MINUTE"))),
        ("wildcard", &[("noVal", "foo2")], Some((22, "MINUTE"))),
        ("wildcard", &[("wild", "foo1")], Some((20, "MINUTE"))),
        ("wildcard", &[("wild", "foo")], Some((20, "MINUTE"))),
        ("wildcard", &[("wild", "bar")], None),
        ("wildcard", &[("noWild", "foo1")], None),
        ("wildcard", &[("noWild", "foo")], Some((21, "MINUTE"))),
        (
            "wildcard",
            &[("nestedWild", "val1"), ("wild", "goo2")],
            Some((24, "MINUTE")),
        ),
        (
            "wildcard",
            &[("nestedWild", "val1"), ("wild", "foo2")],
            None,
        ),
        ("wildcard", &[("midWild", "barab")], Some((23, "MINUTE"))),
        ("wildcard", &[("midWild", "bar123b")], Some((23, "MINUTE"))),
        ("wildcard", &[("midWild", "barb")], Some((23, "MINUTE"))),
        ("wildcard", &[("midWild", "bara")], None),
        ("wildcard", &[("midWild", "xbarb")], None),
        (
            "wildcard",
            &[("multiWild", "foo123bar456baz")],
            Some((10, "MINUTE")),
        ),
        (
            "wildcard",
            &[("multiWild", "foobarbaz")],
            Some((10, "MINUTE")),
        ),
        ("wildcard", &[("multiWild", "foo123baz")], None),
        ("wildcard", &[("multiWild", "bar456baz")], None),
        (
            "wildcard",
            &[("host", "api.example.com")],
            Some((25, "MINUTE")),
        ),
        ("wildcard", &[("host", "example.org")], None),
    ])
    .await;
}

#[tokio::test]
async fn exact_beats_the_first_matching_wildcard_which_beats_key_only() {
    expect_limits(&[
        ("precedence", &[("path", "/api/health")], Some((4, "HOUR"))),
        (
            "precedence",
            &[("path", "/api/v1/users")],
            Some((2, "HOUR")),
        ),
        ("precedence", &[("path", "/api/v2")], Some((2, "HOUR"))),
        ("precedence", &[("path", "/other")], Some((1, "HOUR"))),
        ("precedence", &[("path", "")], Some((1, "HOUR"))),
    ])
    .await;
}

#[tokio::test]
async fn depth_must_match_and_a_matched_level_is_never_revisited() {
    expect_limits(&[
        // alice matched the value rule, whose children have no `method`: the key-only `user`
        // rule is not tried instead.
        ("precedence", &[("user", "alice"), ("method", "GET")], None),
        (
            "precedence",
            &[("user", "bob"), ("method", "GET")],
            Some((6, "HOUR")),
        ),
        (
            "precedence",
            &[("user", "alice"), ("path", "/x")],
            Some((5, "HOUR")),
        ),
        // A rule matches only a request exactly as deep as the rule.
        ("precedence", &[("user", "bob")], None),
        ("test-domain", &[("key3", "foo"), ("extra", "x")], None),
        // A node may carry a limit and children; the request's depth picks which applies.
        ("precedence", &[("tenant", "t1")], Some((7, "HOUR"))),
        (
            "precedence",
            &[("tenant", "t1"), ("plan", "gold")],
            Some((8, "HOUR")),
        ),
        (
            "precedence",
            &[("tenant", "t1"), ("plan", "gold"), ("extra", "x")],
            None,
        ),
    ])
    .await;
}

#[tokio::test]
async fn unlimited_rules_answer_ok_with_the_largest_remaining() {
    let service = Service::start(&[("basic.yaml", BASIC)], &[]).await;
    let mut client = service.client().await;
    for _ in 0..3 {
        let response = ask(&mut client, request("test-domain", &[&[("key6", "foo")]])).await;
        let status = &response.statuses[0];
        assert_eq!(status.limit_remaining, u32::MAX);
        assert_eq!(status.current_limit, None);
        assert_eq!(status.duration_until_reset, None);
        assert_eq!(common::code(&response), common::Code::Ok);
    }
}

const REPLACES: &str = r#"
domain: tiers
descriptors:
  - key: tier
    value: basic
    rate_limit: {unit: hour, requests_per_unit: 2, name: basic}
  - key: tier
    value: premium
    rate_limit:
      unit: hour
      requests_per_unit: 4
      name: premium
      replaces:
        - name: basic
"#;

#[tokio::test]
async fn replaces_drops_the_named_rule_for_that_request_only() {
    let service = Service::start(&[("tiers.yaml", REPLACES)], &[]).await;
    let mut client = service.client().await;
    let both = || request("tiers", &[&[("tier", "basic")], &[("tier", "premium")]]);
    for expected_remaining in [3, 2, 1, 0] {
        let response = ask(&mut client, both()).await;
        assert_eq!(
            limit_of(&response.statuses[0]),
            None,
            "the replaced rule answers like no rule"
        );
        assert_eq!(limit_of(&response.statuses[1]), Some((4, "HOUR")));
        assert_eq!(response.statuses[1].limit_remaining, expected_remaining);
        assert_eq!(common::code(&response), common::Code::Ok);
    }
    assert_eq!(
        common::code(&ask(&mut client, both()).await),
        common::Code::OverLimit
    );
    // The replaced rule was never counted by those requests.
    let alone = ask(&mut client, request("tiers", &[&[("tier", "basic")]])).await;
    assert_eq!(limit_of(&alone.statuses[0]), Some((2, "HOUR")));
    assert_eq!(alone.statuses[0].limit_remaining, 1);
    assert_eq!(
        alone.statuses[0].current_limit.as_ref().unwrap().name,
        "basic"
    );
}

const REPLACES_UNLIMITED: &str = r#"
domain: tiers
descriptors:
  - key: tier
    value: internal
    rate_limit: {unlimited: true, name: internal}
  - key: tier
    value: audited
    rate_limit: {unit: hour, requests_per_unit: 1, replaces: [{name: internal}]}
"#;

/// As in the Go service, `replaces` drops limited rules only: a named unlimited rule stays
/// unlimited, and keeps its name in `/api/limits`.
#[tokio::test]
async fn a_named_unlimited_rule_stays_unlimited_when_replaced_and_keeps_its_name() {
    let service = Service::start(&[("tiers.yaml", REPLACES_UNLIMITED)], &[]).await;
    let mut client = service.client().await;
    let both = request("tiers", &[&[("tier", "internal")], &[("tier", "audited")]]);
    let replaced = ask(&mut client, both).await;
    assert_eq!(limit_of(&replaced.statuses[0]), None);
    assert_eq!(replaced.statuses[0].limit_remaining, u32::MAX);
    assert_eq!(limit_of(&replaced.statuses[1]), Some((1, "HOUR")));

    let limits = service.http().get("/api/limits").await.json();
    let rules = &limits["domains"][0]["rules"];
    let internal = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["unlimited"] == true)
        .expect("the unlimited rule is listed");
    assert_eq!(internal["name"], "internal", "{limits}");
}
