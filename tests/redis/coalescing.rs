//! The script calls of concurrent requests travel together (one pipeline per server or master
//! at a time), and that changes nothing a request can see: counts stay exact, a call Redis
//! refuses fails only its own request, and a script Redis forgot is loaded again without any
//! call counting twice.

use std::sync::Arc;

use futures_util::future::join_all;
use ratelimiter::health::Status;
use ratelimiter::store::{CounterOp, CounterStore, StoreError};

use crate::common::contract::op;
use crate::common::redis::{RedisCluster, RedisServer};
use crate::common::redis_store::connect;

/// Hits on a counter, each its own request, all at once.
const CALLS: usize = 400;

/// Every request of `requests` at once on `store`; their answers in the same order.
async fn all_at_once(
    store: &Arc<impl CounterStore>,
    requests: &[Vec<CounterOp>],
) -> Vec<Result<Vec<u64>, StoreError>> {
    let calls = requests.iter().cloned().map(|ops| {
        let store = store.clone();
        tokio::spawn(async move {
            let counts = store.apply(&ops).await?;
            Ok(counts.iter().map(|count| count.value).collect())
        })
    });
    join_all(calls)
        .await
        .into_iter()
        .map(|answer| answer.unwrap())
        .collect()
}

/// The count of `key`, read without adding to it.
async fn count(store: &impl CounterStore, key: &str) -> u64 {
    store.apply(&[op(key, 3_600, 0)]).await.unwrap()[0].value
}

/// Read system calls of a process so far (`/proc/<pid>/io`).
fn reads(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|line| line.strip_prefix("syscr:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_pipelines_and_count_exactly() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "together:").await;
    let store = connected.store.clone();
    let pid = redis.pid().unwrap();
    let requests: Vec<_> = (0..CALLS)
        .map(|index| vec![op(&format!("k{}", index % 20), 3_600, 1)])
        .collect();

    let before = reads(pid);
    let answers = all_at_once(&store, &requests).await;
    let read = reads(pid) - before;

    let mut seen = vec![Vec::new(); 20];
    for (index, answer) in answers.into_iter().enumerate() {
        seen[index % 20].push(answer.unwrap()[0]);
    }
    for (key, mut values) in seen.into_iter().enumerate() {
        values.sort_unstable();
        let expected: Vec<u64> = (1..=(CALLS / 20) as u64).collect();
        assert_eq!(values, expected, "k{key}: every hit sees its own count");
    }
    // One read per request would be CALLS; pipelines take many requests per read.
    assert!(
        read < CALLS as u64 / 2,
        "Redis read {read} times for {CALLS} requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_redis_refuses_fails_only_its_own_request() {
    // This user may touch only keys behind `acl:ok-`: a call on any other key is refused
    // (NOPERM) while the calls beside it in the pipeline run.
    let redis =
        RedisServer::start_with(&["--user", "limited", "on", ">secret", "~acl:ok-*", "+@all"]);
    let url = format!("redis://limited:secret@127.0.0.1:{}", redis.port);
    let connected = connect(&url, &[], "acl:").await;
    let store = connected.store.clone();
    let requests: Vec<_> = (0..CALLS)
        .map(|index| {
            let allowed = if index % 2 == 0 { "ok" } else { "no" };
            vec![op(&format!("{allowed}-{}", index % 10), 3_600, 1)]
        })
        .collect();

    let answers = all_at_once(&store, &requests).await;

    for (index, answer) in answers.into_iter().enumerate() {
        match (index % 2, answer) {
            (0, Ok(_)) => {}
            (1, Err(error)) => assert!(!error.is_transient(), "{error}"),
            (_, answer) => panic!("request {index} answered {answer:?}"),
        }
    }
    for key in ["ok-0", "ok-2", "ok-4", "ok-6", "ok-8"] {
        assert_eq!(count(&*store, key).await, (CALLS / 10) as u64, "{key}");
    }
    assert_eq!(connected.health.status(), Status::Healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_script_redis_forgot_is_loaded_again_and_nothing_counts_twice() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "flushed:").await;
    let store = connected.store.clone();
    assert_eq!(count(&*store, "k0").await, 0);
    assert!(redis.cli(&["script", "flush"]).contains("OK"));

    let requests: Vec<_> = (0..CALLS)
        .map(|index| vec![op(&format!("k{}", index % 10), 3_600, 1)])
        .collect();
    let answers = all_at_once(&store, &requests).await;

    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    for key in 0..10 {
        assert_eq!(
            count(&*store, &format!("k{key}")).await,
            (CALLS / 10) as u64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_counts_exactly_when_requests_span_masters() {
    let cluster = RedisCluster::start();
    let connected = connect(&cluster.url(), &["--redis-type", "cluster"], "spread:").await;
    let store = connected.store.clone();
    // Each request counts three keys, most of them on different masters.
    let requests: Vec<_> = (0..CALLS)
        .map(|index| {
            (0..3)
                .map(|offset| op(&format!("k{}", (index + 7 * offset) % 30), 3_600, 1))
                .collect()
        })
        .collect();

    let answers = all_at_once(&store, &requests).await;

    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    for key in 0..30 {
        let expected = requests
            .iter()
            .flatten()
            .filter(|op| op.key == format!("k{key}"))
            .count();
        assert_eq!(count(&*store, &format!("k{key}")).await, expected as u64);
    }
}
