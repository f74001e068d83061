//! The decision core: match each descriptor to its limit, turn the limited ones into counter
//! operations, hand them to the store in one batch, and read the counts back into statuses.
//!
//! The answers are envoyproxy/ratelimit's: OVER_LIMIT when the count after this hit exceeds the
//! limit, `replaces` drops the named rules for the request, shadow rules never block, and
//! quota-mode descriptors block only when all of them are over.

mod blocked;
mod plan;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::google::protobuf::Struct;

use crate::clock::Unit;
use crate::config::{Config, Rule};
use crate::metrics::Metrics;
use crate::store::{Count, CounterOp, CounterStore, StoreError};
pub use blocked::BlockedCounters;
use plan::{Plan, drop_replaced, plan};

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

/// Service-wide switches that change decisions (the Go service's `SHADOW_MODE`, `QUOTA_MODE`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Modes {
    /// Never answer OVER_LIMIT overall; statuses still show which descriptors are over.
    pub global_shadow: bool,
    /// Treat every descriptor as a quota descriptor.
    pub global_quota: bool,
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

#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub over_limit: bool,
    pub unit: Unit,
    pub requests_per_unit: u32,
    pub name: Option<String>,
    /// The count after this request's hits.
    pub count: u64,
    pub remaining: u32,
    pub resets_in: Duration,
    pub quota: bool,
    pub metadata: Option<Arc<Struct>>,
}

pub struct Limiter {
    config: Arc<ArcSwap<Config>>,
    store: Arc<dyn CounterStore>,
    modes: Modes,
    metrics: Arc<Metrics>,
    /// Share of a limit above which hits count as "near" it (the Go service's NEAR_LIMIT_RATIO).
    near_limit_ratio: f64,
    /// Counters known to be over their limit, answered without the store; for remote stores.
    blocked: Option<BlockedCounters>,
}

/// Where a counted descriptor's count comes from.
enum Source {
    /// The store's answer to `ops[index]`.
    Store(usize),
    /// The local cache of counters known to be over their limit.
    Blocked(Count),
}

impl Limiter {
    pub fn new(
        config: Arc<ArcSwap<Config>>,
        store: Arc<dyn CounterStore>,
        modes: Modes,
        metrics: Arc<Metrics>,
        near_limit_ratio: f64,
    ) -> Limiter {
        Limiter {
            config,
            store,
            modes,
            metrics,
            near_limit_ratio,
            blocked: None,
        }
    }

    /// Answers counters known to be over their limit from a local cache of at most `capacity`
    /// of them, without asking the store, until their window ends or for at most
    /// [`blocked::MAX_AGE`].
    pub fn with_blocked_cache(mut self, capacity: u64) -> Limiter {
        self.blocked = (capacity > 0).then(|| BlockedCounters::new(capacity));
        self
    }

