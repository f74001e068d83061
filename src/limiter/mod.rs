//! The decision core: match each descriptor to its limit, turn the limited ones into counter
//! operations, hand them to the store in one batch, and read the counts back into statuses.
//!
//! The answers are envoyproxy/ratelimit's: OVER_LIMIT when the count after this hit exceeds the
//! limit, `replaces` drops the named rules for the request, shadow rules never block, and
//! quota-mode descriptors block only when all of them are over.

mod blocked;
mod decide;
mod decisions;
mod explain;
mod limits;
mod plan;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::google::protobuf::Struct;

use crate::algorithm::Algorithm;
use crate::clock::Unit;
use crate::config::{Config, MatchBudgetSpent};
use crate::key::CheckKey;
use crate::metrics::Metrics;
use crate::store::{CounterPage, CounterStore, Slide, StoreError};
use crate::trace::Tracer;
pub use blocked::BlockedCounters;
pub use limits::Limits;

/// A validated request: what to check, for which domain.
#[derive(Debug)]
pub struct Check<'r> {
    pub domain: &'r str,
    pub descriptors: Vec<DescriptorCheck<'r>>,
}

#[derive(Debug)]
pub struct DescriptorCheck<'r> {
    pub entries: &'r [Entry],
    /// The descriptor's own limit (`RateLimitDescriptor.limit`), used instead of the config's.
    pub limit_override: Option<LimitOverride>,
    /// What to add to the counter: positive to consume, zero to only check, negative to refund.
    pub hits: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitOverride {
    pub unit: Unit,
    pub requests_per_unit: u32,
}

/// When a check arrived, and until when its caller waits for the answer.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub arrived: Instant,
    /// When the store must have answered; `None` leaves the bound to the store
    /// (`--redis-timeout`).
    pub deadline: Option<Instant>,
}

impl Caller {
    /// A caller arriving now that sent no deadline.
    pub fn now() -> Caller {
        Caller {
            arrived: Instant::now(),
            deadline: None,
        }
    }
}

/// Service-wide switches that change decisions (the Go service's `SHADOW_MODE`, `QUOTA_MODE`,
/// `STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Modes {
    /// Never answer OVER_LIMIT overall; statuses still show which descriptors are over.
    pub global_shadow: bool,
    /// Treat every descriptor as a quota descriptor.
    pub global_quota: bool,
    /// When one descriptor of a request goes over its limit, count none of the others.
    pub stop_increment_when_over: bool,
}

/// The answer to a [`Check`]: one outcome per descriptor, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub over_limit: bool,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No rule applies: unknown domain, no match, a whitelist rule, or a replaced rule.
    NoLimit { quota: bool },
    /// The matched rule is `unlimited`.
    Unlimited,
    /// The descriptor was counted against a limit.
    Counted(Counted),
}

/// A counted descriptor, reported as its deciding limit (the only one, or the list's: when
/// refused, the refusing limit with the longest wait; when admitted, the one with the least
/// remaining).
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub over_limit: bool,
    /// The request's hits were refused uncounted (every algorithm but the Go service's fixed
    /// windows, which count hits over the limit too); also under shadow mode.
    pub refused: bool,
    pub unit: Unit,
    pub unit_multiplier: u32,
    pub requests_per_unit: u32,
    /// The most admitted at once: `requests_per_unit`, or a token bucket's burst.
    pub capacity: u32,
    pub algorithm: Algorithm,
    pub name: Option<String>,
    /// Hits in the window (or tokens taken from the bucket), after this request's when counted.
    pub count: u64,
    /// How many more hits fit now.
    pub remaining: u32,
    /// A fixed window: until it ends. Otherwise: until the refused hits would fit, or until one
    /// hit more than `remaining` would.
    pub resets_in: Duration,
    pub quota: bool,
    pub metadata: Option<Arc<Struct>>,
}

