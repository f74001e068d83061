//! The Go service's statsd names for our metrics: each Prometheus series that has a Go
//! counterpart becomes the stat that envoyproxy/ratelimit pushes for the same events (its
//! Prometheus names are themselves a mapping of these, so the mapping runs back exactly).

use prometheus::proto::{LabelPair, MetricFamily};

/// The per-rule stats, `ratelimit.service.rate_limit.<domain>.<key>.<stat>`.
const RULE_STATS: [&str; 5] = [
    "total_hits",
    "over_limit",
    "near_limit",
    "within_limit",
    "shadow_mode",
];

/// A running total under its Go name; the pusher sends what it gained since the last push.
#[derive(Debug, PartialEq, Eq)]
pub struct CounterStat {
    pub name: String,
    pub total: u64,
}

/// Every counter of `families` that the Go service also counts, under the Go name. Several
/// series may map onto one name (the certificate loads of both listeners): they add up.
pub fn counters(families: &[MetricFamily]) -> Vec<CounterStat> {
    let mut stats: Vec<CounterStat> = Vec::new();
    for family in families {
        for metric in family.get_metric() {
            let labels = metric.get_label();
            let total = metric.get_counter().get_value() as u64;
            for name in go_names(family.name(), labels) {
                match stats.iter_mut().find(|stat| stat.name == name) {
                    Some(stat) => stat.total += total,
                    None => stats.push(CounterStat { name, total }),
                }
            }
        }
    }
    stats
}

fn go_names(family: &str, labels: &[LabelPair]) -> Vec<String> {
    let label = |name: &str| {
        labels
            .iter()
            .find(|pair| pair.name() == name)
            .map_or("", |pair| pair.value())
    };
    if let Some(stat) = family
        .strip_prefix("ratelimit_service_rate_limit_")
        .filter(|stat| RULE_STATS.contains(stat))
    {
        let mut key = format!("{}.{}", label("domain"), label("key1"));
        if !label("key2").is_empty() {
            key = format!("{key}.{}", label("key2"));
        }
        return vec![format!("ratelimit.service.rate_limit.{key}.{stat}")];
    }
    match family {
        "ratelimit_service_should_rate_limit_error" => vec![format!(
            "ratelimit.service.call.should_rate_limit.{}",
            label("err_type")
        )],
        "ratelimit_service_total_requests" => vec![format!(
            "ratelimit_server.{}.total_requests",
            label("grpc_method")
        )],
        "ratelimit_service_config_load_success" => {
            vec!["ratelimit.service.config_load_success".into()]
        }
        "ratelimit_service_config_load_error" => vec!["ratelimit.service.config_load_error".into()],
        "ratelimit_service_global_shadow_mode" => {
            vec!["ratelimit.service.global_shadow_mode".into()]
        }
        "ratelimiter_tls_certificate_loads_total" => {
            let mut names = vec!["certs.load_attempts".to_string()];
            if label("result") == "rejected" {
                names.push("certs.load_failures".into());
            }
            names
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn our_metrics_come_out_under_the_go_names() {
        let metrics = Metrics::new(10);
        let one = metrics.rule_counters("basic", &["key1".to_string()]);
        one.record(3, 3, 10, 8, false);
        let deep = metrics.rule_counters("d", &["k1_v1".to_string(), "k2".to_string()]);
        deep.record(2, 12, 10, 8, false);
        metrics.service_errors.inc();
        metrics.should_rate_limit_calls.inc_by(4);
        metrics.config_load_success.inc();
        metrics.certificate_loaded("grpc", true);
        metrics.certificate_loaded("http", false);
        let stats = counters(&metrics.registry().gather());
        let total = |name: &str| {
            stats
                .iter()
                .find(|stat| stat.name == name)
                .map(|stat| stat.total)
        };
        assert_eq!(
            total("ratelimit.service.rate_limit.basic.key1.total_hits"),
            Some(3)
        );
        assert_eq!(
            total("ratelimit.service.rate_limit.basic.key1.within_limit"),
            Some(3)
        );
        assert_eq!(
            total("ratelimit.service.rate_limit.d.k1_v1.k2.over_limit"),
            Some(2)
        );
        assert_eq!(
            total("ratelimit.service.call.should_rate_limit.service_error"),
            Some(1)
        );
        assert_eq!(
            total("ratelimit_server.ShouldRateLimit.total_requests"),
            Some(4)
        );
        assert_eq!(total("ratelimit.service.config_load_success"), Some(1));
        assert_eq!(total("certs.load_attempts"), Some(2));
        assert_eq!(total("certs.load_failures"), Some(1));
        assert!(
            stats
                .iter()
                .all(|stat| !stat.name.starts_with("ratelimiter"))
        );
    }
}
