//! `POST /json`: envoyproxy/ratelimit's JSON face of ShouldRateLimit.

use serde_json::json;

use super::Backend;

pub async fn json_answers_like_the_go_service(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let unknown = http
        .post(
            "/json",
            r#"{"domain": "nowhere", "descriptors": [{"entries": [{"key": "a", "value": "b"}]}]}"#,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (200, r#"{"overallCode":"OK","statuses":[{"code":"OK"}]}"#)
    );
    assert_eq!(unknown.header("content-type"), Some("application/json"));

    let request = r#"{"domain": "api", "descriptors": [{"entries": [{"key": "user", "value": "ann"}]}, {"entries": [{"key": "internal", "value": "x"}]}]}"#;
    let first = http.post("/json", request).await.json();
    assert_eq!(first["overallCode"], "OK");
    assert_eq!(
        first["statuses"][0]["currentLimit"],
        json!({"requestsPerUnit": 2, "unit": "MINUTE"})
    );
    assert_eq!(first["statuses"][0]["limitRemaining"], 1);
    let reset = first["statuses"][0]["durationUntilReset"].as_str().unwrap();
    let seconds: u64 = reset.strip_suffix('s').unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{reset}");
    assert_eq!(
        first["statuses"][1],
        json!({"code": "OK", "limitRemaining": 4294967295u32})
    );

    http.post("/json", request).await;
    let over = http.post("/json", request).await;
    assert_eq!(over.status, 429);
    let over = over.json();
    assert_eq!(over["overallCode"], "OVER_LIMIT");
    assert_eq!(over["statuses"][0]["code"], "OVER_LIMIT");
    assert_eq!(
        over["statuses"][0].get("limitRemaining"),
        None,
        "0 is left out"
    );
}

pub async fn json_reads_camel_case_and_snake_case(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    // A request's own limit of 3 per hour, hit 2 at a time: the second call is over.
    let camel = r#"{"domain": "api", "hitsAddend": 2, "descriptors": [{"entries": [{"key": "user", "value": "cam"}], "limit": {"requestsPerUnit": 3, "unit": "HOUR"}}]}"#;
    let snake = r#"{"domain": "api", "hits_addend": "2", "descriptors": [{"entries": [{"key": "user", "value": "cam"}], "limit": {"requests_per_unit": 3, "unit": 3}}]}"#;
    let first = http.post("/json", camel).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["statuses"][0]["limitRemaining"], 1);
    assert_eq!(first.json()["statuses"][0]["currentLimit"]["unit"], "HOUR");
    let second = http.post("/json", snake).await;
    assert_eq!(
        second.status, 429,
        "both spellings count on one counter: {}",
        second.body
    );
    // A per-descriptor hits_addend of 0 only looks.
    let look = r#"{"domain": "api", "descriptors": [{"entries": [{"key": "user", "value": "cam"}], "limit": {"requestsPerUnit": 3, "unit": "HOUR"}, "hitsAddend": 0}]}"#;
    assert_eq!(http.post("/json", look).await.status, 429);
}

pub async fn json_refusals_are_400_naming_the_field(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let cases = [
        ("", None),
        ("}", None),
        ("[]", None),
        (
            r#"{"descriptors": [{"entries": [{"key": "a", "value": "b"}]}]}"#,
            Some("domain"),
        ),
        (r#"{"domain": "api"}"#, Some("descriptors")),
        (
            r#"{"domain": "api", "descriptors": [{}]}"#,
            Some("descriptors[0].entries"),
        ),
        (
            r#"{"domain": "api", "descriptors": [{"entries": [{"value": "b"}]}]}"#,
            Some("descriptors[0].entries[0].key"),
        ),
        (r#"{"domain": "api", "descriptor": []}"#, Some("descriptor")),
        (
            r#"{"domain": "api", "descriptors": [{"entries": [{"key": "a", "value": "b"}], "limit": {"unit": "FORTNIGHT"}}]}"#,
            Some("descriptors[0].limit.unit"),
        ),
        (
            r#"{"domain": "api", "descriptors": [{"entries": [{"key": "a", "value": "b"}], "limit": {"unit": 99}}]}"#,
            Some("descriptors[0].limit.unit"),
        ),
    ];
    for (body, field) in cases {
        let reply = http.post("/json", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.error_field().as_deref(), field, "{body}");
    }
}
