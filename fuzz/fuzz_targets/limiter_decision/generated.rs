//! The generated part of the config: up to four rules keyed `m0`.. of every algorithm, windows of
//! several units and lists of limits (always valid ones), and the requests that ask them.

use std::fmt::Write as _;

use arbitrary::Arbitrary;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::google::protobuf::UInt64Value;
use ratelimiter::algorithm::Algorithm;
use ratelimiter::clock::Unit;

/// Generated rules, keyed `m0`.. (each in `WORDS`).
pub const GENERATED: usize = 4;

/// Limits in a generated list.
const MAX_LISTED: usize = 3;

/// A rule of the generated part of the config: one limit, or a list of them.
#[derive(Arbitrary, Debug)]
pub struct GeneratedRule {
    listed: bool,
    shadow_mode: bool,
    quota_mode: bool,
    first: GeneratedRate,
    more: Vec<GeneratedRate>,
}

#[derive(Arbitrary, Debug)]
struct GeneratedRate {
    unit: u8,
    unit_multiplier: u8,
    requests_per_unit: u8,
    algorithm: u8,
    burst: Option<u8>,
}

impl GeneratedRate {
    /// The limit as a YAML flow mapping named `name`, always a valid one: a window of at most
    /// a year, no algorithm on a limit of 0, a bucket that fills within a year. Zero bytes make
    /// a sliding window of one a second, so that short inputs meet the new algorithms.
    fn yaml(&self, name: &str) -> (Algorithm, u64, String) {
        let unit = Unit::ALL[usize::from(self.unit) % Unit::ALL.len()];
        let mut multiplier = 1 + u64::from(self.unit_multiplier % 8);
        if unit.seconds() * multiplier > Unit::Year.seconds() {
            multiplier = 1;
        }
        let window_secs = unit.seconds() * multiplier;
        let requests = u64::from(self.requests_per_unit.wrapping_add(1) % 6);
        let algorithm = match requests {
            0 => Algorithm::FixedWindow,
            _ => Algorithm::ALL[(usize::from(self.algorithm) + 1) % Algorithm::ALL.len()],
        };
        let mut text = format!(
            "{{name: {name}, unit: {}, unit_multiplier: {multiplier}, requests_per_unit: {requests}",
            unit.name().to_lowercase()
        );
        if requests > 0 {
            let _ = write!(text, ", algorithm: {algorithm}");
        }
        let burst = self.burst.map(|burst| 1 + u64::from(burst % 8));
        if let (Algorithm::TokenBucket, Some(burst)) = (algorithm, burst)
            && burst * window_secs / requests <= Unit::Year.seconds()
        {
            let _ = write!(text, ", burst: {burst}");
        }
        text.push('}');
        (algorithm, window_secs, text)
    }
}

/// The YAML of the generated rules, to follow the fuzz config's descriptors.
pub fn yaml(rules: &[GeneratedRule]) -> String {
    let mut text = String::new();
    for (index, rule) in rules.iter().enumerate() {
        let mut limits: Vec<(Algorithm, u64, String)> = Vec::new();
        let rates = std::iter::once(&rule.first).chain(&rule.more);
        for (at, rate) in rates.take(MAX_LISTED).enumerate() {
            let (algorithm, window, yaml) = rate.yaml(&format!("m{index}r{at}"));
            // A list holds one limit per algorithm and window.
            if !limits
                .iter()
                .any(|(a, w, _)| (*a, *w) == (algorithm, window))
            {
                limits.push((algorithm, window, yaml));
            }
        }
        let yaml: Vec<String> = limits.into_iter().map(|(_, _, yaml)| yaml).collect();
        let rate_limit = match rule.listed {
            false => yaml[0].clone(),
            true => format!("[{}]", yaml.join(", ")),
        };
        let _ = writeln!(text, "  - key: m{index}\n    rate_limit: {rate_limit}");
        let _ = writeln!(text, "    shadow_mode: {}", rule.shadow_mode);
        let _ = writeln!(text, "    quota_mode: {}", rule.quota_mode);
    }
    text
}

/// A request for the generated rules: a descriptor for each rule named (`m0`..), for one of two
/// users, every one with the same hits (a few, or any number; negative to refund).
#[derive(Arbitrary, Debug)]
pub struct AskGenerated {
    rules: Vec<(u8, bool)>,
    hits: Hits,
    is_negative_hits: bool,
}

#[derive(Arbitrary, Debug)]
enum Hits {
    Few(u8),
    Any(u64),
}

impl AskGenerated {
    pub fn request(&self) -> RateLimitRequest {
        let hits = match self.hits {
            Hits::Few(hits) => u64::from(hits % 4),
            Hits::Any(hits) => hits,
        };
        RateLimitRequest {
            domain: "fuzz".into(),
            descriptors: self
                .rules
                .iter()
                .take(crate::LIMITS.max_descriptors)
                .map(|&(rule, other_user)| RateLimitDescriptor {
                    entries: vec![Entry {
                        key: format!("m{}", usize::from(rule) % GENERATED),
                        value: if other_user { "bob" } else { "alice" }.into(),
                    }],
                    hits_addend: Some(UInt64Value { value: hits }),
                    is_negative_hits: self.is_negative_hits,
                    ..Default::default()
                })
                .collect(),
            hits_addend: 0,
        }
    }
}
