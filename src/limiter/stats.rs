//! A counted descriptor's hits in its rule's metrics, apportioned as the Go service does; hits a
//! limit refused without counting them are all over the limit.

use super::limits::Limits;
use super::plan::Applied;
use super::{Counted, DescriptorCheck, Limiter};
use crate::metrics::RuleCounters;

impl Limiter {
    /// Adds a counted descriptor's hits to its rule's metrics. Labels come from the config; a
    /// request's own limit is labelled as the Go service's stats key names it, by its entries'
    /// keys and values (series built from request values are capped).
    pub(super) fn record(
        &self,
        limits: &Limits,
        limit: &Applied<'_>,
        descriptor: &DescriptorCheck<'_>,
        counted: &Counted,
    ) {
        let Ok(hits) = u64::try_from(descriptor.hits) else {
            return;
        };
        self.decisions
            .count(counted.algorithm, !counted.over_limit && !counted.refused);
        let capacity = u64::from(counted.capacity);
        let near_threshold = (capacity as f64 * self.near_limit_ratio).floor() as u64;
        let record = |counters: &RuleCounters, shadow: bool| {
            if counted.refused {
                counters.record_refused(hits, shadow)
            } else {
                counters.record(hits, counted.count, capacity, near_threshold, shadow)
            }
        };
        let domain = &limit.domain.name;
        let values = || {
            descriptor
                .entries
                .iter()
                .map(|entry| entry.value.as_str())
                .collect::<Vec<_>>()
        };
        match limit.rule {
            Some(rule) if rule.has_dynamic_stats() => {
                let segments = rule.stats_segments(&values());
                let counters = self.metrics.dynamic_rule_counters(domain, &segments);
                record(&counters, rule.shadow_mode);
            }
            Some(rule) => {
                let counters = limits.rule_counters(limit.domain, rule, || {
                    self.metrics
                        .rule_counters(domain, &rule.stats_segments(&values()))
                });
                record(counters, rule.shadow_mode);
            }
            None => {
                let segments: Vec<String> = descriptor
                    .entries
                    .iter()
                    .map(|entry| override_segment(&entry.key, &entry.value))
                    .collect();
                record(
                    &self.metrics.dynamic_rule_counters(domain, &segments),
                    false,
                );
            }
        }
    }
}

/// A request-level limit's stats key segment, as the Go service writes it: `key_value`, or
/// `key` when the value is empty.
fn override_segment(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key}_{value}")
    }
}