/// Why a request was not decided.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The counter store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Matching the request would take more work than one request may.
    #[error(transparent)]
    TooMuchWork(#[from] MatchBudgetSpent),
    /// No config could be loaded yet (started with `--allow-empty-config`).
    #[error("{}", crate::health::NO_CONFIG_LOADED)]
    NoConfig,
}

/// How the limiter decides, beyond the config.
#[derive(Clone, Copy, Debug)]
pub struct LimiterOptions {
    pub modes: Modes,
    /// Share of a limit above which hits count as "near" it (the Go service's NEAR_LIMIT_RATIO).
    pub near_limit_ratio: f64,
    /// Bytes of values that wildcard matching may scan for one request (`--max-match-bytes`).
    pub max_match_bytes: usize,
    /// Most counters known to be over their limit that are answered without the store (see
    /// [`BlockedCounters`]); 0 turns that cache off. Only a remote store gains from it.
    pub blocked_cache_keys: u64,
}

/// The decision core, and the only way the faces reach the counters: every check, listing and
/// reset goes through here, so that each is measured in one place.
pub struct Limiter {
    limits: ArcSwap<Limits>,
    /// Set while no config could be loaded: every check fails rather than allowing all.
    unconfigured: AtomicBool,
    /// The snapshot the latest [`Limiter::install`] replaced, dropped by the next one: requests
    /// that loaded it are done by then, so freeing it (milliseconds for a large config) happens
    /// on the reloading thread and never on a request's path.
    retired: Mutex<Option<Arc<Limits>>>,
    store: Arc<dyn CounterStore>,
    modes: Modes,
    metrics: Arc<Metrics>,
    near_limit_ratio: f64,
    max_match_bytes: usize,
    /// Counters known to be over their limit, answered without the store.
    blocked: Option<BlockedCounters>,
    /// With tracing on: a span for each store call.
    tracer: Option<Tracer>,
    decisions: decisions::Decisions,
}

impl Limiter {
    /// A limiter with no limits until [`Limiter::install`] gives it a config.
    pub fn new(
        store: Arc<dyn CounterStore>,
        metrics: Arc<Metrics>,
        options: LimiterOptions,
    ) -> Limiter {
        Limiter {
            limits: ArcSwap::from_pointee(Limits::default()),
            unconfigured: AtomicBool::new(false),
            retired: Mutex::new(None),
            store,
            modes: options.modes,
            decisions: decisions::Decisions::new(&metrics),
            metrics,
            near_limit_ratio: options.near_limit_ratio,
            max_match_bytes: options.max_match_bytes,
            blocked: (options.blocked_cache_keys > 0)
                .then(|| BlockedCounters::new(options.blocked_cache_keys)),
            tracer: None,
        }
    }

    /// This limiter, tracing each store call with `tracer` (a child of the caller's span).
    pub fn traced(mut self, tracer: Option<Tracer>) -> Limiter {
        self.tracer = tracer;
        self
    }

    /// Puts `config` in force: requests from now on see it whole, requests under way finish on
    /// the one they started with.
    pub fn install(&self, config: Config) {
        let replaced = self.limits.swap(Arc::new(Limits::new(config)));
        self.unconfigured.store(false, Ordering::Release);
        let previous = self
            .retired
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace(replaced);
        drop(previous);
    }

    /// Fails every check with [`CheckError::NoConfig`] until a config is installed: with no
    /// config, Envoy's `failure_mode_deny` decides, not an empty config that allows all.
    pub fn refuse_until_configured(&self) {
        self.unconfigured.store(true, Ordering::Release);
    }

    /// The limits in force.
    pub fn limits(&self) -> Arc<Limits> {
        self.limits.load_full()
    }

    /// Decides a request arriving now with no deadline (see [`Limiter::check_for`]).
    pub async fn check(&self, check: &Check<'_>) -> Result<Decision, CheckError> {
        self.check_for(check, Caller::now()).await
    }

