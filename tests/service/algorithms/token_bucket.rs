//! The token bucket: its long-run admitted rate is the configured rate within 1%, and a burst
//! after idling admits exactly `burst`, on the memory store with a clock moved by hand and over
//! gRPC (`tests/redis/algorithms` measures the rate on Redis in real time).

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ratelimiter::algorithm::Algorithm;
use ratelimiter::clock::ManualClock;
use ratelimiter::store::{Admission, CounterOp, CounterStore, MemoryStore};

use crate::common::algorithms::LIMITS;
use crate::common::{Code, Service, ask, code, request};

fn bucket(key: &str, window_ms: u64, limit: u64, burst: u64) -> CounterOp {
    CounterOp {
        key: key.into(),
        algorithm: Algorithm::TokenBucket,
        window_ms,
        limit,
        burst,
        delta: 1,
        admission: Admission::Fit,
    }
}

fn admitted_now(store: &MemoryStore, op: &CounterOp) -> bool {
    store
        .apply(std::slice::from_ref(op))
        .now_or_never()
        .expect("the memory store answers at once")
        .unwrap()[0]
        .fits
}

/// Arrivals at three times the rate, evenly and in random clumps, for 1,000 simulated seconds:
/// what is admitted beyond the first burst is the rate times the time, within 1%.
#[test]
fn the_long_run_rate_is_the_configured_rate_within_one_percent() {
    let mut random = super::xorshift(0x9e37_79b9_7f4a_7c15_u64);
    // 7 per second (a token every 142.857 ms, never a whole millisecond), 5 at once; and 100
    // per minute, 30 at once.
    for (window_ms, limit, burst) in [(1_000, 7, 5), (60_000, 100, 30)] {
        for clumped in [false, true] {
            let clock = Arc::new(ManualClock::new(crate::common::START_MS));
            let store = MemoryStore::new(100, clock.clone());
            let op = bucket("rate", window_ms, limit, burst);
            let seconds = 1_000;
            let mean_gap_ms = window_ms / (3 * limit);
            let (mut elapsed, mut admitted) = (0, 0);
            while elapsed < seconds * 1_000 {
                let gap = match clumped {
                    false => mean_gap_ms,
                    true if random(4) == 0 => random(8 * mean_gap_ms),
                    true => 0,
                };
                clock.advance(Duration::from_millis(gap));
                elapsed += gap;
                admitted += u64::from(admitted_now(&store, &op));
            }
            let expected = (limit * seconds * 1_000 / window_ms) as f64;
            let refilled = (admitted - burst) as f64;
            assert!(
                (refilled - expected).abs() <= expected / 100.0,
                "{limit} per {window_ms} ms (clumped: {clumped}): {refilled} refilled, {expected} expected"
            );
        }
    }
}

#[test]
fn a_burst_after_idling_admits_exactly_burst() {
    let clock = Arc::new(ManualClock::new(crate::common::START_MS));
    let store = MemoryStore::new(100, clock.clone());
    let op = bucket("burst", 1_000, 10, 25);
    for round in 0..3 {
        let admitted = (0..100).filter(|_| admitted_now(&store, &op)).count();
        assert_eq!(admitted, 25, "round {round}");
        // 2.5 s refill the 25 tokens; idling longer adds none.
        clock.advance(Duration::from_millis(2_500 + round * 10_000));
    }
    // Half the refill time refills half the bucket.
    (0..100).for_each(|_| {
        admitted_now(&store, &op);
    });
    clock.advance(Duration::from_millis(1_250));
    assert_eq!((0..100).filter(|_| admitted_now(&store, &op)).count(), 12);
}

/// Over gRPC on the memory store: a full bucket gives its burst, then nothing until a token
/// refills (a token every 6 minutes), and the refused ones were never counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_a_full_bucket_gives_its_burst_then_a_token_per_interval() {
    let service = Service::start(&[("algo.yaml", LIMITS)], &[]).await;
    let mut client = service.client().await;
    let mut hit = async || code(&ask(&mut client, request("algo", &[&[("bucket", "b")]])).await);
    for _ in 0..20 {
        assert_eq!(hit().await, Code::Ok);
    }
    for _ in 0..10 {
        assert_eq!(hit().await, Code::OverLimit);
    }
    service.clock.advance(Duration::from_secs(6 * 60));
    assert_eq!(hit().await, Code::Ok);
    assert_eq!(hit().await, Code::OverLimit);
    service.clock.advance(Duration::from_secs(20 * 6 * 60));
    let admitted = {
        let mut admitted = 0;
        for _ in 0..30 {
            admitted += usize::from(hit().await == Code::Ok);
        }
        admitted
    };
    assert_eq!(admitted, 20);
}
