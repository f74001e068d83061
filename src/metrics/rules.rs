//! The per-rule counters (`ratelimit_service_rate_limit_*`), labelled `domain`, `key1`, `key2` as
//! the Go service's default statsd_exporter mapping labels them: `key1` is the first level of the
//! rule's stats key and `key2` the second; deeper levels are left out, so keys that differ only
//! there share a series. Each stats key is also counted whole, for the Go statsd names. And the
//! cap on series whose labels come from request values.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, Registry};

use super::define::counter_vec;

/// Label value standing for every stats key beyond the series cap, or too long to be a label.
pub const OVERFLOW_KEY: &str = "_overflow_";

/// The longest stats key built from request values that gets series of its own; longer ones
/// count under [`OVERFLOW_KEY`], so that the capped series also take bounded memory.
const MAX_DYNAMIC_KEY_BYTES: usize = 512;

/// The five families twice (as Prometheus labels them, and by whole stats key), and the
/// series built from request values so far.
pub(super) struct RuleSeries {
    labelled: RuleFamilies,
    /// Labelled `domain` and `key` (every level of the stats key after the domain, joined with
    /// dots), in a registry of their own that is never scraped.
    whole_keys: Registry,
    by_key: RuleFamilies,
    dynamic: Mutex<HashMap<(String, String), RuleCounters>>,
    max_dynamic: usize,
}

struct RuleFamilies {
    total_hits: IntCounterVec,
    over_limit: IntCounterVec,
    near_limit: IntCounterVec,
    within_limit: IntCounterVec,
    shadow_mode: IntCounterVec,
}

/// The per-rule counters of one stats key, resolved once and kept.
#[derive(Clone, Debug)]
pub struct RuleCounters {
    labelled: Counts,
    by_key: Counts,
}

/// The five counters of one series.
#[derive(Clone, Debug)]
struct Counts {
    total_hits: IntCounter,
    over_limit: IntCounter,
    near_limit: IntCounter,
    within_limit: IntCounter,
    shadow_mode: IntCounter,
}

impl RuleSeries {
    pub(super) fn new(registry: &Registry, max_dynamic: usize) -> RuleSeries {
        let whole_keys = Registry::new();
        RuleSeries {
            labelled: RuleFamilies::new(registry, &["domain", "key1", "key2"]),
            by_key: RuleFamilies::new(&whole_keys, &["domain", "key"]),
            whole_keys,
            dynamic: Mutex::new(HashMap::new()),
            max_dynamic,
        }
    }

    /// The counters of a stats key fixed by the config.
    pub(super) fn fixed(&self, domain: &str, segments: &[String]) -> RuleCounters {
        self.resolve(domain, &StatsKey::new(segments))
    }

    /// The counters of a stats key built from request values, within the cap.
    pub(super) fn dynamic(&self, domain: &str, segments: &[String]) -> RuleCounters {
        let key = StatsKey::new(segments);
        let lookup = (domain.to_string(), key.whole.clone());
        let mut series = self
            .dynamic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(counters) = series.get(&lookup) {
            return counters.clone();
        }
        if series.len() >= self.max_dynamic || key.whole.len() > MAX_DYNAMIC_KEY_BYTES {
            return self.resolve(domain, &StatsKey::overflow());
        }
        let counters = self.resolve(domain, &key);
        series.insert(lookup, counters.clone());
        counters
    }

    /// The per-rule counters by whole stats key (labels `domain` and `key`).
    pub(super) fn by_whole_key(&self) -> Vec<MetricFamily> {
        self.whole_keys.gather()
    }

    fn resolve(&self, domain: &str, key: &StatsKey) -> RuleCounters {
        let domain = clean(domain);
        RuleCounters {
            labelled: self.labelled.resolve(&[&domain, &key.key1, &key.key2]),
            by_key: self.by_key.resolve(&[&domain, &key.whole]),
        }
    }
}

