//! Hot reload over gRPC, with real files, renames and symlinks: every way operators change
//! limits takes effect within a second, and a bad edit never replaces good limits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::common::files::{ConfigMap, inode, save_by_rename};
use crate::common::{
    Client, Code, Service, ServingStatus, ask, code, config_dir, eventually, grpc_health, limit_of,
    request,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::UInt64Value;

/// How long an edit may take to apply, polled against (never a measured speed).
const RELOAD_DEADLINE: Duration = Duration::from_secs(1);

/// How often a test looks again while it waits.
const POLL: Duration = Duration::from_millis(25);

/// Domain `domain` with one minute limit per (key, requests_per_unit).
fn limits(domain: &str, rules: &[(&str, u32)]) -> String {
    let mut yaml = format!("domain: {domain}\ndescriptors:\n");
    for (key, requests) in rules {
        yaml.push_str(&format!(
            "  - key: {key}\n    rate_limit: {{unit: minute, requests_per_unit: {requests}}}\n"
        ));
    }
    yaml
}

/// A request that reads `(key, "v")`'s counter in `domain` without adding to it.
fn peek(domain: &str, key: &str) -> RateLimitRequest {
    let mut request = request(domain, &[&[(key, "v")]]);
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
    request
}

/// The limit in force for `(key, "v")` in `domain`, if any.
async fn limit(client: &mut Client, domain: &str, key: &str) -> Option<u32> {
    let response = ask(client, peek(domain, key)).await;
    limit_of(&response.statuses[0]).map(|(requests, _)| requests)
}

/// The remaining count for `(key, "v")` in `domain`.
async fn remaining(client: &mut Client, domain: &str, key: &str) -> u32 {
    ask(client, peek(domain, key)).await.statuses[0].limit_remaining
}

/// Consumes one hit on `(key, "v")` and returns the overall code.
async fn hit(client: &mut Client, domain: &str, key: &str) -> Code {
    code(&ask(client, request(domain, &[&[(key, "v")]])).await)
}

/// Waits until a service started without a config has loaded one (calls fail until then).
async fn until_configured(service: &Service) {
    eventually(RELOAD_DEADLINE, "the first good config is loaded", || {
        let loaded = service.health.config_problem().is_none();
        async move { loaded }
    })
    .await;
}

/// The gRPC health names the Go service and Envoy ask for.
const HEALTH_NAMES: [&str; 3] = [
    "",
    "ratelimit",
    "envoy.service.ratelimit.v3.RateLimitService",
];

/// Polls gRPC health until every name answers `want`, failing after `RELOAD_DEADLINE`.
async fn until_grpc_health(service: &Service, want: ServingStatus) {
    for name in HEALTH_NAMES {
        eventually(
            RELOAD_DEADLINE,
            &format!("gRPC health {name:?} is {want:?}"),
            || async move { grpc_health(service.grpc_addr, name).await == want },
        )
        .await;
    }
}

/// Polls the limit of `(key, "v")` until it is `want`, failing after `RELOAD_DEADLINE`.
async fn until_limit(client: &mut Client, domain: &str, key: &str, want: Option<u32>) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let got = limit(client, domain, key).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{domain}/{key}: limit {got:?}, still not {want:?} after {RELOAD_DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls until `done` holds, failing after `RELOAD_DEADLINE`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {RELOAD_DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn an_in_place_edit_applies_within_a_second_and_keeps_the_count() {
    let service = Service::start(&[("edge.yaml", &limits("edge", &[("user", 2)]))], &[]).await;
    let mut client = service.client().await;
    assert_eq!(hit(&mut client, "edge", "user").await, Code::Ok);
    assert_eq!(hit(&mut client, "edge", "user").await, Code::Ok);
    assert_eq!(hit(&mut client, "edge", "user").await, Code::OverLimit);

    let path = service.path("edge.yaml");
    let before = inode(&path);
    std::fs::write(&path, limits("edge", &[("user", 5)])).unwrap();
    assert_eq!(inode(&path), before, "the edit was made in place");
    until_limit(&mut client, "edge", "user", Some(5)).await;

    // Same rule path and unit: the three hits already counted still count against the new limit.
    assert_eq!(remaining(&mut client, "edge", "user").await, 2);
    assert_eq!(service.metrics.config_load_error.get(), 0);
}

#[tokio::test]
async fn a_save_by_rename_applies_within_a_second() {
    let service = Service::start(&[("edge.yaml", &limits("edge", &[("user", 2)]))], &[]).await;
    let mut client = service.client().await;
    let path = service.path("edge.yaml");
    let before = inode(&path);

    save_by_rename(&path, &limits("edge", &[("user", 5)]));
    assert_ne!(inode(&path), before, "the edit replaced the file");
    until_limit(&mut client, "edge", "user", Some(5)).await;

    // The watch outlives the replaced file: a second save applies too.
    save_by_rename(&path, &limits("edge", &[("user", 6)]));
    until_limit(&mut client, "edge", "user", Some(6)).await;
}

#[tokio::test]
async fn a_config_file_named_by_config_is_reloaded_when_saved_by_rename() {
    let dir = config_dir(&[("edge.yaml", &limits("edge", &[("user", 2)]))]);
    let path = dir.path().join("edge.yaml");
    let service = Service::start_in(dir, &path, &[]).await;
    let mut client = service.client().await;
    assert_eq!(limit(&mut client, "edge", "user").await, Some(2));

    save_by_rename(&path, &limits("edge", &[("user", 5)]));
    until_limit(&mut client, "edge", "user", Some(5)).await;
    std::fs::write(&path, limits("edge", &[("user", 7)])).unwrap();
    until_limit(&mut client, "edge", "user", Some(7)).await;
}

#[tokio::test]
async fn a_configmap_symlink_swap_applies_within_a_second_and_loads_each_domain_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut map = ConfigMap::create(
        dir.path(),
        &[("edge.yaml", &limits("edge", &[("user", 2)]))],
    );
    let root = dir.path().to_path_buf();
    let service = Service::start_in(dir, &root, &[]).await;
    let mut client = service.client().await;
    assert_eq!(limit(&mut client, "edge", "user").await, Some(2));

    map.update(&[("edge.yaml", &limits("edge", &[("user", 5)]))]);
    until_limit(&mut client, "edge", "user", Some(5)).await;
    // The watch survives the swap: a second update applies too.
    map.update(&[("edge.yaml", &limits("edge", &[("user", 7)]))]);
    until_limit(&mut client, "edge", "user", Some(7)).await;

    // `..data` and `..<timestamp>` are never read: no duplicate domain, ever.
    assert_eq!(service.metrics.config_load_error.get(), 0);
    assert_eq!(service.health.config().last_error, None);
}

#[tokio::test]
async fn deleting_a_file_removes_its_domain_and_adding_one_adds_it() {
    let service = Service::start(
        &[
            ("edge.yaml", &limits("edge", &[("user", 2)])),
            ("api.yaml", &limits("api", &[("user", 3)])),
        ],
        &[],
    )
    .await;
    let mut client = service.client().await;
    assert_eq!(limit(&mut client, "api", "user").await, Some(3));

    std::fs::remove_file(service.path("api.yaml")).unwrap();
    until_limit(&mut client, "api", "user", None).await;
    assert_eq!(limit(&mut client, "edge", "user").await, Some(2));

    std::fs::write(service.path("new.yaml"), limits("new", &[("user", 4)])).unwrap();
    until_limit(&mut client, "new", "user", Some(4)).await;
    assert_eq!(service.metrics.config_load_error.get(), 0);
}

fn invalid_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    fixtures.sort();
    fixtures
}

#[tokio::test]
async fn every_invalid_edit_keeps_the_previous_limits_and_reports_the_error_once() {
    let good = limits("edge", &[("user", 2)]);
    let service = Service::start(&[("edge.yaml", &good)], &[]).await;
    let mut client = service.client().await;
    let path = service.path("edge.yaml");
    let shown = path.display().to_string();
    let fixtures = invalid_fixtures();
    assert!(fixtures.len() >= 10, "{fixtures:?}");

    for (errors_before, fixture) in fixtures.iter().enumerate() {
        let errors_before = errors_before as u64;
        let name = fixture.file_name().unwrap().to_string_lossy();
        let written_at = SystemTime::now();
        // Saved by rename, so that no reload can catch a half-written file and count a
        // second error (an in-place write can, when the writer stalls between its calls).
        save_by_rename(&path, &std::fs::read_to_string(fixture).unwrap());
        until(&format!("{name}: the error shows in health"), || {
            service.health.config().last_error.is_some()
        })
        .await;

        let status = service.health.config();
        let failure = status.last_error.unwrap();
        assert!(
            failure.errors.iter().all(|error| error.starts_with(&shown)),
            "{name}: {:?}",
            failure.errors
        );
        assert!(failure.since >= written_at, "{name}");
        assert!(status.loaded_at.is_some_and(|at| at < written_at), "{name}");
        assert_eq!(limit(&mut client, "edge", "user").await, Some(2), "{name}");
        assert_eq!(
            limit(&mut client, "test-domain", "key1").await,
            None,
            "{name}"
        );

        save_by_rename(&path, &good);
        until(&format!("{name}: the good file clears the error"), || {
            service.health.config().last_error.is_none()
        })
        .await;
        assert_eq!(
            service.metrics.config_load_error.get(),
            errors_before + 1,
            "{name} counted as exactly one failed load"
        );
    }
}

#[tokio::test]
async fn failures_in_a_row_keep_the_time_of_the_first() {
    let service = Service::start(&[("edge.yaml", &limits("edge", &[("user", 2)]))], &[]).await;
    // Connected: the first load is done, so the edits below are reloads.
    let _client = service.client().await;
    let path = service.path("edge.yaml");
    let bad_unit = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight}\n";
    // Saved by rename: an in-place write can be read half-written, a failure of its own.
    save_by_rename(&path, bad_unit);
    until("the first failure", || {
        service.metrics.config_load_error.get() == 1
    })
    .await;
    let first = service.health.config().last_error.unwrap();
    assert!(
        first.errors[0].contains("invalid rate limit unit 'fortnight' at line 4"),
        "{first:?}"
    );

    save_by_rename(&path, "domain: edge\ndescriptors: [oops\n");
    until("the second failure", || {
        service.metrics.config_load_error.get() == 2
    })
    .await;
    let second = service.health.config().last_error.unwrap();
    assert_ne!(second.errors, first.errors);
    assert_eq!(second.since, first.since);
}

