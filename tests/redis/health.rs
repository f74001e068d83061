//! Health that tells the truth about Redis: a Redis that answers PING but refuses every count
//! (out of memory under `noeviction`, or a user without the right to run scripts) makes the
//! service degraded with the reason, `/healthcheck` 500, until it counts again; callers whose
//! deadlines are too short for any store cannot make a working Redis look failing; and a stalled
//! Redis logs a line per interval with a count, not a line per failed request.

use std::time::Duration;

use futures_util::future::join_all;

use crate::common::faults::{LIMITS, call, counts_exactly, service, until_ok};
use crate::common::process::Node;
use crate::common::redis::RedisServer;
use crate::common::redis_store::TEST_TIMEOUT;
use crate::common::{self, Service, eventually, request};

/// Health recovers once the failed calls leave its 10 s window.
const RECOVERS_WITHIN: Duration = Duration::from_secs(30);

/// `/health`'s status and store problem, and `/healthcheck`'s status and body.
async fn health(service: &Service) -> (String, String, u16, String) {
    let health = service.http().get("/health").await.json();
    let check = service.http().get("/healthcheck").await;
    (
        health["status"].as_str().unwrap_or_default().to_string(),
        health["store"]["problem"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        check.status,
        check.body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_out_of_memory_makes_the_service_degraded_with_the_reason() {
    let redis = RedisServer::start();
    let service = service(&redis.url(), &[]).await;
    let mut client = service.client().await;
    until_ok(&mut client, "the service counts").await;

    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    for index in 0..20 {
        assert!(call(&mut client, &format!("oom-{index}")).await.is_err());
    }
    let (status, problem, check, body) = health(&service).await;
    assert_eq!(status, "degraded", "{problem}");
    assert!(problem.contains("OOM"), "{problem}");
    assert_eq!(check, 500, "{body}");
    assert!(body.contains("OOM"), "{body}");

    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    eventually(
        RECOVERS_WITHIN,
        "healthy once Redis counts again",
        || async {
            let _ = call(&mut service.client().await, "after").await;
            health(&service).await.0 == "healthy"
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_with_1ms_deadlines_do_not_make_a_working_redis_degraded() {
    let redis = RedisServer::start();
    let service = service(&redis.url(), &[]).await;
    until_ok(&mut service.client().await, "the service counts").await;

    // Calls given 1 ms (0.9 ms for the store), 8 at a time: most are cut by their deadline.
    let hurried = join_all((0..8).map(|task| {
        let service = &service;
        async move {
            let mut client = service.client().await;
            for index in 0..150 {
                let mut call = tonic::Request::new(request(
                    "faults",
                    &[&[("user", &format!("hurried-{task}-{index}"))]],
                ));
                call.set_timeout(Duration::from_millis(1));
                let _ = client.should_rate_limit(call).await;
            }
        }
    }));
    let watched = async {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let (status, problem, check, _) = health(&service).await;
            seen.push((status, problem, check));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    };
    let (_, seen) = tokio::join!(hurried, watched);
    let cut = service.metrics.store_deadlines_passed.get();
    assert!(
        cut >= 100,
        "only {cut} of 1200 calls were cut by their deadline"
    );
    let (status, problem, check, body) = health(&service).await;
    assert_eq!(
        (status.as_str(), check),
        ("healthy", 200),
        "{problem} {body}"
    );
    let unhealthy: Vec<_> = seen
        .iter()
        .filter(|(status, _, check)| status != "healthy" || *check != 200)
        .collect();
    assert!(
        unhealthy.is_empty(),
        "after {cut} calls cut by their callers' deadlines: {unhealthy:?}"
    );
    counts_exactly(&mut service.client().await, "after-the-hurry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_user_that_may_not_run_scripts_is_reported_until_it_may() {
    let redis = RedisServer::start();
    let grant = |rights: &str| {
        let answer = redis.cli(&[
            "ACL", "SETUSER", "limited", "on", ">secret", "~*", "&*", "+@all", rights,
        ]);
        assert!(answer.contains("OK"), "{answer}");
    };
    grant("-@scripting");
    let url = format!("redis://limited:secret@127.0.0.1:{}", redis.port);
    let service = service(&url, &[]).await;
    let (status, problem, check, _) = health(&service).await;
    assert_eq!(status, "degraded", "{problem}");
    assert!(problem.contains("scripts"), "{problem}");
    assert!(problem.contains("+@scripting"), "{problem}");
    assert_eq!(check, 500);

    grant("+@scripting");
    eventually(
        RECOVERS_WITHIN,
        "healthy once the user may run scripts",
        || async { health(&service).await.0 == "healthy" },
    )
    .await;
    until_ok(&mut service.client().await, "the service counts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_logs_a_line_per_interval_not_per_failed_call() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let config = common::config_dir(&[("faults.yaml", LIMITS)]);
    let node = Node::start(&[
        "--config",
        config.path().to_str().unwrap(),
        "--redis-url",
        &redis.url(),
        "--redis-timeout",
        TEST_TIMEOUT,
    ]);
    let mut client = common::connect(node.grpc_addr).await;
    until_ok(&mut client, "the node counts").await;
    node.logged();

    let port = redis.port;
    let stall = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "4"])
            .output()
    });
    let mut failed = 0;
    for index in 0..100 {
        if call(&mut client, &format!("stalled-{index}"))
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    stall.join().unwrap().expect("redis-cli runs");
    until_ok(&mut client, "the node counts again").await;
    let lines = node.logged();
    let store_lines: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("counter store"))
        .collect();
    eprintln!(
        "{failed} failed calls logged {} lines about the store",
        store_lines.len()
    );
    assert!(failed >= 10, "the stall failed calls: {failed}");
    assert!(
        store_lines.len() <= 3,
        "{failed} failed calls logged {} lines:\n{}",
        store_lines.len(),
        lines.join("\n")
    );
}
