//! `POST /check`: sliding-window decisions, their headers, their defaults, and refusals.

use super::Backend;

pub async fn three_checks_with_limit_two_answer_200_200_429(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let body = r#"{"key": "user:42", "limit": 2, "window_ms": 60000}"#;
    let first = http.post("/check", body).await;
    let second = http.post("/check", body).await;
    let third = http.post("/check", body).await;
    assert_eq!((first.status, second.status, third.status), (200, 200, 429));
    for (reply, remaining) in [(&first, "1"), (&second, "0"), (&third, "0")] {
        assert_eq!(reply.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
    }
    assert_eq!(
        first.json(),
        serde_json::json!({"allowed": true, "current_count": 1, "remaining": 1, "retry_after_seconds": 0})
    );
    assert_eq!(first.header("retry-after"), None);
    assert_eq!(first.header("x-ratelimit-reset"), None);
    let denied = third.json();
    assert_eq!(
        (
            &denied["allowed"],
            &denied["current_count"],
            &denied["remaining"]
        ),
        (&false.into(), &2.into(), &0.into())
    );
    let wait = denied["retry_after_seconds"].as_u64().unwrap();
    // At most the window plus one bucket (3 s), at least a second.
    assert!((1..=63).contains(&wait), "{wait}");
    assert_eq!(third.header("retry-after"), Some(wait.to_string().as_str()));
    assert_eq!(
        third.header("x-ratelimit-reset"),
        Some(wait.to_string().as_str())
    );
}

pub async fn defaults_come_from_the_flags(backend: &Backend) {
    let service = backend
        .start(&["--default-limit", "1", "--default-window-ms", "5000"])
        .await;
    let http = service.http();
    let allowed = http.post("/check", r#"{"key": "defaulted"}"#).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-ratelimit-limit"), Some("1"));
    let denied = http
        .post("/check", r#"{"key": "defaulted", "limit": null}"#)
        .await;
    assert_eq!(denied.status, 429);
    let wait = denied.json()["retry_after_seconds"].as_u64().unwrap();
    assert!((1..=6).contains(&wait), "a 5 s window waits {wait} s");
}

pub async fn each_key_limit_and_window_counts_apart(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let check = |key: &str, limit: u64, window_ms: u64| {
        format!(r#"{{"key": "{key}", "limit": {limit}, "window_ms": {window_ms}}}"#)
    };
    assert_eq!(
        http.post("/check", &check("k", 1, 60_000)).await.status,
        200
    );
    // Another limit, another window or another key is another counter.
    let other_limit = http.post("/check", &check("k", 2, 60_000)).await;
    assert_eq!(
        (other_limit.status, &other_limit.json()["current_count"]),
        (200, &1.into())
    );
    assert_eq!(http.post("/check", &check("k", 1, 2_000)).await.status, 200);
    assert_eq!(
        http.post("/check", &check("k2", 1, 60_000)).await.status,
        200
    );
    // Keys that a naive join would run together stay apart.
    assert_eq!(
        http.post("/check", &check("k|1", 1, 60_000)).await.status,
        200
    );
    assert_eq!(
        http.post("/check", &check("k", 1, 60_000)).await.status,
        429
    );
}

pub async fn bad_checks_are_refused_naming_the_field(backend: &Backend) {
    let service = backend.start(&["--max-value-bytes", "16"]).await;
    let http = service.http();
    let cases = [
        ("", 400, None),
        ("{\"key\": ", 400, None),
        ("\"key\"", 400, None),
        ("{}", 400, Some("key")),
        (r#"{"key": null}"#, 400, Some("key")),
        (r#"{"key": ["a"]}"#, 400, Some("key")),
        (r#"{"key": ""}"#, 422, Some("key")),
        (r#"{"key": "seventeen-bytes!!"}"#, 422, Some("key")),
        (r#"{"key": "k", "limits": 5}"#, 400, Some("limits")),
        (r#"{"key": "k", "limit": 0}"#, 422, Some("limit")),
        (r#"{"key": "k", "limit": -1}"#, 422, Some("limit")),
        (r#"{"key": "k", "limit": 1000000001}"#, 422, Some("limit")),
        (r#"{"key": "k", "limit": 2.5}"#, 400, Some("limit")),
        (r#"{"key": "k", "window_ms": 0}"#, 422, Some("window_ms")),
        (
            r#"{"key": "k", "window_ms": 31536000001}"#,
            422,
            Some("window_ms"),
        ),
        (
            r#"{"key": "k", "window_ms": "60000"}"#,
            400,
            Some("window_ms"),
        ),
    ];
    for (body, status, field) in cases {
        let reply = http.post("/check", body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.error_field().as_deref(), field, "{body}");
    }
    let get = http.get("/check").await;
    assert_eq!(get.status, 405);
    assert_eq!(get.error_field(), None);
}

pub async fn bodies_over_the_limit_are_refused_unread(backend: &Backend) {
    let service = backend.start(&["--max-message-bytes", "1024"]).await;
    let http = service.http();
    let padding = " ".repeat(2_000);
    let reply = http
        .post("/check", &format!(r#"{{"key": "big"{padding}}}"#))
        .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.json()["error"].as_str().unwrap().contains("1024"));
    let json = http.post("/json", &format!("{{{padding}}}")).await;
    assert_eq!(json.status, 413);
    // Within the limit, the same service answers.
    assert_eq!(http.post("/check", r#"{"key": "big"}"#).await.status, 200);
}
