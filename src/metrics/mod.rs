//! Prometheus metrics: every name in one place. Names follow the seed design
//! (`ratelimiter_*`) and envoyproxy/ratelimit's Prometheus mapping (`ratelimit_service_*`), so
//! existing dashboards keep working.
//!
//! Per-rule counters are labelled `domain`, `key1`, `key2` as the Go service's statsd mapping
//! labels them (`key1` is the first level of the rule's stats key, `key2` the second; each whole
//! key is also counted, apart, for the Go statsd names). Label values
//! come from the config, never from requests, unless a rule asks for `detailed_metric` or
//! `value_to_metric`; even then the number of series is capped.

mod define;
mod rules;
mod timings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use define::{counter, counter_vec, gauge, histogram, histogram_vec};
use rules::RuleSeries;
pub use rules::{OVERFLOW_KEY, RuleCounters};
pub use timings::ResponseTimes;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};

/// The RLS method's name in `grpc_method` labels, as the Go service has it.
const SHOULD_RATE_LIMIT: &str = "ShouldRateLimit";

/// Counters that keep envoyproxy/ratelimit's Prometheus names, which lack the `_total` suffix
/// Prometheus asks of counters: dashboards query them by these names.
pub const GO_NAMED_COUNTERS: [&str; 10] = [
    "ratelimit_service_rate_limit_total_hits",
    "ratelimit_service_rate_limit_over_limit",
    "ratelimit_service_rate_limit_near_limit",
    "ratelimit_service_rate_limit_within_limit",
    "ratelimit_service_rate_limit_shadow_mode",
    "ratelimit_service_should_rate_limit_error",
    "ratelimit_service_total_requests",
    "ratelimit_service_config_load_success",
    "ratelimit_service_config_load_error",
    "ratelimit_service_global_shadow_mode",
];

pub struct Metrics {
    registry: Registry,
    /// `ratelimiter_requests_checked_total{result="allowed"}`
    pub checks_allowed: IntCounter,
    /// `ratelimiter_requests_checked_total{result="blocked"}`
    pub checks_blocked: IntCounter,
    pub check_duration: Histogram,
    pub node_up: IntGauge,
    pub active_counters: IntGauge,
    pub memory_live_evictions: IntCounter,
    pub store_errors: IntCounter,
    /// Store calls cut off by their deadline, sent to the store or not.
    pub store_deadlines_passed: IntCounter,
    pub store_duration: Histogram,
    pub config_load_success: IntCounter,
    pub config_load_error: IntCounter,
    /// 1 while the config files on disk are in force, 0 while they are refused.
    pub config_in_force: IntGauge,
    /// When the config in force was loaded, in seconds since the Unix epoch (0: never).
    pub config_loaded_at: IntGauge,
    /// `ratelimit_service_global_shadow_mode`: requests answered OK only because of
    /// `--global-shadow-mode` (the Go service's SHADOW_MODE).
    pub global_shadow_mode: IntCounter,
    /// `ratelimit_service_should_rate_limit_error{err_type="service_error"}`: refused requests.
    pub service_errors: IntCounter,
    /// `ratelimit_service_should_rate_limit_error{err_type="redis_error"}`: store failures.
    pub store_request_errors: IntCounter,
    /// `ratelimit_service_total_requests{grpc_method="ShouldRateLimit"}`
    pub should_rate_limit_calls: IntCounter,
    /// `ratelimit_service_response_time_seconds{grpc_method="ShouldRateLimit"}`
    pub should_rate_limit_time: Histogram,
    /// The same times one by one, for a statsd push.
    pub response_times: ResponseTimes,
    pub registry_heartbeat_failures: IntCounter,
    /// Descriptors answered over-limit from the local cache of blocked counters.
    pub blocked_cache_hits: IntCounter,
    /// `ratelimiter_tls_certificate_loads_total{listener, result}`
    certificate_loads: IntCounterVec,
    /// `ratelimiter_limit_decisions_total{algorithm, result}`: counted descriptors by the
    /// algorithm of the limit that decided them (labels from fixed sets; resolve once).
    pub limit_decisions: IntCounterVec,
    /// `ratelimiter_http_requests_total{route, status}`
    http_requests: IntCounterVec,
    /// `ratelimiter_http_request_duration_seconds{route, status}`
    http_duration: HistogramVec,
    /// The store's live evictions at the last [`Metrics::observe_store`], so that the counter
    /// moves by the difference.
    live_evictions_seen: AtomicU64,
    rules: RuleSeries,
}