#[tokio::test]
async fn fifty_rapid_edits_end_with_the_last_in_force() {
    let service = Service::start(&[("edge.yaml", &limits("edge", &[("user", 1)]))], &[]).await;
    let mut client = service.client().await;
    let path = service.path("edge.yaml");
    for requests in 2..=51 {
        let text = limits("edge", &[("user", requests)]);
        if requests % 2 == 0 {
            std::fs::write(&path, text).unwrap();
        } else {
            save_by_rename(&path, &text);
        }
    }
    until_limit(&mut client, "edge", "user", Some(51)).await;
    assert_eq!(service.health.config().last_error, None);
    // Coalesced: far fewer loads than edits (the first load at startup is one of them).
    let loads = service.metrics.config_load_success.get() + service.metrics.config_load_error.get();
    assert!(loads < 50, "{loads} loads for 50 edits");
}

#[tokio::test]
async fn a_counter_of_an_unchanged_rule_keeps_its_count_across_a_reload() {
    let service = Service::start(
        &[(
            "edge.yaml",
            &limits("edge", &[("steady", 10), ("edited", 3)]),
        )],
        &[],
    )
    .await;
    let mut client = service.client().await;
    for _ in 0..7 {
        assert_eq!(hit(&mut client, "edge", "steady").await, Code::Ok);
    }
    assert_eq!(remaining(&mut client, "edge", "steady").await, 3);

    std::fs::write(
        service.path("edge.yaml"),
        limits("edge", &[("steady", 10), ("edited", 4)]),
    )
    .unwrap();
    until_limit(&mut client, "edge", "edited", Some(4)).await;
    assert_eq!(service.metrics.config_load_success.get(), 2);
    assert_eq!(
        remaining(&mut client, "edge", "steady").await,
        3,
        "still 7 of 10"
    );
}

