//! The operator's endpoints: auth on `/api/*`, `/api/limits`, `/rlconfig`, `/health`,
//! `/healthcheck`, `/api/nodes`, shutdown, and errors for what no route takes.

use std::time::{Duration, Instant};

use serde_json::json;

use super::Backend;

pub async fn the_admin_token_guards_every_api_endpoint(backend: &Backend) {
    let service = backend.start(&["--admin-token", "s3cret"]).await;
    let http = service.http();
    for path in ["/api/counters", "/api/blocks", "/api/limits", "/api/nodes"] {
        let without = http.get(path).await;
        assert_eq!(
            (without.status, without.error_field()),
            (401, None),
            "{path}"
        );
        assert_eq!(
            http.get_with_token(path, "s3cre").await.status,
            401,
            "{path}"
        );
        assert_eq!(
            http.get_with_token(path, "s3cret").await.status,
            200,
            "{path}"
        );
    }
    for path in ["/health", "/healthcheck", "/rlconfig", "/metrics"] {
        assert_eq!(http.get(path).await.status, 200, "{path} stays open");
    }
}

pub async fn limits_show_the_defaults_the_config_status_and_every_rule(backend: &Backend) {
    let service = backend
        .start(&["--default-limit", "7", "--default-window-ms", "2000"])
        .await;
    let limits = service.http().get("/api/limits").await.json();
    assert_eq!(
        (&limits["default_limit"], &limits["default_window_ms"]),
        (&7.into(), &2000.into())
    );
    assert_eq!(limits["config"]["last_error"], json!(null));
    assert!(
        limits["config"]["loaded_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let domain = &limits["domains"][0];
    assert_eq!(domain["domain"], "api");
    assert_eq!(
        domain["rules"],
        json!([
            {"path": "api.user", "unit": "MINUTE", "requests_per_unit": 2, "unlimited": false,
             "shadow_mode": false, "quota_mode": false, "name": null},
            {"path": "api.plan_gold", "unit": "HOUR", "requests_per_unit": 1000, "unlimited": false,
             "shadow_mode": false, "quota_mode": false, "name": "gold_plan"},
            {"path": "api.internal", "unit": null, "requests_per_unit": null, "unlimited": true,
             "shadow_mode": false, "quota_mode": false, "name": null},
            {"path": "api.files_files/*", "unit": "HOUR", "requests_per_unit": 5, "unlimited": false,
             "shadow_mode": true, "quota_mode": false, "name": null},
        ])
    );
}

pub async fn rlconfig_lists_every_rule_in_the_go_format(backend: &Backend) {
    let service = backend.start(&[]).await;
    let reply = service.http().get("/rlconfig").await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        reply.body,
        "api.files_files/*: unit=HOUR requests_per_unit=5, shadow_mode: true, quota_mode: false\n\
         api.internal: unit=UNKNOWN requests_per_unit=0, shadow_mode: false, quota_mode: false\n\
         api.plan_gold: unit=HOUR requests_per_unit=1000, shadow_mode: false, quota_mode: false\n\
         api.user: unit=MINUTE requests_per_unit=2, shadow_mode: false, quota_mode: false\n"
    );
}

pub async fn health_reports_the_node_the_store_and_the_config(backend: &Backend) {
    let service = backend.start(&["--node-id", "node-a"]).await;
    let http = service.http();
    let health = http.get("/health").await;
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(
        (
            &health["status"],
            &health["node_id"],
            &health["store"]["reachable"]
        ),
        (&"healthy".into(), &"node-a".into(), &true.into())
    );
    assert_eq!(health["store"]["kind"], backend.kind);
    assert!(
        health["config"]["loaded_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(health["config"]["last_error"], json!(null));
    let healthcheck = http.get("/healthcheck").await;
    assert_eq!((healthcheck.status, healthcheck.body.as_str()), (200, "OK"));
}

pub async fn nodes_list_this_node(backend: &Backend) {
    let service = backend.start(&["--node-id", "node-a"]).await;
    let nodes = service.http().get("/api/nodes").await.json();
    let node = &nodes["nodes"][0];
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            &node["id"],
            &node["state"],
            &node["address"],
            &node["grpc_address"]
        ),
        (
            &"node-a".into(),
            &"Up".into(),
            &service.http_addr.to_string().into(),
            &service.grpc_addr.to_string().into()
        )
    );
    assert!(node["registered_at"].as_str().unwrap().ends_with('Z'));
}

pub async fn draining_turns_health_503_then_the_listener_closes(backend: &Backend) {
    let mut service = backend.start(&["--shutdown-delay", "1s"]).await;
    let http = service.http();
    assert_eq!(http.get("/health").await.status, 200);
    service.begin_stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let draining = loop {
        let health = http.get("/health").await;
        if health.status != 200 {
            break health;
        }
        assert!(Instant::now() < deadline, "health never turned to draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (draining.status, &draining.json()["status"]),
        (503, &"draining".into())
    );
    assert_eq!(http.get("/healthcheck").await.status, 500);
    let addr = service.http_addr;
    service.stopped().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the HTTP listener is closed after shutdown"
    );
}

pub async fn unknown_paths_and_methods_are_json_errors(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    let unknown = http.get("/nope").await;
    assert_eq!((unknown.status, unknown.error_field()), (404, None));
    assert_eq!(unknown.header("content-type"), Some("application/json"));
    for (method, path) in [
        (reqwest::Method::DELETE, "/health"),
        (reqwest::Method::POST, "/api/limits"),
        (reqwest::Method::PUT, "/check"),
        (reqwest::Method::GET, "/json"),
        (reqwest::Method::POST, "/healthcheck"),
    ] {
        let reply = http.send(method.clone(), path, None, None).await;
        assert_eq!(
            (reply.status, reply.error_field()),
            (405, None),
            "{method} {path}"
        );
    }
}

/// Polls `path` until `done` holds for its JSON, for at most 10 s (reloads take well under one).
async fn until_json(
    http: &crate::common::http::Http,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http.get(path).await.json();
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never changed: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn reloads_show_in_health_limits_and_rlconfig(backend: &Backend) {
    let service = backend.start(&[]).await;
    let http = service.http();
    // Answered once the first load is done: the edits below are reloads.
    assert_eq!(http.get("/health").await.status, 200);
    let file = service.path("api.yaml");
    crate::common::files::save_by_rename(
        &file,
        "domain: api\ndescriptors: [{key: user, rate_limit: {unit: fortnight}}]\n",
    );
    let health = until_json(&http, "/health", |h| !h["config"]["last_error"].is_null()).await;
    let failure = &health["config"]["last_error"];
    assert!(
        failure["errors"][0].as_str().unwrap().contains("fortnight"),
        "{failure}"
    );
    assert!(failure["since"].as_str().unwrap().ends_with('Z'));
    let limits = http.get("/api/limits").await.json();
    assert_eq!(&limits["config"]["last_error"], failure);
    assert_eq!(
        limits["domains"][0]["rules"].as_array().unwrap().len(),
        4,
        "the old limits stay"
    );

    crate::common::files::save_by_rename(
        &file,
        "domain: api\ndescriptors: [{key: user, rate_limit: {unit: hour, requests_per_unit: 9}}]\n",
    );
    until_json(&http, "/health", |h| h["config"]["last_error"].is_null()).await;
    assert_eq!(
        http.get("/rlconfig").await.body,
        "api.user: unit=HOUR requests_per_unit=9, shadow_mode: false, quota_mode: false\n"
    );
}