impl Metrics {
    /// A fresh registry with every metric; at most `max_dynamic_series` stats keys that come
    /// from request values get their own series.
    pub fn new(max_dynamic_series: usize) -> Metrics {
        let r = Registry::new();
        let checked = counter_vec(
            &r,
            "ratelimiter_requests_checked_total",
            "Rate limit checks, by whether the request was allowed",
            &["result"],
        );
        let errors = counter_vec(
            &r,
            "ratelimit_service_should_rate_limit_error",
            "ShouldRateLimit calls that failed: service_error (bad request) or redis_error (counter store)",
            &["err_type"],
        );
        let grpc_calls = counter_vec(
            &r,
            "ratelimit_service_total_requests",
            "gRPC calls, by method",
            &["grpc_method"],
        );
        let grpc_time = histogram_vec(
            &r,
            "ratelimit_service_response_time_seconds",
            "gRPC call latency, by method",
            &["grpc_method"],
        );
        Metrics {
            checks_allowed: checked.with_label_values(&["allowed"]),
            checks_blocked: checked.with_label_values(&["blocked"]),
            check_duration: histogram(
                &r,
                "ratelimiter_check_duration_seconds",
                "Time to decide a rate limit check",
            ),
            node_up: gauge(
                &r,
                "ratelimiter_node_up",
                "1 while this node serves, 0 while it drains",
            ),
            active_counters: gauge(
                &r,
                "ratelimiter_active_counters",
                "Counters held by the store",
            ),
            memory_live_evictions: counter(
                &r,
                "ratelimiter_memory_live_evictions_total",
                "Counters the full memory store dropped before their window ended (those limits under-count)",
            ),
            store_errors: counter(
                &r,
                "ratelimiter_store_errors_total",
                "Counter store calls that failed",
            ),
            store_deadlines_passed: counter(
                &r,
                "ratelimiter_store_deadline_exceeded_total",
                "Counter store calls cut off by their deadline (the caller's grpc-timeout less a margin, else --redis-timeout), whether they had reached the store or not",
            ),
            store_duration: histogram(
                &r,
                "ratelimiter_store_duration_seconds",
                "Time of one counter store call (one batch); remote stores only",
            ),
            config_load_success: counter(
                &r,
                "ratelimit_service_config_load_success",
                "Config loads that succeeded",
            ),
            config_load_error: counter(
                &r,
                "ratelimit_service_config_load_error",
                "Config loads that failed (the previous config stays)",
            ),
            config_in_force: gauge(
                &r,
                "ratelimiter_config_in_force",
                "1 while the config files on disk are in force; 0 while they are refused (the last good config stays in force, or none if none ever loaded)",
            ),
            config_loaded_at: gauge(
                &r,
                "ratelimiter_config_last_load_success_timestamp_seconds",
                "When the config in force was loaded, in seconds since the Unix epoch (0: never)",
            ),
            global_shadow_mode: counter(
                &r,
                "ratelimit_service_global_shadow_mode",
                "Requests answered OK only because of global shadow mode",
            ),
            service_errors: errors.with_label_values(&["service_error"]),
            store_request_errors: errors.with_label_values(&["redis_error"]),
            should_rate_limit_calls: grpc_calls.with_label_values(&[SHOULD_RATE_LIMIT]),
            should_rate_limit_time: grpc_time.with_label_values(&[SHOULD_RATE_LIMIT]),
            response_times: ResponseTimes::default(),
            registry_heartbeat_failures: counter(
                &r,
                "ratelimiter_registry_heartbeat_failures_total",
                "Node registry heartbeats that could not be written",
            ),
            blocked_cache_hits: counter(
                &r,
                "ratelimiter_blocked_cache_hits_total",
                "Descriptors answered over-limit from this node's cache of blocked counters, without the store",
            ),
            certificate_loads: counter_vec(
                &r,
                "ratelimiter_tls_certificate_loads_total",
                "TLS certificate loads, by listener and result (loaded, or rejected: the previous certificate stays in use)",
                &["listener", "result"],
            ),
            limit_decisions: counter_vec(
                &r,
                "ratelimiter_limit_decisions_total",
                "Counted descriptors, by the algorithm of the limit that decided them and whether they were admitted",
                &["algorithm", "result"],
            ),
            http_requests: counter_vec(
                &r,
                "ratelimiter_http_requests_total",
                "HTTP API requests, by route pattern and status",
                &["route", "status"],
            ),
            http_duration: histogram_vec(
                &r,
                "ratelimiter_http_request_duration_seconds",
                "HTTP API request latency, by route pattern and status",
                &["route", "status"],
            ),
            live_evictions_seen: AtomicU64::new(0),
            rules: RuleSeries::new(&r, max_dynamic_series),
            registry: r,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one HTTP request. `route` is a route pattern from a fixed set, never the raw
    /// path, so that the series stay bounded.
    pub fn observe_http(&self, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Records one ShouldRateLimit call and its time.
    pub fn observe_should_rate_limit(&self, elapsed: Duration) {
        self.should_rate_limit_calls.inc();
        self.should_rate_limit_time.observe(elapsed.as_secs_f64());
        self.response_times.record(elapsed);
    }

    /// Counts a load of `listener`'s TLS certificate, at startup or after its files changed.
    pub fn certificate_loaded(&self, listener: &str, loaded: bool) {
        let result = if loaded { "loaded" } else { "rejected" };
        self.certificate_loads
            .with_label_values(&[listener, result])
            .inc();
    }

    /// Brings the store's figures up to date: its size, and its live evictions since start
    /// (a running total; concurrent callers never count an eviction twice).
    pub fn observe_store(&self, counters: u64, live_evictions: u64) {
        self.active_counters
            .set(i64::try_from(counters).unwrap_or(i64::MAX));
        let seen = self
            .live_evictions_seen
            .fetch_max(live_evictions, Ordering::Relaxed);
        self.memory_live_evictions
            .inc_by(live_evictions.saturating_sub(seen));
    }

    /// The counters of a stats key fixed by the config (resolve once, keep the handle).
    pub fn rule_counters(&self, domain: &str, segments: &[String]) -> RuleCounters {
        self.rules.fixed(domain, segments)
    }

    /// The per-rule counters by whole stats key (labels `domain` and `key`, every level after
    /// the domain), which the Prometheus families' `key1` and `key2` cut to two levels.
    pub fn rule_stats_by_key(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.rules.by_whole_key()
    }

    /// The counters of a stats key built from request values; past the series cap, every new
    /// such key shares one `_overflow_` series per domain.
    pub fn dynamic_rule_counters(&self, domain: &str, segments: &[String]) -> RuleCounters {
        self.rules.dynamic(domain, segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_evictions_move_the_counter_by_what_is_new_even_when_reports_cross() {
        let metrics = Metrics::new(10);
        metrics.observe_store(3, 5);
        metrics.observe_store(3, 4);
        assert_eq!(metrics.memory_live_evictions.get(), 5);
        metrics.observe_store(9, 7);
        assert_eq!(metrics.memory_live_evictions.get(), 7);
        assert_eq!(metrics.active_counters.get(), 9);
    }
}