#[tokio::test]
async fn allow_empty_config_fails_every_call_until_the_first_good_edit() {
    let bad = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight}\n";
    let service = Service::start(&[("edge.yaml", bad)], &["--allow-empty-config"]).await;
    let mut client = service.client().await;
    for domain in ["edge", "unknown"] {
        let refused = client
            .should_rate_limit(request(domain, &[&[("user", "v")]]))
            .await
            .expect_err("no config: the call fails, so that failure_mode_deny decides");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert_eq!(refused.message(), "no rate limit configuration loaded");
    }
    assert_eq!(
        service.health.config_problem().as_deref(),
        Some("no rate limit configuration loaded")
    );
    let health = service.http().get("/health").await;
    assert_eq!(
        health.json()["config_problem"],
        "no rate limit configuration loaded"
    );
    assert_eq!(service.http().get("/healthcheck").await.status, 500);
    for name in HEALTH_NAMES {
        assert_eq!(
            grpc_health(service.grpc_addr, name).await,
            ServingStatus::NotServing,
            "{name:?}"
        );
    }
    assert_eq!(service.metrics.config_load_error.get(), 1);
    let failure = service
        .health
        .config()
        .last_error
        .expect("the error is in health");
    assert!(
        failure.errors[0].contains("edge.yaml: invalid rate limit unit"),
        "{failure:?}"
    );

    std::fs::write(service.path("edge.yaml"), limits("edge", &[("user", 2)])).unwrap();
    until_configured(&service).await;
    until_limit(&mut client, "edge", "user", Some(2)).await;
    assert_eq!(service.health.config().last_error, None);
    assert_eq!(service.metrics.config_load_success.get(), 1);
    assert_eq!(service.http().get("/healthcheck").await.status, 200);
    until_grpc_health(&service, ServingStatus::Serving).await;
}

