//! The token bucket on a real Redis, in real time and Redis's time: its long-run admitted rate
//! is the configured rate within 1%.

use std::time::{Duration, Instant};

use ratelimiter::algorithm::Algorithm;
use ratelimiter::store::{Admission, CounterOp, CounterStore};

use crate::common::redis::RedisServer;
use crate::common::redis_store::connect;

/// In real time on Redis (whose clock decides): 4 callers hammer a bucket refilling 400 per
/// second for 5 s. The tokens refilled (those taken beyond the first burst, and those left at
/// the end) are 400 per second of Redis's own time between the first call and the last, within
/// 1% (and a token of rounding). The bucket holds 1,000, so that a caller stalled by a busy
/// machine loses no token to a full bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_long_run_rate_is_the_configured_rate_within_one_percent() {
    let redis = RedisServer::start();
    let connected = connect(&redis.url(), &[], "rate:").await;
    let mut clock = ::redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut redis_time = move || {
        let (seconds, micros): (u64, u64) = ::redis::cmd("TIME").query(&mut clock).unwrap();
        seconds as f64 + micros as f64 / 1e6
    };
    let op = CounterOp {
        key: "1|algo|t1|k=v".into(),
        algorithm: Algorithm::TokenBucket,
        window_ms: 1_000,
        limit: 400,
        burst: 1_000,
        delta: 1,
        admission: Admission::Fit,
    };
    let run = Duration::from_secs(5);
    let first = redis_time();
    let started = Instant::now();
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let store = connected.store.clone();
            let op = op.clone();
            tokio::spawn(async move {
                let mut admitted = 0u64;
                while started.elapsed() < run {
                    let count = store.apply(std::slice::from_ref(&op)).await.unwrap()[0];
                    admitted += u64::from(count.fits);
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for caller in callers {
        admitted += caller.await.unwrap();
    }
    let look = CounterOp { delta: 0, ..op };
    let taken = connected.store.apply(&[look]).await.unwrap()[0].value;
    let last = redis_time();
    let expected = 400.0 * (last - first);
    let refilled = (admitted + (1_000 - taken)) as f64 - 1_000.0;
    assert!(
        (refilled - expected).abs() <= expected / 100.0 + 1.0,
        "{refilled} refilled in {:.3} s, {expected} expected",
        last - first
    );
}
