//! The compiled limits of one domain and the matcher that finds a descriptor's rule.
//!
//! Matching follows envoyproxy/ratelimit level by level: an exact value wins, then the first
//! wildcard that matches in config order, then the key-only rule; the request must have exactly
//! as many entries as the matched rule is deep, and a level that matched is never revisited.
//!
//! A wildcard costs time in the length of the value it is tried on, and a request may try many
//! wildcards on many values: each request gets a [`MatchBudget`] of bytes to scan, and is
//! refused once it is spent, rather than served late.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Struct;

use crate::clock::Unit;
use crate::key;

/// Hash maps on the request path: fast, and seeded per process.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// All rules of one domain (one YAML file).
#[derive(Clone, Debug)]
pub struct DomainTree {
    pub name: String,
    /// This domain's place in its [`Config`](super::Config) (domains sorted by name), so that
    /// whoever keeps something per domain can keep it in a vector.
    pub index: usize,
    pub(super) root: Level,
    /// Every rule in config order; tree nodes refer to them by index.
    pub rules: Vec<Rule>,
}

/// The children of one node (or the domain's top level), grouped by descriptor key.
#[derive(Clone, Debug, Default)]
pub(super) struct Level {
    pub(super) by_key: Map<String, Choices>,
}

/// The nodes at one level that share a descriptor key.
#[derive(Clone, Debug, Default)]
pub(super) struct Choices {
    pub(super) exact: Map<String, Node>,
    pub(super) wildcards: Vec<(Pattern, Node)>,
    pub(super) any: Option<Node>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    pub(super) rule: Option<usize>,
    pub(super) children: Level,
}

/// One `rate_limit` of the config, with the path that leads to it.
#[derive(Clone, Debug)]
pub struct Rule {
    /// This rule's place in its domain's [`DomainTree::rules`].
    pub index: usize,
    pub path: Vec<LevelSpec>,
    pub limit: Limit,
    pub name: Option<String>,
    pub replaces: Vec<String>,
    pub shadow_mode: bool,
    pub quota_mode: bool,
    pub detailed_metric: bool,
    pub metadata: Option<Arc<Struct>>,
    /// The Go service's stats key for the rule's path (`domain.key1_value1.subkey1`).
    pub path_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Limited { unit: Unit, requests_per_unit: u32 },
    Unlimited,
}

impl Limit {
    /// The unit's name and the requests per unit; `None` for an unlimited rule.
    pub fn rate(self) -> Option<(&'static str, u32)> {
        match self {
            Limit::Limited {
                unit,
                requests_per_unit,
            } => Some((unit.name(), requests_per_unit)),
            Limit::Unlimited => None,
        }
    }
}

/// One level on the way to a rule: the descriptor key and how its value is matched.
#[derive(Debug, Clone)]
pub struct LevelSpec {
    pub key: String,
    pub selector: Selector,
    pub value_to_metric: bool,
}

#[derive(Debug, Clone)]
pub enum Selector {
    Exact(String),
    AnyValue,
    Wildcard { pattern: Pattern, shared: bool },
}

impl LevelSpec {
    /// This level's segment of the Go service's default stats key.
    pub fn path_segment(&self) -> String {
        match &self.selector {
            Selector::Exact(value) => format!("{}_{value}", self.key),
            Selector::AnyValue => self.key.clone(),
            Selector::Wildcard { pattern, .. } => format!("{}_{}", self.key, pattern.text()),
        }
    }
}

/// Bytes that wildcard matching may still scan for one request.
#[derive(Debug)]
pub struct MatchBudget {
    left: usize,
    max: usize,
}

/// A request whose wildcard matching would scan more than its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "matching this request's values against wildcard rules would scan more than {max} bytes (--max-match-bytes); send fewer or shorter descriptor values"
)]
pub struct MatchBudgetSpent {
    pub max: usize,
}

impl MatchBudget {
    pub fn new(max: usize) -> MatchBudget {
        MatchBudget { left: max, max }
    }

    fn spend(&mut self, bytes: usize) -> Result<(), MatchBudgetSpent> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or(MatchBudgetSpent { max: self.max })?;
        Ok(())
    }
}

impl DomainTree {
    /// The rule for a descriptor's entries, `None` when no rule applies (including whitelist
    /// nodes, which match but carry no limit); an error once `budget` is spent.
    pub fn find<'e>(
        &self,
        entries: impl ExactSizeIterator<Item = (&'e str, &'e str)>,
        budget: &mut MatchBudget,
    ) -> Result<Option<&Rule>, MatchBudgetSpent> {
        let depth = entries.len();
        let mut level = &self.root;
        for (index, (key, value)) in entries.enumerate() {
            let Some(choices) = level.by_key.get(key) else {
                return Ok(None);
            };
            let Some(node) = choices.select(value, budget)? else {
                return Ok(None);
            };
            if index + 1 == depth {
                return Ok(node.rule.map(|rule| &self.rules[rule]));
            }
            level = &node.children;
        }
        Ok(None)
    }
}

impl Choices {
    fn select(
        &self,
        value: &str,
        budget: &mut MatchBudget,
    ) -> Result<Option<&Node>, MatchBudgetSpent> {
        if let Some(node) = self.exact.get(value) {
            return Ok(Some(node));
        }
        for (pattern, node) in &self.wildcards {
            budget.spend(pattern.cost(value))?;
            if pattern.matches(value) {
                return Ok(Some(node));
            }
        }
        Ok(self.any.as_ref())
    }
}