#[tokio::test]
async fn healthy_only_with_config_is_not_serving_while_no_domain_is_loaded() {
    let service = Service::start(&[], &["--healthy-only-with-config"]).await;
    let _client = service.client().await;
    assert_eq!(
        service.metrics.config_load_success.get(),
        1,
        "an empty tree loads"
    );
    for name in HEALTH_NAMES {
        assert_eq!(
            grpc_health(service.grpc_addr, name).await,
            ServingStatus::NotServing,
            "{name:?}"
        );
    }
    let healthcheck = service.http().get("/healthcheck").await;
    assert_eq!(healthcheck.status, 500);
    assert!(
        healthcheck.body.contains("at least one domain"),
        "{}",
        healthcheck.body
    );

    std::fs::write(service.path("edge.yaml"), limits("edge", &[("user", 2)])).unwrap();
    until_grpc_health(&service, ServingStatus::Serving).await;
    assert_eq!(service.http().get("/healthcheck").await.status, 200);

    std::fs::remove_file(service.path("edge.yaml")).unwrap();
    until_grpc_health(&service, ServingStatus::NotServing).await;
    assert_eq!(service.http().get("/healthcheck").await.status, 500);
}

#[tokio::test]
async fn without_healthy_only_with_config_an_empty_tree_is_serving() {
    let service = Service::start(&[], &[]).await;
    let _client = service.client().await;
    for name in HEALTH_NAMES {
        assert_eq!(
            grpc_health(service.grpc_addr, name).await,
            ServingStatus::Serving,
            "{name:?}"
        );
    }
    assert_eq!(service.http().get("/healthcheck").await.status, 200);
}

#[tokio::test]
async fn without_allow_empty_config_an_invalid_first_load_stops_the_service() {
    let bad = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight}\n";
    let service = Service::start(&[("edge.yaml", bad)], &[]).await;
    let error = service
        .stop()
        .await
        .expect_err("the service refused to start");
    let message = error.to_string();
    assert!(
        message.contains("edge.yaml: invalid rate limit unit 'fortnight'"),
        "{message}"
    );
    assert!(message.contains("--allow-empty-config"), "{message}");
}

