//! Planning a request: which limit each descriptor falls under (its rule, or the request's own
//! limit) and the key of the counter it is counted in, before anything is counted.

use crate::clock::Unit;
use crate::config::{DomainTree, Limit, MatchBudget, MatchBudgetSpent, Rule};
use crate::key::{self, Scope};

use super::{DescriptorCheck, LimitOverride};

/// What one descriptor needs, found before the store is asked.
pub(super) enum Plan<'c> {
    NoLimit,
    Unlimited,
    Counted { limit: Applied<'c>, key: String },
}

/// The limit a counted descriptor is counted against.
#[derive(Clone, Copy)]
pub(super) struct Applied<'c> {
    pub domain: &'c DomainTree,
    /// The config's rule; `None` for a request's own limit.
    pub rule: Option<&'c Rule>,
    pub unit: Unit,
    pub requests_per_unit: u32,
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
        let scope = Scope::Override {
            window_secs: unit.seconds(),
            requests_per_unit,
        };
        let levels = descriptor.entries.iter().map(|entry| key::Level::Exact {
            key: &entry.key,
            value: &entry.value,
        });
        return Ok(Plan::Counted {
            limit: Applied {
                domain,
                rule: None,
                unit,
                requests_per_unit,
            },
            key: key::encode(&domain.name, scope, levels),
        });
    }
    let pairs = descriptor
        .entries
        .iter()
        .map(|entry| (entry.key.as_str(), entry.value.as_str()));
    let Some(rule) = domain.find(pairs, budget)? else {
        return Ok(Plan::NoLimit);
    };
    Ok(match rule.limit {
        Limit::Unlimited => Plan::Unlimited,
        Limit::Limited {
            unit,
            requests_per_unit,
        } => {
            let values = descriptor.entries.iter().map(|entry| entry.value.as_str());
            let scope = Scope::Rule {
                window_secs: unit.seconds(),
            };
            Plan::Counted {
                limit: Applied {
                    domain,
                    rule: Some(rule),
                    unit,
                    requests_per_unit,
                },
                key: key::encode(&domain.name, scope, rule.key_levels(values)),
            }
        }
    })
}

/// Drops every counted rule whose name another counted rule of this request `replaces`.
pub(super) fn drop_replaced(plans: &mut [Plan<'_>]) {
    let replaced: Vec<&str> = plans
        .iter()
        .filter_map(|plan| match plan {
            Plan::Counted {
                limit: Applied {
                    rule: Some(rule), ..
                },
                ..
            } => Some(rule.replaces.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    if replaced.is_empty() {
        return;
    }
    for plan in plans.iter_mut() {
        let is_replaced = matches!(plan, Plan::Counted { limit: Applied { rule: Some(rule), .. }, .. }
            if rule.name.as_deref().is_some_and(|name| replaced.contains(&name)));
        if is_replaced {
            *plan = Plan::NoLimit;
        }
    }
}
