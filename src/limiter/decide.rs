//! One decision, in four steps: plan every descriptor (match, keys), drop the replaced ones, ask
//! the store about the counted ones in one batch (or answer a known-blocked counter from the
//! local cache), and read the counts back into outcomes.

use std::time::Instant;

use smallvec::SmallVec;

use super::explain;
use super::plan::{Applied, Plan, drop_replaced, plan, stop_when_over};
use super::{Caller, Check, CheckError, Counted, Decision, DescriptorCheck, Limiter, Outcome};
use crate::config::MatchBudget;
use crate::store::{Count, CounterOp, StoreError};
use crate::throttled;
use crate::trace;

/// One entry per descriptor of a request: requests have a few, so up to four stay inline and
/// the usual request allocates none of these.
type PerDescriptor<T> = SmallVec<[T; 4]>;

/// A counted descriptor once the store has been asked or spared: where its counts come from.
enum Source {
    /// The store's answers to `ops[first..]`, one per limit.
    Store { first: usize },
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
        if self.modes.stop_increment_when_over {
            let blocked = steps
                .iter()
                .any(|step| matches!(step, Step::Counted(_, Source::Blocked(_))));
            stop_when_over(&mut ops, blocked);
        }
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
                    let counted = match source {
                        Source::Store { first } => {
                            let answered = &counts[first..first + limit.rates.len()];
                            self.learn(&limit, &ops[first], answered, now);
                            self.counted(&limit, answered)
                        }
                        Source::Blocked(count) => {
                            self.metrics.blocked_cache_hits.inc();
                            self.counted(&limit, &[count])
                        }
                    };
                    self.record(&limits, &limit, descriptor, &counted);
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

    /// Where a planned descriptor's counts will come from: the blocked cache when it knows the
    /// counter is over (a lone fixed window, and the request adds hits), else new ops for the
    /// store (the keys moved into them, not copied).
    fn step<'c>(
        &self,
        plan: Plan<'c>,
        descriptor: &DescriptorCheck<'_>,
        now: Instant,
        ops: &mut PerDescriptor<CounterOp>,
    ) -> Step<'c> {
        let limit = match plan {
            Plan::NoLimit => return Step::NoLimit,
            Plan::Unlimited => return Step::Unlimited,
            Plan::Counted(limit) => limit,
        };
        let first = ops.len();
        ops.extend(limit.ops(descriptor));
        let known = (limit.counts_all() && descriptor.hits >= 0)
            .then(|| {
                let requests_per_unit = limit.rates[0].requests_per_unit;
                self.blocked
                    .as_ref()?
                    .get(&ops[first].key, requests_per_unit, now)
            })
            .flatten();
        let source = match known {
            Some(count) => {
                ops.truncate(first);
                Source::Blocked(count)
            }
            None => Source::Store { first },
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

    /// Lets the blocked cache learn a lone fixed window's count from the store.
    fn learn(&self, limit: &Applied<'_>, op: &CounterOp, counts: &[Count], now: Instant) {
        if let (Some(blocked), true) = (&self.blocked, limit.counts_all()) {
            blocked.learn(&op.key, limit.rates[0].requests_per_unit, counts[0], now);
        }
    }

    /// The outcome of a descriptor counted against `limit`'s rates (`counts`, one each): over
    /// when any rate's hits do not fit, reported as the deciding rate: when refused, the
    /// refusing one with the longest wait; when admitted, the one with the least remaining.
    fn counted(&self, limit: &Applied<'_>, counts: &[Count]) -> Counted {
        let remaining = |index: usize| {
            u64::from(limit.rates[index].capacity()).saturating_sub(counts[index].value)
        };
        let over = counts.iter().any(|count| !count.fits);
        let deciding = (0..counts.len())
            .filter(|&index| !over || !counts[index].fits)
            .min_by_key(|&index| {
                let wait = std::cmp::Reverse(counts[index].resets_in);
                (if over { 0 } else { remaining(index) }, wait)
            })
            .unwrap_or_default();
        let rate = &limit.rates[deciding];
        let rule = limit.rule;
        let shadow = rule.is_some_and(|rule| rule.shadow_mode);
        Counted {
            over_limit: over && !shadow,
            refused: over && !limit.counts_all(),
            unit: rate.unit,
            unit_multiplier: rate.unit_multiplier,
            requests_per_unit: rate.requests_per_unit,
            capacity: rate.capacity(),
            algorithm: rate.algorithm,
            name: rate.name.clone(),
            count: counts[deciding].value,
            remaining: u32::try_from(remaining(deciding)).unwrap_or(u32::MAX),
            resets_in: counts[deciding].resets_in,
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