#[tokio::test]
async fn a_config_directory_made_after_startup_is_picked_up() {
    let parent = tempfile::tempdir().unwrap();
    let config = parent.path().join("limits");
    let service = Service::start_in(parent, &config, &["--allow-empty-config"]).await;
    let mut client = service.client().await;
    assert_eq!(service.metrics.config_load_error.get(), 1);

    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("edge.yaml"), limits("edge", &[("user", 3)])).unwrap();
    until_configured(&service).await;
    until_limit(&mut client, "edge", "user", Some(3)).await;
    assert_eq!(service.health.config().last_error, None);

    // Watched now as the config directory itself.
    std::fs::write(config.join("edge.yaml"), limits("edge", &[("user", 4)])).unwrap();
    until_limit(&mut client, "edge", "user", Some(4)).await;
}

#[tokio::test]
async fn a_refused_edit_shows_the_config_stale_without_failing_readiness() {
    let good = limits("edge", &[("user", 2)]);
    let service = Service::start(&[("edge.yaml", &good)], &[]).await;
    let _client = service.client().await;
    let http = service.http();
    let health = http.get("/health").await.json();
    assert_eq!(health["config"]["state"], "current", "{health}");
    let loaded_at = health["config"]["loaded_at"].clone();
    assert!(loaded_at.is_string(), "{health}");
    assert_eq!(service.metrics.config_in_force.get(), 1);
    let loaded_seconds = service.metrics.config_loaded_at.get();
    assert!(loaded_seconds > 1_700_000_000, "{loaded_seconds}");

    let bad_unit = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight}\n";
    save_by_rename(&service.path("edge.yaml"), bad_unit);
    until("the refusal shows", || {
        service.metrics.config_load_error.get() == 1
    })
    .await;
    let health = http.get("/health").await;
    assert_eq!(health.status, 200, "a bad edit must not take the node out");
    let health = health.json();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["config"]["state"], "stale", "{health}");
    assert_eq!(health["config"]["loaded_at"], loaded_at, "{health}");
    let errors = health["config"]["last_error"]["errors"].to_string();
    assert!(errors.contains("fortnight"), "{health}");
    assert_eq!(http.get("/healthcheck").await.status, 200);
    assert_eq!(service.metrics.config_in_force.get(), 0);
    assert_eq!(service.metrics.config_loaded_at.get(), loaded_seconds);
    let scraped = http.get("/metrics").await.body;
    assert!(
        scraped.contains("ratelimiter_config_in_force 0"),
        "{scraped}"
    );

    save_by_rename(&service.path("edge.yaml"), &good);
    until("the fix shows", || {
        service.metrics.config_in_force.get() == 1
    })
    .await;
    let health = http.get("/health").await.json();
    assert_eq!(health["config"]["state"], "current", "{health}");
}

#[tokio::test]
async fn starting_on_a_refused_config_shows_none_loaded() {
    let bad_unit = "domain: edge\ndescriptors:\n  - key: user\n    rate_limit: {unit: fortnight}\n";
    let service = Service::start(&[("edge.yaml", bad_unit)], &["--allow-empty-config"]).await;
    let _client = service.client().await;
    let health = service.http().get("/health").await.json();
    assert_eq!(health["config"]["state"], "none", "{health}");
    assert_eq!(
        health["config"]["loaded_at"],
        serde_json::Value::Null,
        "{health}"
    );
    assert!(
        health["config"]["last_error"]["errors"]
            .to_string()
            .contains("fortnight")
    );
    assert_eq!(service.metrics.config_in_force.get(), 0);
    assert_eq!(service.metrics.config_loaded_at.get(), 0);

    save_by_rename(&service.path("edge.yaml"), &limits("edge", &[("user", 2)]));
    until("the first good load", || {
        service.metrics.config_in_force.get() == 1
    })
    .await;
    let health = service.http().get("/health").await.json();
    assert_eq!(health["config"]["state"], "current", "{health}");
}
