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

/// Every counter of `families` (the Prometheus registry) that the Go service also counts, under
/// the Go name; and the per-rule counters of `rules_by_key` (`Metrics::rule_stats_by_key`, whose
/// keys keep every level, where the Prometheus `key1` and `key2` keep two). Several series may
/// map onto one name (the certificate loads of both listeners): they add up.
pub fn counters(families: &[MetricFamily], rules_by_key: &[MetricFamily]) -> Vec<CounterStat> {
    let mut stats = Vec::new();
    add(&mut stats, families, go_names);
    add(&mut stats, rules_by_key, rule_name);
    stats
}

/// Adds each series of `families` to `stats` under the names `names` gives it.
fn add(
    stats: &mut Vec<CounterStat>,
    families: &[MetricFamily],
    names: fn(&str, &[LabelPair]) -> Vec<String>,
) {
    for family in families {
        for metric in family.get_metric() {
            let total = metric.get_counter().get_value() as u64;
            for name in names(family.name(), metric.get_label()) {
                match stats.iter_mut().find(|stat| stat.name == name) {
                    Some(stat) => stat.total += total,
                    None => stats.push(CounterStat { name, total }),
                }
            }
        }
    }
}

fn label<'a>(labels: &'a [LabelPair], name: &str) -> &'a str {
    labels
        .iter()
        .find(|pair| pair.name() == name)
        .map_or("", |pair| pair.value())
}

/// `ratelimit.service.rate_limit.<domain>.<key>.<stat>` for a per-rule counter by whole key.
fn rule_name(family: &str, labels: &[LabelPair]) -> Vec<String> {
    family
        .strip_prefix("ratelimit_service_rate_limit_")
        .filter(|stat| RULE_STATS.contains(stat))
        .map(|stat| {
            format!(
                "ratelimit.service.rate_limit.{}.{}.{stat}",
                label(labels, "domain"),
                label(labels, "key")
            )
        })
        .into_iter()
        .collect()
}

/// The Go names of a Prometheus series; none for the per-rule families, whose labels keep two
/// levels of the key (their stats come from the counters by whole key).
fn go_names(family: &str, labels: &[LabelPair]) -> Vec<String> {
    let label = |name: &str| label(labels, name);
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
        let deep = ["k1_v1", "k2", "k3"].map(String::from);
        metrics
            .rule_counters("d", &deep)
            .record(2, 12, 10, 8, false);
        metrics.service_errors.inc();
        metrics.should_rate_limit_calls.inc_by(4);
        metrics.config_load_success.inc();
        metrics.certificate_loaded("grpc", true);
        metrics.certificate_loaded("http", false);
        let stats = counters(&metrics.registry().gather(), &metrics.rule_stats_by_key());
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
            total("ratelimit.service.rate_limit.d.k1_v1.k2.k3.over_limit"),
            Some(2)
        );
        assert_eq!(
            stats
                .iter()
                .filter(|stat| stat.name.ends_with(".total_hits"))
                .count(),
            2,
            "each rule once: {stats:?}"
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
