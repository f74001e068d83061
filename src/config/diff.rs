//! What a reload changes: the domains and the rules added, removed and changed between the
//! config in force and the new one, so that the reload's log line says what an edit did.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Struct;

use super::{Config, Limit};

/// Names listed per kind of change in a log line; the rest are counted.
const MAX_LISTED: usize = 10;

/// The changes from one config to the next; rules are named by their stats key
/// (`domain.key_value.subkey`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub domains_added: Vec<String>,
    pub domains_removed: Vec<String>,
    pub rules_added: Vec<String>,
    pub rules_removed: Vec<String>,
    /// Rules at the same path whose limit or options differ.
    pub rules_changed: Vec<String>,
}

impl ConfigDiff {
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let domains = |config: &Config| -> BTreeMap<String, ()> {
            config
                .domains()
                .iter()
                .map(|domain| (domain.name.clone(), ()))
                .collect()
        };
        let (domains_added, domains_removed, _) = compare(&domains(old), &domains(new));
        let (rules_added, rules_removed, rules_changed) = compare(&rules(old), &rules(new));
        ConfigDiff {
            domains_added,
            domains_removed,
            rules_added,
            rules_removed,
            rules_changed,
        }
    }

    pub fn is_empty(&self) -> bool {
        self == &ConfigDiff::default()
    }
}

/// What a rule does, beyond its path: two rules at one path differ when any of it does (its
/// limits carry their names).
type Behaviour<'c> = (&'c Limit, &'c [String], [bool; 3], &'c Option<Arc<Struct>>);

/// Every rule by its stats key, with what it does.
fn rules(config: &Config) -> BTreeMap<String, Behaviour<'_>> {
    config
        .domains()
        .iter()
        .flat_map(|domain| &domain.rules)
        .map(|rule| {
            let modes = [rule.shadow_mode, rule.quota_mode, rule.detailed_metric];
            let behaviour = (&rule.limit, &rule.replaces[..], modes, &rule.metadata);
            (rule.path_key.clone(), behaviour)
        })
        .collect()
}

/// (in `new` only, in `old` only, in both with different values).
fn compare<V: PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let only_in = |these: &BTreeMap<String, V>, those: &BTreeMap<String, V>| {
        these
            .keys()
            .filter(|name| !those.contains_key(*name))
            .cloned()
            .collect()
    };
    let changed = new
        .iter()
        .filter(|(name, value)| old.get(*name).is_some_and(|before| before != *value))
        .map(|(name, _)| name.clone())
        .collect();
    (only_in(new, old), only_in(old, new), changed)
}

/// A list of names for a log line: `a, b, c`, at most [`MAX_LISTED`] of them, then
/// `and N more`; `none` when empty.
pub struct Names<'a>(pub &'a [String]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let listed = &self.0[..self.0.len().min(MAX_LISTED)];
        f.write_str(&listed.join(", "))?;
        match self.0.len() - listed.len() {
            0 => Ok(()),
            more => write!(f, " and {more} more"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(files: &[(&str, &str)]) -> Config {
        Config::from_sources(files.iter().copied()).unwrap()
    }

    const API: &str = "domain: api\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 2}\n  - key: path\n    rate_limit: {unit: second, requests_per_unit: 5}\n";
    const API_EDITED: &str = "domain: api\ndescriptors:\n  - key: user\n    rate_limit: {unit: minute, requests_per_unit: 3}\n  - key: plan\n    rate_limit: {unit: hour, requests_per_unit: 9}\n";
    const EDGE: &str = "domain: edge\ndescriptors:\n  - key: ip\n    rate_limit: {unit: second, requests_per_unit: 1}\n";

    #[test]
    fn domains_and_rules_added_removed_and_changed_are_named() {
        let old = config(&[("api.yaml", API), ("edge.yaml", EDGE)]);
        let new = config(&[("api.yaml", API_EDITED), ("web.yaml", "domain: web\n")]);
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.domains_added, ["web"]);
        assert_eq!(diff.domains_removed, ["edge"]);
        assert_eq!(diff.rules_added, ["api.plan"]);
        assert_eq!(diff.rules_removed, ["api.path", "edge.ip"]);
        assert_eq!(diff.rules_changed, ["api.user"]);
        assert!(ConfigDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn long_lists_are_cut_and_counted() {
        let names: Vec<String> = (0..12).map(|n| format!("d{n:02}")).collect();
        assert_eq!(
            Names(&names).to_string(),
            "d00, d01, d02, d03, d04, d05, d06, d07, d08, d09 and 2 more"
        );
        assert_eq!(Names(&[]).to_string(), "none");
    }
}
