//! A live counter as `/api/counters` shows it: the raw key, the key taken apart, and the
//! counter's own limit — from the rule its key names in the config in force, from the request's
//! override, or from the `/check` key.

use serde::Serialize;

use crate::algorithm::Algorithm;
use crate::config::{Config, LevelSpec, Limit, Rate, Rule, Selector};
use crate::key::{self, CheckKey, DecodedKey, DecodedLevel, Scope};
use crate::store::CounterEntry;

#[derive(Serialize)]
pub struct CounterView {
    pub key: String,
    pub count: u64,
    /// `None` when the limit is unknown: the rule left the config, or the key is foreign.
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Until the window ends (fixed windows) or the newest hits leave it (sliding).
    pub resets_in_ms: u64,
    pub decoded: Option<Decoded>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decoded {
    /// A config rule's counter, from the gRPC service or `/json`.
    Rule {
        domain: String,
        entries: Vec<EntryView>,
        window_seconds: u64,
        /// How it counts, but for the Go service's fixed windows (left out); a token bucket's
        /// count is the tokens taken, its limit the burst.
        #[serde(skip_serializing_if = "Option::is_none")]
        algorithm: Option<&'static str>,
        /// One limit of a rule's list (decided with the others); left out when not.
        #[serde(skip_serializing_if = "is_false")]
        listed: bool,
        /// The rule's path (`domain.key_value...`) and the limit's name, when it is still in
        /// the config.
        rule: Option<RuleView>,
    },
    /// A counter for a request's own limit (`RateLimitDescriptor.limit`).
    Override {
        domain: String,
        entries: Vec<EntryView>,
        window_seconds: u64,
        requests_per_unit: u32,
    },
    /// A `POST /check` counter.
    Check {
        key: String,
        window_ms: u64,
        limit: u64,
    },
}

#[derive(Serialize)]
pub struct EntryView {
    pub key: String,
    /// The request's value, or the pattern for a `share_threshold` wildcard.
    pub value: String,
}

#[derive(Serialize)]
pub struct RuleView {
    pub path: String,
    pub name: Option<String>,
}

impl CounterView {
    pub fn new(entry: CounterEntry, config: &Config) -> CounterView {
        let (decoded, limit) = decode(&entry.key, config);
        CounterView {
            count: entry.value,
            remaining: limit.map(|limit| limit.saturating_sub(entry.value)),
            limit,
            resets_in_ms: u64::try_from(entry.resets_in.as_millis()).unwrap_or(u64::MAX),
            decoded,
            key: entry.key,
        }
    }

    /// At or over its limit: the next hit is refused.
    pub fn is_blocked(&self) -> bool {
        self.limit.is_some_and(|limit| self.count >= limit)
    }
}

fn decode(raw: &str, config: &Config) -> (Option<Decoded>, Option<u64>) {
    if let Some(check) = CheckKey::decode(raw) {
        let limit = check.limit;
        let decoded = Decoded::Check {
            key: check.key,
            window_ms: check.window_ms,
            limit,
        };
        return (Some(decoded), Some(limit));
    }
    let Some(DecodedKey {
        domain,
        scope,
        levels,
    }) = key::decode(raw)
    else {
        return (None, None);
    };
    let entries = levels
        .iter()
        .map(|level| EntryView {
            key: level.key().to_string(),
            value: level.value().to_string(),
        })
        .collect();
    match scope {
        Scope::Override {
            window_secs,
            requests_per_unit,
        } => (
            Some(Decoded::Override {
                domain,
                entries,
                window_seconds: window_secs,
                requests_per_unit,
            }),
            Some(u64::from(requests_per_unit)),
        ),
        Scope::Rule { .. } | Scope::Limit { .. } => {
            let found = config.domain(&domain).and_then(|tree| {
                tree.rules
                    .iter()
                    .find_map(|rule| Some((rule, counted_by(rule, scope, &levels)?)))
            });
            let limit = found.map(|(_, rate)| u64::from(rate.capacity()));
            let rule = found.map(|(rule, rate)| RuleView {
                path: rule.path_key.clone(),
                name: rate.name.clone(),
            });
            let decoded = Decoded::Rule {
                domain,
                entries,
                window_seconds: scope.window_secs(),
                algorithm: matches!(scope, Scope::Limit { .. }).then(|| scope.algorithm().name()),
                listed: matches!(scope, Scope::Limit { listed: true, .. }),
                rule,
            };
            (Some(decoded), limit)
        }
    }
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// The limit of `rule` that makes counters of this scope and these levels, if any.
fn counted_by<'r>(rule: &'r Rule, scope: Scope, levels: &[DecodedLevel]) -> Option<&'r Rate> {
    let same_path = rule.path.len() == levels.len()
        && rule
            .path
            .iter()
            .zip(levels)
            .all(|(spec, level)| level_matches(spec, level));
    if !same_path {
        return None;
    }
    let same = |rate: &&Rate| {
        rate.algorithm == scope.algorithm() && rate.window_secs() == scope.window_secs()
    };
    match (&rule.limit, scope) {
        (Limit::Single(rate), Scope::Rule { .. }) if rate.algorithm == Algorithm::FixedWindow => {
            Some(rate).filter(same)
        }
        (Limit::Single(rate), Scope::Limit { listed: false, .. }) => Some(rate).filter(same),
        (Limit::List(rates), Scope::Limit { listed: true, .. }) => rates.iter().find(same),
        _ => None,
    }
}

fn level_matches(spec: &LevelSpec, level: &DecodedLevel) -> bool {
    spec.key == level.key()
        && match (&spec.selector, level) {
            (Selector::Exact(expected), DecodedLevel::Exact { value, .. }) => expected == value,
            (Selector::AnyValue, DecodedLevel::AnyValue { .. }) => true,
            (
                Selector::Wildcard {
                    pattern,
                    shared: false,
                },
                DecodedLevel::Wildcard { pattern: used, .. },
            )
            | (
                Selector::Wildcard {
                    pattern,
                    shared: true,
                },
                DecodedLevel::SharedWildcard { pattern: used, .. },
            ) => pattern.text() == used,
            _ => false,
        }
}