    pub fn store(&self) -> &Arc<dyn CounterStore> {
        &self.store
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

    pub fn config(&self) -> &Arc<ArcSwap<Config>> {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Decides a request. Fails only when the store cannot be reached, so that the caller can
    /// tell Envoy "unavailable" and Envoy's `failure_mode_deny` decides.
    pub async fn check(&self, check: &Check<'_>) -> Result<Decision, StoreError> {
        let started = Instant::now();
        let decision = self.decide(check).await;
        self.metrics
            .check_duration
            .observe(started.elapsed().as_secs_f64());
        match &decision {
            Ok(decision) if decision.over_limit => self.metrics.checks_blocked.inc(),
            Ok(_) => self.metrics.checks_allowed.inc(),
            Err(_) => self.metrics.store_request_errors.inc(),
        }
        decision
    }

    async fn decide(&self, check: &Check<'_>) -> Result<Decision, StoreError> {
        let config = self.config.load_full();
        let domain = config.domain(check.domain);
        let mut plans: Vec<Plan> = check
            .descriptors
            .iter()
            .map(|descriptor| plan(domain, descriptor))
            .collect();
        drop_replaced(&mut plans);

        // The counters the store is asked about (keys moved, not copied), and where each
        // counted descriptor's count will come from.
        let mut ops = Vec::new();
        let plans: Vec<Plan<Source>> = plans
            .into_iter()
            .zip(&check.descriptors)
            .map(|(plan, descriptor)| match plan {
                Plan::NoLimit => Plan::NoLimit,
                Plan::Unlimited => Plan::Unlimited,
                Plan::Counted {
                    rule,
                    unit,
                    requests_per_unit,
                    counter: key,
                } => {
                    let known = (descriptor.hits >= 0)
                        .then(|| self.blocked.as_ref()?.get(&key, requests_per_unit))
                        .flatten();
                    let source = match known {
                        Some(count) => Source::Blocked(count),
                        None => {
                            ops.push(CounterOp {
                                key,
                                window_secs: unit.seconds(),
                                delta: descriptor.hits,
                            });
                            Source::Store(ops.len() - 1)
                        }
                    };
                    Plan::Counted {
                        rule,
                        unit,
                        requests_per_unit,
                        counter: source,
                    }
                }
            })
            .collect();
        let counts = if ops.is_empty() {
            Vec::new()
        } else {
            self.apply(&ops).await?
        };
        if counts.len() != ops.len() {
            return Err(StoreError::Protocol(format!(
                "{} counts for {} operations",
                counts.len(),
                ops.len()
            )));
        }

        let outcomes: Vec<Outcome> = plans
            .into_iter()
            .zip(&check.descriptors)
            .map(|(plan, descriptor)| match plan {
                Plan::NoLimit => Outcome::NoLimit {
                    quota: self.modes.global_quota,
                },
                Plan::Unlimited => Outcome::Unlimited,
                Plan::Counted {
                    rule,
                    unit,
                    requests_per_unit,
                    counter: source,
                } => {
                    let count = match source {
                        Source::Store(index) => {
                            // Within bounds: `counts` has one count per op, checked above.
                            let count = counts[index];
                            if let Some(blocked) = &self.blocked {
                                blocked.learn(&ops[index].key, requests_per_unit, count);
                            }
                            count
                        }
                        Source::Blocked(count) => {
                            self.metrics.blocked_cache_hits.inc();
                            count
                        }
                    };
                    let counted = self.counted(rule, unit, requests_per_unit, count);
                    self.record(check.domain, rule, descriptor, &counted);
                    Outcome::Counted(counted)
                }
            })
            .collect();
        Ok(Decision {
            over_limit: self.overall_over_limit(&outcomes),
            outcomes,
        })
    }

    /// One store call, timed and counted.
    async fn apply(&self, ops: &[CounterOp]) -> Result<Vec<Count>, StoreError> {
        let started = Instant::now();
        let counts = self.store.apply(ops).await;
        self.metrics
            .store_duration
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &counts {
            self.metrics.store_errors.inc();
            tracing::warn!(%error, "counter store call failed");
        }
        counts
    }

    fn counted(
        &self,
        rule: Option<&Rule>,
        unit: Unit,
        requests_per_unit: u32,
        count: Count,
    ) -> Counted {
        let over = count.value > u64::from(requests_per_unit);
        let shadow = rule.is_some_and(|rule| rule.shadow_mode);
        Counted {
            over_limit: over && !shadow,
            unit,
            requests_per_unit,
            name: rule.and_then(|rule| rule.name.clone()),
            count: count.value,
            remaining: u64::from(requests_per_unit).saturating_sub(count.value) as u32,
            resets_in: count.resets_in,
            quota: self.modes.global_quota || rule.is_some_and(|rule| rule.quota_mode),
            metadata: rule.and_then(|rule| rule.metadata.clone()),
        }
    }

    /// OVER_LIMIT when any regular descriptor is over, or when there are quota descriptors and
    /// every one of them is over; never under global shadow mode.
    fn overall_over_limit(&self, outcomes: &[Outcome]) -> bool {
        let regular_over = outcomes.iter().any(|outcome| match outcome {
            Outcome::Counted(counted) => counted.over_limit && !counted.quota,
            _ => false,
        });
        let mut quotas = outcomes.iter().filter_map(|outcome| match outcome {
            Outcome::Counted(counted) if counted.quota => Some(counted.over_limit),
            Outcome::NoLimit { quota: true } => Some(false),
            _ => None,
        });
        let all_quotas_over = quotas
            .next()
            .is_some_and(|first| first && quotas.all(|over| over));
        (regular_over || all_quotas_over) && !self.modes.global_shadow
    }
}