impl RuleFamilies {
    fn new(registry: &Registry, labels: &[&str]) -> RuleFamilies {
        let family = |name: &str, help: &str| counter_vec(registry, name, help, labels);
        RuleFamilies {
            total_hits: family(
                "ratelimit_service_rate_limit_total_hits",
                "Hits counted against a rule",
            ),
            over_limit: family(
                "ratelimit_service_rate_limit_over_limit",
                "Hits over a rule's limit",
            ),
            near_limit: family(
                "ratelimit_service_rate_limit_near_limit",
                "Hits above --near-limit-ratio of a rule's limit, up to the limit",
            ),
            within_limit: family(
                "ratelimit_service_rate_limit_within_limit",
                "Hits of requests within a rule's limit",
            ),
            shadow_mode: family(
                "ratelimit_service_rate_limit_shadow_mode",
                "Hits over a shadow-mode rule's limit, let through",
            ),
        }
    }

    fn resolve(&self, labels: &[&str]) -> Counts {
        Counts {
            total_hits: self.total_hits.with_label_values(labels),
            over_limit: self.over_limit.with_label_values(labels),
            near_limit: self.near_limit.with_label_values(labels),
            within_limit: self.within_limit.with_label_values(labels),
            shadow_mode: self.shadow_mode.with_label_values(labels),
        }
    }
}

impl RuleCounters {
    /// Records `hits` that took a counter to `count` against `limit`, apportioned as the Go
    /// service does: hits above the limit are over, hits landing above `near_threshold` and up
    /// to the limit are near, and all hits of a request within the limit are within.
    pub fn record(&self, hits: u64, count: u64, limit: u64, near_threshold: u64, shadow: bool) {
        if hits == 0 {
            return;
        }
        let before = count.saturating_sub(hits);
        let near = count.min(limit).saturating_sub(before.max(near_threshold));
        let over = count.saturating_sub(before.max(limit));
        for counts in [&self.labelled, &self.by_key] {
            counts.add(hits, near, over, shadow);
        }
    }

    /// Records `hits` a limit refused without counting them (every algorithm but the Go
    /// service's fixed windows): all of them are over the limit.
    pub fn record_refused(&self, hits: u64, shadow: bool) {
        if hits == 0 {
            return;
        }
        for counts in [&self.labelled, &self.by_key] {
            counts.add(hits, 0, hits, shadow);
        }
    }
}

impl Counts {
    /// Adds a request's `hits`, of which `near` were near the limit and `over` over it.
    fn add(&self, hits: u64, near: u64, over: u64, shadow: bool) {
        self.total_hits.inc_by(hits);
        // Shared by every request of the rule: an addition of nothing is skipped, not made.
        if near > 0 {
            self.near_limit.inc_by(near);
        }
        if over > 0 {
            self.over_limit.inc_by(over);
            if shadow {
                self.shadow_mode.inc_by(over);
            }
        } else {
            self.within_limit.inc_by(hits);
        }
    }
}

/// A stats key's label values, with the Go service's sanitising ([`clean`]).
struct StatsKey {
    /// The first level.
    key1: String,
    /// The second level, empty when there is none.
    key2: String,
    /// Every level, joined with dots.
    whole: String,
}

impl StatsKey {
    fn new(segments: &[String]) -> StatsKey {
        let cleaned: Vec<String> = segments.iter().map(|segment| clean(segment)).collect();
        let level = |at: usize| cleaned.get(at).cloned().unwrap_or_default();
        StatsKey {
            key1: level(0),
            key2: level(1),
            whole: cleaned.join("."),
        }
    }

    fn overflow() -> StatsKey {
        StatsKey {
            key1: OVERFLOW_KEY.into(),
            key2: String::new(),
            whole: OVERFLOW_KEY.into(),
        }
    }
}

