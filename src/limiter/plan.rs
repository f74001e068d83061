//! Planning a request: which limit each descriptor falls under (its rule, or the request's own
//! limit) and the key of the counter it is counted in, before anything is counted.

use crate::clock::Unit;
use crate::config::{DomainTree, Limit, Rule};
use crate::key::{self, Scope};

use super::{DescriptorCheck, LimitOverride};

/// What one descriptor will need, found before the store is asked. `C` says where its counter
/// is: first its key, then (once the store has been asked) where its count comes from.
pub(super) enum Plan<'c, C = String> {
    NoLimit,
    Unlimited,
    Counted {
        rule: Option<&'c Rule>,
        unit: Unit,
        requests_per_unit: u32,
        counter: C,
    },
}

pub(super) fn plan<'c>(
    domain: Option<&'c DomainTree>,
    descriptor: &DescriptorCheck<'_>,
) -> Plan<'c> {
    let Some(domain) = domain else {
        return Plan::NoLimit;
    };
    let values = descriptor.entries.iter().map(|entry| entry.value.as_str());
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
        return Plan::Counted {
            rule: None,
            unit,
            requests_per_unit,
            counter: key::encode(&domain.name, scope, levels),
        };
    }
    let pairs = descriptor
        .entries
        .iter()
        .map(|entry| (entry.key.as_str(), entry.value.as_str()));
    match domain.find(pairs) {
        None => Plan::NoLimit,
        Some(rule) => match rule.limit {
            Limit::Unlimited => Plan::Unlimited,
            Limit::Limited {
                unit,
                requests_per_unit,
            } => Plan::Counted {
                rule: Some(rule),
                unit,
                requests_per_unit,
                counter: key::encode(
                    &domain.name,
                    Scope::Rule {
                        window_secs: unit.seconds(),
                    },
                    rule.key_levels(values),
                ),
            },
        },
    }
}

/// Drops every counted rule whose name another counted rule of this request `replaces`.
pub(super) fn drop_replaced(plans: &mut [Plan<'_>]) {
    let replaced: Vec<&str> = plans
        .iter()
        .filter_map(|plan| match plan {
            Plan::Counted {
                rule: Some(rule), ..
            } => Some(rule.replaces.iter().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    if replaced.is_empty() {
        return;
    }
    for plan in plans.iter_mut() {
        let is_replaced = matches!(plan, Plan::Counted { rule: Some(rule), .. }
            if rule.name.as_deref().is_some_and(|name| replaced.contains(&name)));
        if is_replaced {
            *plan = Plan::NoLimit;
        }
    }
}
