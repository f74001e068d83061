//! What happens when Redis fails: killed under load, stalled with SIGSTOP, or absent when the
//! service starts. Calls answer UNAVAILABLE (never OK or UNKNOWN) within the timeout, the
//! service stays up, `/health` says degraded, and counting resumes by itself once Redis is back.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::eventually;
use crate::common::faults::{LIMITS, RECOVERY, call, counts_exactly, service, until_ok};
use crate::common::ports::ReservedPort;
use crate::common::process::Node;
use crate::common::redis::RedisServer;
use crate::common::redis_store::{TEST_TIMEOUT, connect};
use crate::common::{Code, Service, code, request};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::RateLimitOverride;
use ratelimiter::health::Status;
use ratelimiter::store::CounterStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_redis_gives_unavailable_then_counting_resumes_after_restart() {
    let mut redis = RedisServer::start();
    let service = service(&redis.url(), &[]).await;
    let mut client = service.client().await;
    counts_exactly(&mut client, "before").await;

    // Load while Redis dies: every answer is OK/OVER_LIMIT or UNAVAILABLE, never anything else.
    let mut load_client = service.client().await;
    let (answered, mut progress) = tokio::sync::watch::channel(0);
    let load = tokio::spawn(async move {
        let mut unavailable = 0;
        for index in 0..400 {
            match call(&mut load_client, &format!("load-{}", index % 50)).await {
                Ok(_) => {}
                Err(tonic::Code::Unavailable) => unavailable += 1,
                Err(other) => panic!("a call under load answered {other:?}"),
            }
            answered.send_replace(index + 1);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        unavailable
    });
    // Redis dies once the load is under way, with most of its calls still to come.
    progress
        .wait_for(|&answered| answered >= 10)
        .await
        .expect("the load runs");
    redis.kill();
    assert_eq!(
        call(&mut client, "during").await,
        Err(tonic::Code::Unavailable)
    );
    let http = common::http::Http::new(service.http_addr);
    eventually(RECOVERY, "/health says degraded", || async {
        http.get("/health").await.json()["status"] == "degraded"
    })
    .await;
    assert!(
        load.await.unwrap() > 0,
        "no call under load met the dead Redis"
    );

    redis.restart();
    let restarted = Instant::now();
    until_ok(&mut client, "requests work again after Redis restarts").await;
    eprintln!(
        "recovered {:?} after Redis answered again",
        restarted.elapsed()
    );
    counts_exactly(&mut client, "after").await;
    eventually(RECOVERY, "/health says healthy again", || async {
        http.get("/health").await.json()["status"] == "healthy"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_redis_gives_unavailable_within_the_timeout() {
    let redis = RedisServer::start();
    let service = service(&redis.url(), &[]).await;
    let mut client = service.client().await;
    counts_exactly(&mut client, "before").await;

    redis.pause();
    for _ in 0..5 {
        assert_eq!(
            call(&mut client, "stalled").await,
            Err(tonic::Code::Unavailable)
        );
    }
    redis.resume();
    until_ok(&mut client, "requests work again after SIGCONT").await;
    counts_exactly(&mut client, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_started_before_redis_heals_when_redis_appears() {
    let mut redis = RedisServer::planned();
    let service = service(&redis.url(), &[]).await;
    let mut client = service.client().await;
    assert_eq!(
        call(&mut client, "early").await,
        Err(tonic::Code::Unavailable)
    );

    redis.restart();
    until_ok(&mut client, "requests work once Redis appears").await;
    counts_exactly(&mut client, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_redis() {
    let mut redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "health:").await;
    assert_eq!(connected.health.status(), Status::Healthy);

    redis.kill();
    eventually(RECOVERY, "health turns degraded", || async {
        connected.health.status() == Status::Degraded
    })
    .await;
    let error = connected.store.approximate_len().await.unwrap_err();
    assert!(error.is_transient(), "{error}");

    redis.restart();
    eventually(RECOVERY, "health turns healthy again", || async {
        connected.health.status() == Status::Healthy
    })
    .await;
    assert!(connected.store.approximate_len().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_stay_out_of_error_texts() {
    let redis = RedisServer::start_with(&["--requirepass", "right-one"]);
    let url = format!("redis://:hunter2@127.0.0.1:{}", redis.port);
    let connected = connect(&url, &[], "secret:").await;
    let error = connected.store.approximate_len().await.unwrap_err();
    assert!(
        !format!("{error} {error:?}").contains("hunter2"),
        "{error:?}"
    );

    let service = Service::start(
        &[("faults.yaml", LIMITS)],
        &["--redis-url", &url, "--redis-timeout", TEST_TIMEOUT],
    )
    .await;
    let status = service
        .client()
        .await
        .should_rate_limit(request("faults", &[&[("user", "x")]]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(!status.message().contains("hunter2"), "{status:?}");

    let bad = common::settings(
        std::path::Path::new("unused"),
        &["--redis-url", "redis://:hunter2@host:notaport"],
    );
    let health = ratelimiter::health::Health::new();
    let setup = ratelimiter::store::redis::RedisLink::start(
        &ratelimiter::server::options::redis(&bad).expect("--redis-url given"),
        health.store(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let text = setup
        .err()
        .map(|error| format!("{error} {error:?}"))
        .unwrap_or_default();
    assert!(text.contains("not a valid"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn the_password_never_reaches_help_or_logs() {
    // Nothing listens on the port, nor can while the test holds it.
    let closed = ReservedPort::new();
    let url = format!("redis://admin:hunter2@127.0.0.1:{}", closed.port);
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ratelimiter"))
        .args(["serve", "--help"])
        .env("RATELIMITER_REDIS_URL", &url)
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2"));

    // The node logs its failed connection attempts, at debug level too: when it starts, and
    // again from the loop that keeps dialling.
    let node = Node::start(&["--log-level", "debug", "--redis-url", &url]);
    let mut logs = node.startup_log.clone();
    logs.extend(node.log_until("cannot reach Redis;", Duration::from_secs(10)));
    node.signal("KILL");
    logs.extend(node.log_until_exit());
    let logs = logs.join("\n");
    assert!(logs.contains("cannot reach Redis"), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocked_key_is_answered_from_the_local_cache_without_redis() {
    let redis = RedisServer::start();
    let service = service(&redis.url(), &[]).await;
    let mut client = service.client().await;
    counts_exactly(&mut client, "hammering").await;
    let answered_from_cache = service.metrics.blocked_cache_hits.get();

    // Redis stalls: a key known to be over its limit is still answered, from this node alone;
    // any other key needs Redis and gets UNAVAILABLE.
    redis.pause();
    for _ in 0..3 {
        assert_eq!(call(&mut client, "hammering").await, Ok(Code::OverLimit));
    }
    assert_eq!(
        call(&mut client, "someone-else").await,
        Err(tonic::Code::Unavailable)
    );
    assert_eq!(
        service.metrics.blocked_cache_hits.get(),
        answered_from_cache + 3
    );
    redis.resume();
    until_ok(&mut client, "requests work again after SIGCONT").await;

    // A request carrying a higher limit for the same entries is a different counter: not blocked.
    let mut raised = request("faults", &[&[("user", "hammering")]]);
    raised.descriptors[0].limit = Some(RateLimitOverride {
        requests_per_unit: 100,
        unit: 3,
    });
    let response = client.should_rate_limit(raised).await.unwrap().into_inner();
    assert_eq!(code(&response), Code::Ok);
}

/// A counter reset through the API is answered afresh at once on the node that reset it, and
/// within the blocked cache's 2 s on a node that had it cached as blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_counter_is_no_longer_answered_as_blocked_on_any_node() {
    let redis = RedisServer::start();
    let token = ["--admin-token", "s3cret"];
    let resetting = service(&redis.url(), &token).await;
    let other = service(&redis.url(), &token).await;
    let mut here = resetting.client().await;
    let mut there = other.client().await;
    counts_exactly(&mut here, "blocked").await;
    assert_eq!(call(&mut there, "blocked").await, Ok(Code::OverLimit));
    let cached_there = other.metrics.blocked_cache_hits.get();
    assert_eq!(call(&mut there, "blocked").await, Ok(Code::OverLimit));
    assert_eq!(
        other.metrics.blocked_cache_hits.get(),
        cached_there + 1,
        "the other node answers it from its cache"
    );

    let http = resetting.http();
    let blocks = http.get_with_token("/api/blocks", "s3cret").await.json();
    let key = blocks["blocked"][0]["key"].as_str().unwrap().to_string();
    let path = format!(
        "/api/counters/{}",
        percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC)
    );
    assert_eq!(http.delete(&path, Some("s3cret")).await.status, 200);
    assert_eq!(call(&mut here, "blocked").await, Ok(Code::Ok));
    eventually(RECOVERY, "the other node asks Redis again", || {
        let mut there = there.clone();
        async move { call(&mut there, "blocked").await == Ok(Code::Ok) }
    })
    .await;
}