/// A label value as the Go service writes it: `:` and `|` (which statsd cannot carry) become
/// `_`, and so do control characters, which would break the lines of the text exposition (a
/// raw CR or newline).
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ':' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::MAX_DYNAMIC_KEY_BYTES;
    use crate::metrics::Metrics;

    /// (limit, hits, count after) -> (over, near, within), from envoyproxy/ratelimit's
    /// TestNearLimit with the default ratio 0.8.
    #[test]
    fn hits_are_apportioned_like_the_go_service() {
        let cases = [
            ((15, 1, 11), (0, 0, 1)),
            ((15, 1, 13), (0, 1, 1)),
            ((15, 1, 16), (1, 0, 0)),
            ((20, 3, 5), (0, 0, 3)),
            ((8, 2, 7), (0, 1, 2)),
            ((20, 3, 19), (0, 3, 3)),
            ((20, 3, 22), (2, 1, 0)),
            ((20, 7, 22), (2, 4, 0)),
            ((10, 3, 30), (3, 0, 0)),
        ];
        for ((limit, hits, count), expected) in cases {
            let metrics = Metrics::new(10);
            let counters = metrics.rule_counters("d", &["k".to_string()]);
            let threshold = (limit as f64 * 0.8).floor() as u64;
            counters.record(hits, count, limit, threshold, false);
            let got = (
                counters.labelled.over_limit.get(),
                counters.labelled.near_limit.get(),
                counters.labelled.within_limit.get(),
            );
            assert_eq!(got, expected, "limit {limit}, +{hits} to {count}");
            assert_eq!(counters.labelled.total_hits.get(), hits);
        }
    }

    fn scraped(metrics: &Metrics) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&metrics.registry().gather())
            .unwrap()
    }

    /// Go's TestFlushCounterWithDifferentLabels: `key2` is the second level only, so keys that
    /// differ below it add up in one series; each whole key is still counted on its own.
    #[test]
    fn levels_below_the_second_share_a_series_and_keep_their_whole_key() {
        let metrics = Metrics::new(10);
        let segments = |levels: &[&str]| levels.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        metrics
            .rule_counters("d", &segments(&["key3_val3", "key4_val4"]))
            .record(1, 1, 5, 4, false);
        metrics
            .dynamic_rule_counters("d", &segments(&["key3_val3", "key4_val4", "key5_val5"]))
            .record(2, 2, 5, 4, false);
        let text = scraped(&metrics);
        assert!(
            text.contains(
                r#"ratelimit_service_rate_limit_total_hits{domain="d",key1="key3_val3",key2="key4_val4"} 3"#
            ),
            "{text}"
        );
        assert!(!text.contains("key5"), "{text}");
        let whole = prometheus::TextEncoder::new()
            .encode_to_string(&metrics.rule_stats_by_key())
            .unwrap();
        for series in [
            r#"ratelimit_service_rate_limit_total_hits{domain="d",key="key3_val3.key4_val4"} 1"#,
            r#"ratelimit_service_rate_limit_total_hits{domain="d",key="key3_val3.key4_val4.key5_val5"} 2"#,
        ] {
            assert!(whole.contains(series), "{whole}");
        }
    }

    #[test]
    fn series_built_from_request_values_are_capped() {
        let metrics = Metrics::new(2);
        for value in ["a", "b", "c", "d"] {
            metrics
                .dynamic_rule_counters("d", &[format!("user_{value}")])
                .record(1, 1, 5, 4, false);
        }
        let text = scraped(&metrics);
        let series = text
            .lines()
            .filter(|l| l.starts_with("ratelimit_service_rate_limit_total_hits{"))
            .count();
        assert_eq!(series, 3, "two own series and one overflow:\n{text}");
        assert!(
            text.contains(
                r#"ratelimit_service_rate_limit_total_hits{domain="d",key1="_overflow_",key2=""} 2"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_stats_key_too_long_for_a_label_counts_as_overflow() {
        let metrics = Metrics::new(100);
        let long = format!("path_{}", "x".repeat(MAX_DYNAMIC_KEY_BYTES));
        metrics
            .dynamic_rule_counters("d", &["user_a".to_string(), long])
            .record(1, 1, 5, 4, false);
        let text = scraped(&metrics);
        assert!(
            text.contains(
                r#"ratelimit_service_rate_limit_total_hits{domain="d",key1="_overflow_",key2=""} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("xxxx"), "{text}");
    }
}
