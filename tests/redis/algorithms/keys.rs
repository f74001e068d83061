//! Every key the algorithms write in Redis expires, and no later than it is needed: a fixed
//! window when it ends, a sliding window when its newest hit leaves the span counted, a token
//! bucket when it is full again (a full bucket has no key at all), and a refused request writes
//! nothing.

use std::time::Duration;

use ratelimiter::algorithm::Algorithm;
use ratelimiter::key::{self, Scope};

use crate::common::algorithms::LIMITS;
use crate::common::redis::{RedisServer, keys_and_ttls};
use crate::common::redis_store::TEST_TIMEOUT;
use crate::common::{Code, Service, ask, code, request};

/// Counter keys under the default prefix, decoded, with their PTTL in ms.
fn counters(redis: &RedisServer) -> Vec<(String, Scope, i64)> {
    keys_and_ttls(redis.port)
        .into_iter()
        .filter_map(|(key, ttl)| {
            let counter = key.strip_prefix("ratelimit:")?.to_string();
            let scope = key::decode(&counter)?.scope;
            Some((counter, scope, ttl))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_expires_no_later_than_it_is_needed() {
    let redis = RedisServer::start();
    let url = redis.url();
    let flags = ["--redis-url", &url, "--redis-timeout", TEST_TIMEOUT];
    let service = Service::start(&[("algo.yaml", LIMITS)], &flags).await;
    let mut client = service.client().await;
    for key in ["fixed", "five_minutes", "sliding", "bucket", "list"] {
        for _ in 0..25 {
            ask(&mut client, request("algo", &[&[(key, "ttl")]])).await;
        }
    }
    let found = counters(&redis);
    assert_eq!(found.len(), 7, "{found:?}");
    for (counter, scope, ttl) in found {
        let window_ms = scope.window_secs() as i64 * 1_000;
        let longest = match scope.algorithm() {
            Algorithm::FixedWindow => window_ms,
            // The span counted: the window and one bucket of window / 20.
            Algorithm::SlidingWindow => window_ms + window_ms / 20,
            // Until full again: 20 (or 25) tokens taken at 10 an hour.
            Algorithm::TokenBucket => 25 * 360_000,
        };
        assert!(
            ttl > 0 && ttl <= longest,
            "{counter}: PTTL {ttl} ms, needed {longest} at most"
        );
    }
    // A bucket with one token taken is full again one interval (6 minutes) later.
    ask(&mut client, request("algo", &[&[("bucket", "one")]])).await;
    let (_, _, ttl) = counters(&redis)
        .into_iter()
        .find(|(counter, _, _)| counter.contains("bucket?one"))
        .expect("the bucket's key");
    assert!((359_000..=360_000).contains(&ttl), "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_and_a_full_bucket_write_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let limits = "domain: algo\ndescriptors:\n  - key: tiny\n    rate_limit:\n      - {unit: second, requests_per_unit: 1000, algorithm: token_bucket, burst: 1}\n      - {unit: hour, requests_per_unit: 2, algorithm: sliding_window}\n";
    let flags = ["--redis-url", &url, "--redis-timeout", TEST_TIMEOUT];
    let service = Service::start(&[("algo.yaml", limits)], &flags).await;
    let mut client = service.client().await;
    // Three hits at once: more than the list admits, so none is counted anywhere.
    let mut three = request("algo", &[&[("tiny", "t")]]);
    three.hits_addend = 3;
    assert_eq!(code(&ask(&mut client, three).await), Code::OverLimit);
    assert!(counters(&redis).is_empty(), "{:?}", counters(&redis));
    // One hit: the bucket (a token a millisecond) is full again within a few milliseconds, and
    // its key goes with it; the sliding window keeps its hit for the hour.
    assert_eq!(
        code(&ask(&mut client, request("algo", &[&[("tiny", "t")]])).await),
        Code::Ok
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let left: Vec<Scope> = counters(&redis)
        .into_iter()
        .map(|(_, scope, _)| scope)
        .collect();
    assert_eq!(
        left,
        [Scope::Limit {
            algorithm: Algorithm::SlidingWindow,
            window_secs: 3_600,
            listed: true
        }]
    );
}