    /// Decides a request for `caller`. Fails when no config is loaded (`--allow-empty-config`),
    /// when the store cannot be reached, or not by the caller's deadline, so that the caller can
    /// tell Envoy "unavailable" and Envoy's `failure_mode_deny` decides, or when matching it
    /// would take more work than one request may.
    pub async fn check_for(
        &self,
        check: &Check<'_>,
        caller: Caller,
    ) -> Result<Decision, CheckError> {
        if self.unconfigured.load(Ordering::Acquire) {
            self.metrics.service_errors.inc();
            return Err(CheckError::NoConfig);
        }
        let decision = self.decide(check, caller).await;
        self.metrics
            .check_duration
            .observe(caller.arrived.elapsed().as_secs_f64());
        match &decision {
            Ok(decision) => self.count_check(decision.over_limit),
            Err(CheckError::Store(_)) => self.metrics.store_request_errors.inc(),
            Err(CheckError::TooMuchWork(_) | CheckError::NoConfig) => {
                self.metrics.service_errors.inc();
            }
        }
        decision
    }

    /// One hit of a `POST /check` key against its sliding window (see [`crate::store::sliding`]).
    pub async fn slide(&self, check: &CheckKey) -> Result<Slide, StoreError> {
        let started = Instant::now();
        let window = Duration::from_millis(check.window_ms);
        let slide = self
            .store
            .slide(&check.encode(), window, check.limit, 1)
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.store_duration.observe(elapsed);
        self.metrics.check_duration.observe(elapsed);
        match &slide {
            Ok(slide) => self.count_check(!slide.allowed),
            Err(_) => self.metrics.store_errors.inc(),
        }
        slide
    }

    fn count_check(&self, blocked: bool) {
        if blocked {
            self.metrics.checks_blocked.inc();
        } else {
            self.metrics.checks_allowed.inc();
        }
    }

    /// A page of live counters whose key starts with `prefix` (see [`CounterStore::list`]).
    pub async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<CounterPage, StoreError> {
        self.store.list(prefix, cursor, limit).await
    }

    /// Resets one counter in the store and forgets it here if it was known to be blocked.
    /// Whether the store had it.
    pub async fn reset(&self, key: &str) -> Result<bool, StoreError> {
        let found = self.store.reset(key).await?;
        if let Some(blocked) = &self.blocked {
            blocked.forget(key);
        }
        Ok(found)
    }

    /// Whether the store is reached over the network, so that a caller's deadline matters.
    pub fn store_is_remote(&self) -> bool {
        self.store.is_remote()
    }

    /// The store's name for logs and `/health` (`memory`, `redis`).
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// Brings the store's figures in the metrics up to date (its size, its live evictions); the
    /// gauges keep their last values when the store cannot say.
    pub async fn measure_store(&self) {
        match self.store.approximate_len().await {
            Ok(counters) => self
                .metrics
                .observe_store(counters, self.store.live_evictions()),
            Err(error) => tracing::warn!(%error, "cannot size the counter store for /metrics"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    fn config(requests: u32) -> Config {
        let text = format!(
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {{unit: second, requests_per_unit: {requests}}}\n"
        );
        Config::from_sources([("d.yaml", text.as_str())]).unwrap()
    }

    #[test]
    fn a_replaced_config_is_freed_by_the_next_install_not_by_a_request() {
        let store = Arc::new(MemoryStore::new(10, Arc::new(ManualClock::new(0))));
        let options = LimiterOptions {
            modes: Modes::default(),
            near_limit_ratio: 0.8,
            max_match_bytes: 1 << 20,
            blocked_cache_keys: 0,
        };
        let limiter = Limiter::new(store, Arc::new(Metrics::new(10)), options);
        limiter.install(config(1));
        let first = Arc::downgrade(&limiter.limits());
        limiter.install(config(2));
        assert!(first.upgrade().is_some(), "kept after the first swap");
        limiter.install(config(3));
        assert!(first.upgrade().is_none(), "freed by the next one");
    }
}
