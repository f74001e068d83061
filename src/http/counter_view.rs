//! A live counter as `/api/counters` shows it: the raw key, the key taken apart, and the
//! counter's own limit — from the rule its key names in the config in force, from the request's
//! override, or from the `/check` key.

use serde::Serialize;

use crate::config::{Config, LevelSpec, Limit, Rule, Selector};
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
        /// The rule's path (`domain.key_value...`) and name, when it is still in the config.
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
        Scope::Rule { window_secs } => {
            let rule = config.domain(&domain).and_then(|tree| {
                tree.rules
                    .iter()
                    .find(|rule| counts_for(rule, window_secs, &levels))
            });
            let limit = rule.and_then(|rule| match rule.limit {
                Limit::Limited {
                    requests_per_unit, ..
                } => Some(u64::from(requests_per_unit)),
                Limit::Unlimited => None,
            });
            let rule = rule.map(|rule| RuleView {
                path: rule.path_key.clone(),
                name: rule.name.clone(),
            });
            let decoded = Decoded::Rule {
                domain,
                entries,
                window_seconds: window_secs,
                rule,
            };
            (Some(decoded), limit)
        }
    }
}

/// Whether `rule` makes counters with this window and these levels.
fn counts_for(rule: &Rule, window_secs: u64, levels: &[DecodedLevel]) -> bool {
    let same_window =
        matches!(rule.limit, Limit::Limited { unit, .. } if unit.seconds() == window_secs);
    same_window
        && rule.path.len() == levels.len()
        && rule
            .path
            .iter()
            .zip(levels)
            .all(|(spec, level)| level_matches(spec, level))
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
