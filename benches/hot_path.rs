//! Criterion micro-benchmarks of the pieces on the request path: matching a descriptor in a
//! 10,000-rule config (exact, wildcard, key-only), encoding a counter key, and the memory
//! store's increment, alone and with threads contending for one key or spread over many, and a
//! whole decision (validate, match, count, respond) on the memory store.
//!
//! `cargo bench --bench hot_path`

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ratelimiter::clock::SystemClock;
use ratelimiter::config::{Config, MatchBudget};
use ratelimiter::key::{self, Level, Scope};
use ratelimiter::limiter::{Limiter, LimiterOptions, Modes};
use ratelimiter::metrics::Metrics;
use ratelimiter::rls::request::validate;
use ratelimiter::rls::response::build;
use ratelimiter::rls::{RequestLimits, ResponseOptions};
use ratelimiter::store::{CounterOp, CounterStore, MemoryStore};

/// A config of 10,050 rules: 100 keys with 99 exact values and a key-only rule each, and 50
/// wildcard patterns on one of them.
fn big_config() -> Config {
    let mut yaml = String::from("domain: big\ndescriptors:\n");
    for key in 0..100 {
        for value in 0..99 {
            yaml.push_str(&format!("  - {{key: k{key}, value: v{value}, rate_limit: {{unit: minute, requests_per_unit: 10}}}}\n"));
        }
        yaml.push_str(&format!(
            "  - {{key: k{key}, rate_limit: {{unit: minute, requests_per_unit: 10}}}}\n"
        ));
    }
    for pattern in 0..50 {
        yaml.push_str(&format!("  - {{key: k0, value: \"w{pattern}/*\", rate_limit: {{unit: minute, requests_per_unit: 10}}}}\n"));
    }
    Config::from_sources([("big.yaml", yaml.as_str())]).expect("the generated config is valid")
}

fn matching(c: &mut Criterion) {
    let config = big_config();
    let domain = config.domain("big").expect("the domain is loaded");
    assert_eq!(domain.rules.len(), 10_050);
    let mut group = c.benchmark_group("match");
    for (name, key, value) in [
        ("exact value", "k42", "v97"),
        ("last of 50 wildcards", "k0", "w49/something"),
        ("key only, after 50 wildcards missed", "k0", "unlisted"),
        ("unknown key", "nope", "v1"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                black_box(domain.find(
                    [(black_box(key), black_box(value))].into_iter(),
                    &mut MatchBudget::new(usize::MAX),
                ))
            })
        });
    }
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("key encode");
    for (name, value) in [
        ("plain value", "203.0.113.7"),
        ("value needing escapes", "a|b=c{d}\n"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let levels = [
                    Level::AnyValue {
                        key: "user_id",
                        value: black_box(value),
                    },
                    Level::Wildcard {
                        key: "path",
                        pattern: "/api/*",
                        value: "/api/orders",
                    },
                ];
                black_box(key::encode("edge", Scope::Rule { window_secs: 60 }, levels))
            })
        });
    }
    group.finish();
}

/// Polls a store call that finishes at once (the memory store never waits).
fn now<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the memory store answers without waiting"),
    }
}

fn increments(c: &mut Criterion) {
    let store = Arc::new(MemoryStore::new(1_000_000, Arc::new(SystemClock)));
    let op = |key: String| CounterOp {
        key,
        window_secs: 3_600,
        delta: 1,
        limit: u64::MAX,
    };
    let mut group = c.benchmark_group("memory store increment");
    let one = [op("1|edge|3600|user_id?alice".into())];
    group.bench_function("one thread, one key", |b| {
        b.iter(|| black_box(now(store.apply(&one))))
    });
    for (name, shared) in [
        ("2 threads, one key", true),
        ("2 threads, 10,000 keys", false),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| contended(&store, iterations, shared));
        });
    }
    group.finish();
}

/// Time for each of two threads to make `iterations` increments (on one shared key, or each on
/// its own rotation of 10,000 keys).
fn contended(store: &Arc<MemoryStore>, iterations: u64, shared: bool) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|thread| {
            let store = store.clone();
            thread::spawn(move || {
                let keys: Vec<[CounterOp; 1]> = (0..10_000)
                    .map(|index| {
                        let key = if shared {
                            "1|edge|3600|user_id?shared".to_string()
                        } else {
                            format!("1|edge|3600|user_id?{thread}-{index}")
                        };
                        [CounterOp {
                            key,
                            window_secs: 3_600,
                            delta: 1,
                            limit: u64::MAX,
                        }]
                    })
                    .collect();
                for iteration in 0..iterations {
                    black_box(
                        now(store.apply(&keys[iteration as usize % keys.len()])).expect("counted"),
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a bench thread finishes");
    }
    started.elapsed()
}

/// One whole decision on the memory store, as the gRPC service makes it: validate the request,
/// match, count, and build the response.
fn whole_check(c: &mut Criterion) {
    let limits = (0..5)
        .map(|index| {
            format!(
                "  - {{key: d{index}, rate_limit: {{unit: hour, requests_per_unit: 1000000000}}}}\n"
            )
        })
        .collect::<String>();
    let yaml = format!("domain: bench\ndescriptors:\n{limits}");
    let config = Config::from_sources([("bench.yaml", yaml.as_str())]).expect("valid limits");
    let clock = Arc::new(SystemClock);
    let store = Arc::new(MemoryStore::new(1_000_000, clock));
    let metrics = Arc::new(Metrics::new(100));
    let options = LimiterOptions {
        modes: Modes::default(),
        near_limit_ratio: 0.8,
        max_match_bytes: 1 << 20,
        blocked_cache_keys: 0,
    };
    let limiter = Limiter::new(store, metrics, options);
    limiter.install(config);
    let bounds = RequestLimits {
        max_descriptors: 64,
        max_entries: 32,
        max_key_bytes: 256,
        max_value_bytes: 4096,
    };
    let options = ResponseOptions::default();
    let mut group = c.benchmark_group("whole check, memory store");
    for descriptors in [1, 5] {
        let requests: Vec<RateLimitRequest> = (0..1_000)
            .map(|user| RateLimitRequest {
                domain: "bench".into(),
                descriptors: (0..descriptors)
                    .map(|index| RateLimitDescriptor {
                        entries: vec![Entry {
                            key: format!("d{index}"),
                            value: format!("user-{user}"),
                        }],
                        ..Default::default()
                    })
                    .collect(),
                hits_addend: 1,
            })
            .collect();
        let mut next = 0;
        group.bench_function(format!("{descriptors} descriptor(s)"), |b| {
            b.iter(|| {
                next = (next + 1) % requests.len();
                let request = &requests[next];
                let check = validate(request, &bounds).expect("a valid request");
                let decision = now(limiter.check(&check)).expect("counted");
                black_box(build(request, &decision, &options))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching, encoding, increments, whole_check);
criterion_main!(benches);
