//! The sliding window against an exact log of what it admitted, on random arrivals: no span of
//! one window ever holds more than the limit, and a refusal happens only when the window and
//! one bucket before it (the documented bound: 21 buckets of window / 20) leave no room, so a
//! refused caller waits at most one bucket (5% of the window) longer than with an exact log.
//! And, measured: on random arrivals it admits nearly what an exact sliding log admits.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use ratelimiter::algorithm::Algorithm;
use ratelimiter::clock::{Clock, ManualClock};
use ratelimiter::store::sliding::{BUCKETS, bucket_width_ms};
use ratelimiter::store::{Admission, CounterOp, CounterStore, MemoryStore};

use crate::common::START_MS;

fn sliding(window_ms: u64, limit: u64, hits: u64) -> CounterOp {
    CounterOp {
        key: "1|algo|s1|k=v".into(),
        algorithm: Algorithm::SlidingWindow,
        window_ms,
        limit,
        burst: limit,
        delta: hits as i64,
        admission: Admission::Fit,
    }
}

/// Replays `arrivals` (gap before it in ms, hits) on the memory store and checks every
/// decision against the log of what was admitted; returns the hits admitted.
fn replay(arrivals: &[(u64, u64)], window_ms: u64, limit: u64) -> Result<u64, TestCaseError> {
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = MemoryStore::new(100, clock.clone());
    let width = bucket_width_ms(Duration::from_millis(window_ms));
    let mut log: Vec<(u64, u64)> = Vec::new();
    let since = |log: &[(u64, u64)], from: u64| -> u64 {
        log.iter()
            .filter(|&&(at, _)| at >= from)
            .map(|&(_, hits)| hits)
            .sum()
    };
    for &(gap, hits) in arrivals {
        clock.advance(Duration::from_millis(gap));
        let now = clock.now_ms();
        let op = sliding(window_ms, limit, hits);
        let count = futures_util::FutureExt::now_or_never(store.apply(&[op]))
            .expect("the memory store answers at once")
            .unwrap()[0];
        // The span of one window ending now, and the span the buckets count.
        let last_window = since(&log, now + 1 - window_ms);
        let counted_from = (now / width - BUCKETS) * width;
        if count.fits {
            prop_assert!(
                last_window + hits <= limit,
                "admitted {hits} at {now} with {last_window} in the last window"
            );
            log.push((now, hits));
            prop_assert_eq!(count.value, since(&log, counted_from));
        } else {
            prop_assert_eq!(count.value, since(&log, counted_from));
            // The documented bound: the window and one bucket before it, that is 21 buckets of
            // window / 20 (rounded up to a millisecond).
            let longer = since(&log, now + 1 - (BUCKETS + 1) * width);
            prop_assert!(
                longer + hits > limit,
                "refused {hits} at {now} with only {longer} in the window and a bucket"
            );
        }
    }
    Ok(log.iter().map(|&(_, hits)| hits).sum())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_span_holds_more_than_the_limit_and_refusals_stay_within_the_bound(
        arrivals in prop::collection::vec((0u64..300, 1u64..4), 1..400),
        window_ms in prop::sample::select(vec![999u64, 1_000, 1_234, 5_000, 60_000]),
        limit in 1u64..40,
    ) {
        replay(&arrivals, window_ms, limit)?;
    }
}

/// What an exact sliding log admits on the same arrivals.
fn exact_log(arrivals: &[(u64, u64)], window_ms: u64, limit: u64) -> u64 {
    let mut now = 0;
    let mut log: VecDeque<(u64, u64)> = VecDeque::new();
    let (mut counted, mut admitted) = (0, 0);
    for &(gap, hits) in arrivals {
        now += gap;
        while let Some(&(at, old)) = log.front()
            && at + window_ms <= now
        {
            log.pop_front();
            counted -= old;
        }
        if counted + hits <= limit {
            log.push_back((now, hits));
            counted += hits;
            admitted += hits;
        }
    }
    admitted
}

/// What the memory store's sliding window admits on the arrivals.
fn buckets(arrivals: &[(u64, u64)], window_ms: u64, limit: u64) -> u64 {
    let clock = Arc::new(ManualClock::new(START_MS));
    let store = MemoryStore::new(100, clock.clone());
    let mut admitted = 0;
    for &(gap, hits) in arrivals {
        clock.advance(Duration::from_millis(gap));
        let op = sliding(window_ms, limit, hits);
        let count = futures_util::FutureExt::now_or_never(store.apply(&[op]))
            .expect("the memory store answers at once")
            .unwrap()[0];
        admitted += if count.fits { hits } else { 0 };
    }
    admitted
}

/// Measured, beside the bound: on random steady and bursty arrivals at two to five times the
/// limit's rate, over 200 windows each, the share of an exact log's admissions the buckets admit
/// (the worst is printed with `--nocapture`, for the record). No share is guaranteed: bursts
/// spaced just over one window apart find the previous burst still counted for up to one more
/// bucket, and the buckets admit every other one. What is guaranteed is the wait, above. Under a
/// steady overload the buckets admit the limit per 21 buckets, 20/21 of an exact log's rate.
#[test]
fn on_random_arrivals_the_buckets_admit_nearly_what_an_exact_log_admits() {
    let mut random = super::xorshift(0x2545_f491_4f6c_dd1d_u64);
    let mut worst = f64::MAX;
    for trial in 0..24 {
        let (window_ms, limit) = [(1_000, 10), (1_000, 100), (60_000, 50), (5_000, 7)][trial % 4];
        let overload = 2 + trial as u64 % 4;
        let mean_gap = window_ms / (limit * overload);
        let arrivals: Vec<(u64, u64)> = (0..200 * limit * overload)
            .map(|_| {
                let gap = if trial % 2 == 0 {
                    random(2 * mean_gap + 1)
                } else if random(10) == 0 {
                    random(20 * mean_gap + 1)
                } else {
                    0
                };
                (gap, 1)
            })
            .collect();
        let share = buckets(&arrivals, window_ms, limit) as f64
            / exact_log(&arrivals, window_ms, limit) as f64;
        worst = worst.min(share);
    }
    eprintln!("sliding window: worst share of an exact log's admissions = {worst:.4}");
    assert!(worst >= 0.95, "{worst}");
}
