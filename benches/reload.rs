//! Reload cost and its effect on checks: (a) time to read, validate and swap a 10,000-rule
//! config; (b) check latency (p50/p99, in-process `Limiter::check`) with no reloads, with
//! reloads 100 ms apart (the watcher's pace under a stream of edits), and with reloads back to
//! back, as ratios against the no-reload baseline measured in the same run.
//!
//! Run: `cargo bench --bench reload`. Under `cargo test` it runs once at a small scale, to show
//! that it still works.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use ratelimiter::clock::SystemClock;
use ratelimiter::config::{Layout, Reload, Reloader};
use ratelimiter::limiter::{Check, DescriptorCheck, Limiter, LimiterOptions, Modes, Outcome};
use ratelimiter::metrics::Metrics;
use ratelimiter::store::MemoryStore;

/// Rules per descriptor key: one per value `v0`..`v9`.
const VALUES: usize = 10;

/// The watcher's pause between reloads under a stream of edits: its debounce window.
const WATCHER_INTERVAL: Duration = Duration::from_millis(100);

/// How big and how long: files x keys x `VALUES` rules.
struct Scale {
    domains: usize,
    keys: usize,
    timed_reloads: usize,
    phase: Duration,
}

/// 10 files x 100 keys x 10 values = 10,000 rules.
const FULL: Scale = Scale {
    domains: 10,
    keys: 100,
    timed_reloads: 20,
    phase: Duration::from_secs(3),
};

/// Under `cargo test`, in a debug build: enough to run every step.
const SMOKE: Scale = Scale {
    domains: 2,
    keys: 5,
    timed_reloads: 2,
    phase: Duration::from_millis(200),
};

/// A config directory and its reloader; each reload flips one limit, as an operator's edit
/// would, so that every reload is a real one.
struct Reloads<'s> {
    scale: &'s Scale,
    dir: tempfile::TempDir,
    reloader: Reloader,
    limiter: &'s Limiter,
    version: u32,
}

impl Reloads<'_> {
    fn write_config(&self) {
        for domain in 0..self.scale.domains {
            let mut yaml = format!("domain: d{domain}\ndescriptors:\n");
            for key in 0..self.scale.keys {
                yaml.push_str(&format!("  - key: k{key}\n    descriptors:\n"));
                for value in 0..VALUES {
                    // Limits no check reaches; the very first rule's changes with the version.
                    let requests = 1_000_000_000
                        + if domain + key + value == 0 {
                            self.version
                        } else {
                            0
                        };
                    yaml.push_str(&format!(
                        "      - key: v\n        value: v{value}\n        rate_limit: {{unit: minute, requests_per_unit: {requests}}}\n"
                    ));
                }
            }
            std::fs::write(self.dir.path().join(format!("d{domain}.yaml")), yaml)
                .expect("the temp dir is writable");
        }
    }

    /// Edits the config and times the reload, the swap included.
    fn reload(&mut self) -> Duration {
        self.version += 1;
        self.write_config();
        let started = Instant::now();
        let Reload::Loaded(config) = self.reloader.reload() else {
            panic!("not a real reload");
        };
        assert_eq!(config.domains().len(), self.scale.domains);
        self.limiter.install(config);
        started.elapsed()
    }
}

/// Latencies of one phase.
#[derive(Clone, Copy)]
struct Latencies {
    p50: Duration,
    p99: Duration,
    max: Duration,
    checks: usize,
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let index = ((sorted.len() as f64 * share) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// Checks one descriptor after another, across every rule, for one phase.
fn measure_checks(
    scale: &Scale,
    runtime: &tokio::runtime::Runtime,
    limiter: &Limiter,
) -> Latencies {
    let entries: Vec<[Entry; 2]> = (0..scale.keys * VALUES)
        .map(|i| {
            let key = Entry {
                key: format!("k{}", i % scale.keys),
                value: "x".into(),
            };
            let value = Entry {
                key: "v".into(),
                value: format!("v{}", i / scale.keys),
            };
            [key, value]
        })
        .collect();
    let domains: Vec<String> = (0..scale.domains).map(|d| format!("d{d}")).collect();
    let mut latencies = Vec::new();
    runtime.block_on(async {
        let end = Instant::now() + scale.phase;
        let mut i = 0;
        while Instant::now() < end {
            let check = Check {
                domain: &domains[i % domains.len()],
                descriptors: vec![DescriptorCheck {
                    entries: &entries[i % entries.len()],
                    limit_override: None,
                    hits: 1,
                }],
            };
            let started = Instant::now();
            let decision = limiter
                .check(&check)
                .await
                .expect("the memory store answers");
            latencies.push(started.elapsed());
            assert!(matches!(decision.outcomes[0], Outcome::Counted(_)));
            i += 1;
        }
    });
    latencies.sort();
    Latencies {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        checks: latencies.len(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let scale = if std::env::args().any(|arg| arg == "--bench") {
        &FULL
    } else {
        &SMOKE
    };
    let metrics = Arc::new(Metrics::new(10_000));
    let store = Arc::new(MemoryStore::new(1_000_000, Arc::new(SystemClock)));
    let options = LimiterOptions {
        modes: Modes::default(),
        near_limit_ratio: 0.8,
        max_match_bytes: 1 << 20,
        blocked_cache_keys: 0,
    };
    let limiter = Limiter::new(store, metrics, options);
    let dir = tempfile::tempdir().expect("a temp dir");
    let reloader = Reloader::new(dir.path(), Layout::default());
    let mut reloads = Reloads {
        scale,
        dir,
        reloader,
        limiter: &limiter,
        version: 0,
    };
    reloads.reload();
    let rules = limiter.limits().config().rule_count();

    let mut times: Vec<Duration> = (0..scale.timed_reloads).map(|_| reloads.reload()).collect();
    times.sort();
    let started = Instant::now();
    assert!(matches!(reloads.reloader.reload(), Reload::Unchanged));
    let unchanged = started.elapsed();
    println!(
        "(a) reload of {rules} rules in {} files (read + validate + swap), {} runs:",
        scale.domains, scale.timed_reloads
    );
    println!(
        "    median {:.1?}, max {:.1?}; unchanged files (read + compare only): {unchanged:.1?}",
        percentile(&times, 0.5),
        percentile(&times, 1.0),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let baseline = measure_checks(scale, &runtime, &limiter);
    let mut phases = vec![("no reloads", baseline, 0)];
    for (name, pause) in [
        ("reloads 100 ms apart", WATCHER_INTERVAL),
        ("reloads back to back", Duration::ZERO),
    ] {
        let stop = AtomicBool::new(false);
        let (measured, count) = std::thread::scope(|scope| {
            let reloading = scope.spawn(|| {
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) {
                    reloads.reload();
                    count += 1;
                    std::thread::sleep(pause);
                }
                count
            });
            let measured = measure_checks(scale, &runtime, &limiter);
            stop.store(true, Ordering::Relaxed);
            (measured, reloading.join().expect("the reload thread ends"))
        });
        phases.push((name, measured, count));
    }

    println!(
        "(b) Limiter::check latency, one descriptor at a time, {:?} per phase:",
        scale.phase
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for (name, phase, count) in &phases {
        println!(
            "    {name:<22} p50 {:>8.2?} ({:.2}x)  p99 {:>8.2?} ({:.2}x)  max {:>8.2?}  {} checks, {count} reloads",
            phase.p50,
            ratio(phase.p50, baseline.p50),
            phase.p99,
            ratio(phase.p99, baseline.p99),
            phase.max,
            phase.checks,
        );
    }
}
