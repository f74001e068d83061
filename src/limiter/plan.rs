//! Planning a request: which limits each descriptor falls under (its rule's, or the request's
//! own) and the keys of the counters it is counted in, before anything is counted.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::algorithm::Algorithm;
use crate::config::{DomainTree, Limit, MatchBudget, MatchBudgetSpent, Rate, Rule};
use crate::key::{self, Scope};
use crate::store::{Admission, CounterOp};

use super::{DescriptorCheck, LimitOverride};

/// What one descriptor needs, found before the store is asked.
pub(super) enum Plan<'c> {
    NoLimit,
    Unlimited,
    Counted(Applied<'c>),
}

/// The limits a counted descriptor is counted against.
pub(super) struct Applied<'c> {
    pub domain: &'c DomainTree,
    /// The config's rule; `None` for a request's own limit.
    pub rule: Option<&'c Rule>,
    /// One limit, or a list's (in config order).
    pub rates: Cow<'c, [Rate]>,
    /// The limits are a list: all or nothing.
    pub listed: bool,
}

pub(super) fn plan<'c>(
    domain: Option<&'c DomainTree>,
    descriptor: &DescriptorCheck<'_>,
    budget: &mut MatchBudget,
) -> Result<Plan<'c>, MatchBudgetSpent> {
    let Some(domain) = domain else {
        return Ok(Plan::NoLimit);
    };
    if let Some(LimitOverride {
        unit,
        requests_per_unit,
    }) = descriptor.limit_override
    {
        return Ok(Plan::Counted(Applied {
            domain,
            rule: None,
            rates: Cow::Owned(vec![Rate::fixed(unit, requests_per_unit)]),
            listed: false,
        }));
    }
    let pairs = descriptor
        .entries
        .iter()
        .map(|entry| (entry.key.as_str(), entry.value.as_str()));
    let Some(rule) = domain.find(pairs, budget)? else {
        return Ok(Plan::NoLimit);
    };
    Ok(match &rule.limit {
        Limit::Unlimited { .. } => Plan::Unlimited,
        limit => Plan::Counted(Applied {
            domain,
            rule: Some(rule),
            rates: Cow::Borrowed(limit.rates()),
            listed: matches!(limit, Limit::List(_)),
        }),
    })
}

impl Applied<'_> {
    /// Whether the descriptor is counted as the Go service counts: one fixed window of a rule or
    /// of the request, every hit counted, over the limit too.
    pub(super) fn counts_all(&self) -> bool {
        !self.listed && self.rates[0].algorithm == Algorithm::FixedWindow
    }

    /// The store ops that count `descriptor` against these limits, one per limit, decided
    /// together when they are a list.
    pub(super) fn ops<'a>(
        &'a self,
        descriptor: &'a DescriptorCheck<'_>,
    ) -> impl Iterator<Item = CounterOp> + 'a {
        self.rates.iter().enumerate().map(move |(index, rate)| {
            let admission = match index {
                _ if self.counts_all() => Admission::CountAll,
                0 => Admission::Fit,
                _ => Admission::WithPrevious,
            };
            CounterOp {
                key: self.key(rate, descriptor),
                algorithm: rate.algorithm,
                window_ms: rate.window_secs() * 1_000,
                limit: rate.requests_per_unit.into(),
                burst: rate.burst.into(),
                delta: descriptor.hits,
                admission,
            }
        })
    }

    /// The key of `rate`'s counter for `descriptor`.
    fn key(&self, rate: &Rate, descriptor: &DescriptorCheck<'_>) -> String {
        let window_secs = rate.window_secs();
        let Some(rule) = self.rule else {
            let scope = Scope::Override {
                window_secs,
                requests_per_unit: rate.requests_per_unit,
            };
            let levels = descriptor.entries.iter().map(|entry| key::Level::Exact {
                key: &entry.key,
                value: &entry.value,
            });
            return key::encode(&self.domain.name, scope, levels);
        };
        let scope = if self.counts_all() {
            Scope::Rule { window_secs }
        } else {
            Scope::Limit {
                algorithm: rate.algorithm,
                window_secs,
                listed: self.listed,
            }
        };
        let values = descriptor.entries.iter().map(|entry| entry.value.as_str());
        key::encode(&self.domain.name, scope, rule.key_levels(values))
    }
}

/// The Go service's STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT: a request's ops in one run, so
/// that when one goes over its limit the others are not counted (the count-all windows going over
/// still are, see [`crate::store::is_counted`]). A key named again starts a new run, as the ops
/// of a run count distinct keys. When a descriptor is already known to be over (`blocked`, the
/// local cache), every op only looks.
pub(super) fn stop_when_over(ops: &mut [CounterOp], blocked: bool) {
    if blocked {
        ops.iter_mut().for_each(|op| op.delta = 0);
        return;
    }
    // Each key is hashed once: comparing every op with every earlier one of its run would cost
    // the square of a request's ops (up to 64 descriptors of 16 limits) in key bytes.
    let mut run: HashSet<&str> = HashSet::with_capacity(ops.len());
    let starts_run: Vec<bool> = ops
        .iter()
        .map(|op| {
            let repeated = !run.insert(&op.key);
            if repeated {
                run.clear();
                run.insert(&op.key);
            }
            repeated
        })
        .collect();
    for (op, starts_run) in ops.iter_mut().zip(starts_run).skip(1) {
        op.admission = if starts_run {
            op.admission.alone()
        } else {
            op.admission.joined()
        };
    }
}

/// Drops every counted rule with a name another counted rule of this request `replaces`.
pub(super) fn drop_replaced(plans: &mut [Plan<'_>]) {
    let replaced: Vec<&str> = plans
        .iter()
        .filter_map(|plan| match plan {
            Plan::Counted(Applied {
                rule: Some(rule), ..
            }) => Some(rule.replaces.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    if replaced.is_empty() {
        return;
    }
    for plan in plans.iter_mut() {
        let is_replaced = matches!(plan, Plan::Counted(Applied { rule: Some(rule), .. })
            if rule.names().any(|name| replaced.contains(&name)));
        if is_replaced {
            *plan = Plan::NoLimit;
        }
    }
}
