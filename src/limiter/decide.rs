//! One decision, in four steps: plan every descriptor (match, key), drop the replaced ones, ask
//! the store about the counted ones in one batch (or answer a known-blocked counter from the
//! local cache), and read the counts back into outcomes.

use std::time::Instant;

use smallvec::SmallVec;

use super::explain;
use super::plan::{Applied, Plan, drop_replaced, plan};
use super::{Caller, Check, CheckError, Counted, Decision, DescriptorCheck, Limiter, Outcome};
use crate::config::MatchBudget;
use crate::store::{Count, CounterOp, StoreError};
use crate::throttled;
use crate::trace;

/// One entry per descriptor of a request: requests have a few, so up to four stay inline and
/// the usual request allocates none of these.
type PerDescriptor<T> = SmallVec<[T; 4]>;

/// A counted descriptor once the store has been asked or spared: where its count comes from.
enum Source {
    /// The store's answer to `ops[index]`.
    Store(usize),
    /// The local cache of counters known to be over their limit.
    Blocked(Count),
}

/// A descriptor between the store call and its outcome.
enum Step<'c> {
    NoLimit,
    Unlimited,
    Counted(Applied<'c>, Source),
}

impl<'c> Step<'c> {
    /// The stats key of the config rule the descriptor was counted against.
    fn rule(&self) -> Option<&'c str> {
        match self {
            Step::Counted(applied, _) => applied.rule.map(|rule| rule.path_key.as_str()),
            Step::NoLimit | Step::Unlimited => None,
        }
    }
}

impl Limiter {
    pub(super) async fn decide(
        &self,
        check: &Check<'_>,
        caller: Caller,
    ) -> Result<Decision, CheckError> {
        let limits = self.limits.load();
        let domain = limits.config().domain(check.domain);
        let mut budget = MatchBudget::new(self.max_match_bytes);
        let mut plans: PerDescriptor<Plan> = check
            .descriptors
            .iter()
            .map(|descriptor| plan(domain, descriptor, &mut budget))
            .collect::<Result<_, _>>()?;
        drop_replaced(&mut plans);

        // The blocked cache's clock: the request's arrival, microseconds ago.
        let now = caller.arrived;
        let mut ops = PerDescriptor::new();
        let steps: PerDescriptor<Step> = plans
            .into_iter()
            .zip(&check.descriptors)
            .map(|(plan, descriptor)| self.step(plan, descriptor, now, &mut ops))
            .collect();
        let counts = self.count(&ops, caller.deadline).await?;
        let explain = explain::admit().map(|held_back| {
            let rules: Vec<Option<&str>> = steps.iter().map(Step::rule).collect();
            (held_back, rules)
        });

        let outcomes: Vec<Outcome> = steps
            .into_iter()
            .zip(&check.descriptors)
            .map(|(step, descriptor)| match step {
                Step::NoLimit => Outcome::NoLimit {
                    quota: self.modes.global_quota,
                },
                Step::Unlimited => Outcome::Unlimited,
                Step::Counted(limit, source) => {
                    let count = self.read(source, &ops, &counts, limit, now);
                    let counted = self.counted(limit, count);
                    self.record(&limits, limit, descriptor, &counted);
                    Outcome::Counted(counted)
                }
            })
            .collect();
        let decision = Decision {
            over_limit: self.overall_over_limit(&outcomes),
            outcomes,
        };
        if let Some((held_back, rules)) = explain {
            explain::log(held_back, check, &rules, &decision);
        }
        Ok(decision)
    }

    /// Where a planned descriptor's count will come from: the blocked cache when it knows the
    /// counter is over (and the request adds hits), else a new op for the store (the key moved
    /// into it, not copied).
    fn step<'c>(
        &self,
        plan: Plan<'c>,
        descriptor: &DescriptorCheck<'_>,
        now: Instant,
        ops: &mut PerDescriptor<CounterOp>,
    ) -> Step<'c> {
        let (limit, key) = match plan {
            Plan::NoLimit => return Step::NoLimit,
            Plan::Unlimited => return Step::Unlimited,
            Plan::Counted { limit, key } => (limit, key),
        };
        let known = (descriptor.hits >= 0)
            .then(|| {
                self.blocked
                    .as_ref()?
                    .get(&key, limit.requests_per_unit, now)
            })
            .flatten();
        let source = match known {
            Some(count) => Source::Blocked(count),
            None => {
                ops.push(CounterOp {
                    key,
                    window_secs: limit.unit.seconds(),
                    delta: descriptor.hits,
                    limit: u64::from(limit.requests_per_unit),
                });
                Source::Store(ops.len() - 1)
            }
        };
        Step::Counted(limit, source)
    }

    /// One store call for every op, bounded by `deadline`, counted, and timed when the store is
    /// remote; exactly one count per op.
    async fn count(
        &self,
        ops: &[CounterOp],
        deadline: Option<Instant>,
    ) -> Result<Vec<Count>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let span = self
            .tracer
            .as_ref()
            .and_then(|tracer| tracer.store_span(self.store.kind(), ops.len()));
        let counts = if self.store.is_remote() {
            let started = Instant::now();
            let counts = self.store.apply_by(ops, deadline).await;
            self.metrics
                .store_duration
                .observe(started.elapsed().as_secs_f64());
            counts
        } else {
            self.store.apply_by(ops, deadline).await
        };
        if let Some(span) = span {
            trace::end(
                &span,
                Vec::new(),
                counts.as_ref().err().map(ToString::to_string),
            );
        }
        let counts = counts.and_then(|counts| {
            if counts.len() == ops.len() {
                Ok(counts)
            } else {
                Err(StoreError::Protocol(format!(
                    "{} counts for {} operations",
                    counts.len(),
                    ops.len()
                )))
            }
        });
        if let Err(error) = &counts {
            self.metrics.store_errors.inc();
            if matches!(error, StoreError::Timeout(_)) {
                self.metrics.store_deadlines_passed.inc();
            }
            throttled!(WARN, %error, "counter store call failed");
        }
        counts
    }

    /// A descriptor's count, from the store's answer (which the blocked cache learns) or from
    /// the cache.
    fn read(
        &self,
        source: Source,
        ops: &[CounterOp],
        counts: &[Count],
        limit: Applied<'_>,
        now: Instant,
    ) -> Count {
        match source {
            Source::Store(index) => {
                // Within bounds: `count` returned one count per op.
                let count = counts[index];
                if let Some(blocked) = &self.blocked {
                    blocked.learn(&ops[index].key, limit.requests_per_unit, count, now);
                }
                count
            }
            Source::Blocked(count) => {
                self.metrics.blocked_cache_hits.inc();
                count
            }
        }
    }

    fn counted(&self, limit: Applied<'_>, count: Count) -> Counted {
        let Applied {
            rule,
            unit,
            requests_per_unit,
            ..
        } = limit;
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
    /// every one of them is over; never under global shadow mode (which counts what it let
    /// through).
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
        let over = regular_over || all_quotas_over;
        if over && self.modes.global_shadow {
            self.metrics.global_shadow_mode.inc();
        }
        over && !self.modes.global_shadow
    }
}