impl Rule {
    /// The counter-key levels for a request's values (which this rule matched).
    pub fn key_levels<'a>(
        &'a self,
        values: impl Iterator<Item = &'a str> + 'a,
    ) -> impl Iterator<Item = key::Level<'a>> + 'a {
        self.path
            .iter()
            .zip(values)
            .map(|(level, value)| match &level.selector {
                Selector::Exact(_) => key::Level::Exact {
                    key: &level.key,
                    value,
                },
                Selector::AnyValue => key::Level::AnyValue {
                    key: &level.key,
                    value,
                },
                Selector::Wildcard {
                    pattern,
                    shared: false,
                } => key::Level::Wildcard {
                    key: &level.key,
                    pattern: pattern.text(),
                    value,
                },
                Selector::Wildcard {
                    pattern,
                    shared: true,
                } => key::Level::SharedWildcard {
                    key: &level.key,
                    pattern: pattern.text(),
                },
            })
    }

    /// Whether the stats key depends on request values (`detailed_metric`, `value_to_metric`).
    pub fn has_dynamic_stats(&self) -> bool {
        self.detailed_metric || self.path.iter().any(|level| level.value_to_metric)
    }

    /// The segments of the Go service's stats key for this request (the key is the domain and
    /// these, joined with dots): the rule's path, except where `detailed_metric` or
    /// `value_to_metric` ask for the request's values (`share_threshold` levels always show
    /// their pattern).
    pub fn stats_segments(&self, values: &[&str]) -> Vec<String> {
        self.path
            .iter()
            .zip(values)
            .map(|(level, value)| match &level.selector {
                Selector::Wildcard {
                    pattern,
                    shared: true,
                } => format!("{}_{}", level.key, pattern.text()),
                _ if self.detailed_metric => format!("{}_{value}", level.key),
                Selector::Exact(_) => level.path_segment(),
                _ if level.value_to_metric && !value.is_empty() => format!("{}_{value}", level.key),
                _ => level.path_segment(),
            })
            .collect()
    }
}

/// A value pattern where each `*` matches any run of characters, including none.
///
/// Matching never backtracks: the prefix and the suffix are compared in place, then each
/// middle piece is searched for (two-way string search, linear) from where the previous one
/// ended, leftmost first, which finds a match whenever there is one. So a match costs time
/// linear in the value's length, whatever the pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    /// The literal text before the first star.
    first: String,
    /// The literal pieces between stars, found in order.
    middle: Vec<String>,
    /// The literal text after the last star.
    last: String,
    /// The shortest value that can match: every literal byte.
    shortest: usize,
}

impl Pattern {
    /// A pattern for a value containing `*`; `None` for a plain value.
    pub fn new(text: &str) -> Option<Pattern> {
        let (first, rest) = text.split_once('*')?;
        let (middle, last) = rest.rsplit_once('*').unwrap_or(("", rest));
        let middle: Vec<String> = middle
            .split('*')
            .filter(|piece| !piece.is_empty())
            .map(str::to_string)
            .collect();
        Some(Pattern {
            text: text.to_string(),
            shortest: first.len() + last.len() + middle.iter().map(String::len).sum::<usize>(),
            first: first.to_string(),
            middle,
            last: last.to_string(),
        })
    }

    /// Bytes that matching `value` may scan, at most: the prefix and suffix, plus the value
    /// when there are middle pieces to search for; one for a value too short to match.
    pub fn cost(&self, value: &str) -> usize {
        if value.len() < self.shortest {
            1
        } else if self.middle.is_empty() {
            self.first.len() + self.last.len() + 1
        } else {
            value.len() + self.shortest + 1
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, value: &str) -> bool {
        if value.len() < self.shortest {
            return false;
        }
        let Some(inside) = value
            .strip_prefix(self.first.as_str())
            .and_then(|rest| rest.strip_suffix(self.last.as_str()))
        else {
            return false;
        };
        let mut inside = inside;
        for piece in &self.middle {
            match inside.find(piece.as_str()) {
                Some(at) => inside = &inside[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{MatchBudget, MatchBudgetSpent, Pattern};

    #[test]
    fn stars_match_anywhere_in_the_value() {
        let cases = [
            ("foo*", "foo1", true),
            ("foo*", "foo", true),
            ("foo*", "bar", false),
            ("bar*b", "barab", true),
            ("bar*b", "barb", true),
            ("bar*b", "bara", false),
            ("bar*b", "xbarb", false),
            ("foo*bar*baz", "foo123bar456baz", true),
            ("foo*bar*baz", "foobarbaz", true),
            ("foo*bar*baz", "foo123baz", false),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                Pattern::new(pattern).unwrap().matches(value),
                expected,
                "{pattern} ~ {value}"
            );
        }
        assert!(Pattern::new("plain").is_none());
    }

    #[test]
    fn a_request_trying_many_wildcards_on_long_values_spends_its_budget() {
        let text = format!("domain: d\ndescriptors:\n{}", (0..200).map(|i| format!("  - {{key: k, value: \"*{}{i}*\", rate_limit: {{unit: second, requests_per_unit: 1}}}}\n", "a".repeat(60))).collect::<String>());
        let config = crate::config::Config::from_sources([("d.yaml", text.as_str())]).unwrap();
        let domain = config.domain("d").unwrap();
        let value = "a".repeat(4096);
        let mut budget = MatchBudget::new(1 << 20);
        let mut spent = None;
        for _ in 0..64 {
            if let Err(error) = domain.find([("k", value.as_str())].into_iter(), &mut budget) {
                spent = Some(error);
                break;
            }
        }
        assert_eq!(spent, Some(MatchBudgetSpent { max: 1 << 20 }));
        let mut fresh = MatchBudget::new(1 << 20);
        let short = format!("{}7", "a".repeat(61));
        let found = domain
            .find([("k", short.as_str())].into_iter(), &mut fresh)
            .unwrap();
        assert!(found.is_some(), "a short value still matches");
    }
}
