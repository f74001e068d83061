//! Rate-limit configuration: a directory of envoyproxy/ratelimit YAML files, one domain each,
//! loaded and validated as a whole into one immutable [`Config`] snapshot, and loaded again by
//! the [`ConfigWatcher`] whenever the files change.

mod diff;
mod error;
mod files;
mod problems;
mod rates;
mod reload;
mod sources;
mod suggest;
mod tree;
mod validate;
mod watch;
pub mod yaml;

use std::collections::HashMap;

use crate::algorithm::Algorithm;

pub use diff::ConfigDiff;
pub use error::ConfigError;
pub use files::Layout;
#[cfg(test)]
pub(crate) use reload::edits;
pub use reload::{Reload, Reloader};
pub use sources::{Sources, load};
pub use tree::{
    DomainTree, LevelSpec, Limit, MatchBudget, MatchBudgetSpent, Pattern, Rate, Rule, Selector,
};
pub use watch::{Apply, ConfigWatcher, ReloadRequests};

/// Every domain's limits, as loaded at one moment. Never changed once built; a reload builds a
/// new one.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Sorted by name; each domain's `index` is its place here.
    domains: Vec<DomainTree>,
    /// Looked up on every request: a fast hash (domain names come from the config, not from
    /// requests, so a flood of crafted names cannot make them collide).
    by_name: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl Config {
    pub fn domain(&self, name: &str) -> Option<&DomainTree> {
        self.by_name.get(name).map(|&index| &self.domains[index])
    }

    /// Domains sorted by name.
    pub fn domains(&self) -> &[DomainTree] {
        &self.domains
    }

    /// envoyproxy/ratelimit's `/rlconfig` text: `<path>: unit=<UNIT> requests_per_unit=<n>,
    /// shadow_mode: <bool>, quota_mode: <bool>`, one line per rule, sorted; unlimited rules show
    /// `unit=UNKNOWN requests_per_unit=0`. Our additions follow a limit's unit and requests
    /// where they are not the defaults, and a list's limits are joined by `; `.
    pub fn rlconfig(&self) -> String {
        let mut lines: Vec<String> = self
            .domains
            .iter()
            .flat_map(|domain| &domain.rules)
            .map(|rule| {
                let limits = match &rule.limit {
                    Limit::Unlimited { .. } => "unit=UNKNOWN requests_per_unit=0".to_string(),
                    limit => limit
                        .rates()
                        .iter()
                        .map(rlconfig_limit)
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                format!(
                    "{}: {limits}, shadow_mode: {}, quota_mode: {}\n",
                    one_line(&rule.path_key),
                    rule.shadow_mode,
                    rule.quota_mode
                )
            })
            .collect();
        lines.sort_unstable();
        lines.concat()
    }

    /// Builds a config from named file contents (name, text), in the given order; a domain
    /// defined twice is reported against its later file.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Config, Vec<ConfigError>> {
        Config::from_files(sources, false)
    }

    /// As [`Config::from_sources`], unless `merge_domains` lets a domain
    /// be split over files: then their descriptors are put together, as the Go service's
    /// MERGE_DOMAIN_CONFIG does (a key defined in two of them is a duplicate, reported against
    /// the domain's first file).
    pub fn from_files<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        merge_domains: bool,
    ) -> Result<Config, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let trees: Vec<(&str, Result<DomainTree, Vec<ConfigError>>)> = if merge_domains {
            merged_docs(sources, &mut errors)
                .into_iter()
                .map(|(name, doc)| (name, on_parse_stack(|| validate::compile(name, doc))))
                .collect()
        } else {
            sources
                .into_iter()
                .map(|(name, text)| {
                    let tree = on_parse_stack(|| {
                        let doc =
                            yaml::parse(text).map_err(|error| vec![yaml_error(name, &error)])?;
                        validate::compile(name, doc)
                    });
                    (name, tree)
                })
                .collect()
        };
        // Each domain, and the file that defined it first.
        let mut domains: HashMap<String, (DomainTree, &str)> = HashMap::new();
        for (name, tree) in trees {
            match tree {
                Err(mut file_errors) => errors.append(&mut file_errors),
                Ok(domain) => match domains.get(&domain.name) {
                    Some((_, first)) => errors.push(ConfigError::new(
                        name,
                        format!(
                            "duplicate domain '{}' in config file (first defined in {first})",
                            domain.name
                        ),
                        None,
                    )),
                    None => {
                        domains.insert(domain.name.clone(), (domain, name));
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(Config::new(
                domains.into_values().map(|(domain, _)| domain).collect(),
            ))
        } else {
            Err(errors)
        }
    }

    /// Sorts the domains by name and numbers them.
    fn new(mut domains: Vec<DomainTree>) -> Config {
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        let mut by_name = HashMap::with_capacity_and_hasher(domains.len(), Default::default());
        for (index, domain) in domains.iter_mut().enumerate() {
            domain.index = index;
            by_name.insert(domain.name.clone(), index);
        }
        Config { domains, by_name }
    }

    /// How many rules all domains hold.
    pub fn rule_count(&self) -> usize {
        self.domains.iter().map(|domain| domain.rules.len()).sum()
    }
}

/// One limit in `/rlconfig`: `unit=<UNIT> requests_per_unit=<n>`, then `unit_multiplier=`,
/// `algorithm=` and `burst=` where they are not the defaults.
fn rlconfig_limit(rate: &Rate) -> String {
    let mut text = format!(
        "unit={} requests_per_unit={}",
        rate.unit.name(),
        rate.requests_per_unit
    );
    if rate.unit_multiplier != 1 {
        text.push_str(&format!(" unit_multiplier={}", rate.unit_multiplier));
    }
    if rate.algorithm != Algorithm::FixedWindow {
        text.push_str(&format!(" algorithm={}", rate.algorithm));
    }
    if rate.algorithm == Algorithm::TokenBucket && rate.burst != rate.requests_per_unit {
        text.push_str(&format!(" burst={}", rate.burst));
    }
    text
}

/// Stack for parsing and compiling one file: both recurse once per nesting level, and a file
/// may nest as deep as [`yaml::budget::MAX_DEPTH`]; a debug build takes tens of KB per level.
/// Only the pages a file reaches are ever touched.
const PARSE_STACK_BYTES: usize = 64 << 20;

/// Parses one file.
fn parse_doc(name: &str, text: &str) -> Result<yaml::FileDoc, Vec<ConfigError>> {
    on_parse_stack(|| yaml::parse(text).map_err(|error| vec![yaml_error(name, &error)]))
}

/// Parses every file and puts together the descriptors of files of the same domain (in file
/// order); each group is named after its first file.
fn merged_docs<'a>(
    sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(&'a str, yaml::FileDoc)> {
    let mut docs: Vec<(&'a str, yaml::FileDoc)> = Vec::new();
    for (name, text) in sources {
        let doc = match parse_doc(name, text) {
            Ok(doc) => doc,
            Err(mut file_errors) => {
                errors.append(&mut file_errors);
                continue;
            }
        };
        let domain = doc.domain.as_ref().map(|domain| domain.value.clone());
        let earlier = docs.iter_mut().find(|(_, earlier)| {
            domain.is_some() && earlier.domain.as_ref().map(|d| &d.value) == domain.as_ref()
        });
        match earlier {
            Some((_, earlier)) => earlier.descriptors.extend(doc.descriptors),
            None => docs.push((name, doc)),
        }
    }
    docs
}

/// Runs `work` on a thread of its own whose stack fits the deepest file the parser's budget
/// lets through (the caller's may be a small runtime thread's).
fn on_parse_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let slot = std::sync::Mutex::new(Some(work));
    let run = || {
        let work = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        work.map(|work| work())
    };
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("config-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(scope, run);
        match worker {
            Ok(worker) => worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had (out of memory or threads): run here, as deep as we can.
            Err(_) => run(),
        }
    })
    .expect("`work` is taken once: by the worker, or here when no worker could start")
}

/// A YAML syntax or type error, with its position taken out of the message text.
fn yaml_error(name: &str, error: &serde_saphyr::Error) -> ConfigError {
    let text = match (yaml::budget::breach(error), error.without_snippet()) {
        (Some(breach), _) => yaml::budget::explain(breach),
        (None, serde_saphyr::Error::DuplicateMappingKey { key, .. }) => {
            yaml::appears_twice(key.as_deref().unwrap_or("?"))
        }
        (None, serde_saphyr::Error::MultipleDocuments { .. }) => "a second YAML document (after `---`) in one file; put each domain in a file of its own (the Go service silently ignores every document but the first)".into(),
        (None, other) => other.to_string(),
    };
    let position = error
        .location()
        .filter(|location| location.line() > 0)
        .map(|location| (location.line() as usize, location.column() as usize));
    let message = match position {
        Some((line, column)) => {
            let suffix = format!(" at line {line}, column {column}");
            text.strip_suffix(suffix.as_str())
                .unwrap_or(&text)
                .to_string()
        }
        None => text,
    };
    ConfigError::new(
        name,
        format!("error loading config file: {message}"),
        position,
    )
}

/// `text` with its control characters escaped (`\n`, `\r`, `\u{1b}`), so that a key holding a
/// newline cannot forge a line of `/rlconfig`.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let errors = Config::from_sources([("x.yaml", text)]).unwrap_err();
        errors[0].to_string()
    }

    #[test]
    fn duplicate_keys_and_second_documents_get_an_operators_message() {
        let rule =
            "descriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n";
        let duplicate = error_of(&format!("domain: a\ndomain: b\n{rule}"));
        assert!(
            duplicate.contains("the key 'domain' appears twice"),
            "{duplicate}"
        );
        assert!(duplicate.contains("line 2"), "{duplicate}");
        // Tags make the keys differ to the parser, not here.
        let tagged = error_of(&format!("!a domain: a\n!b domain: b\n{rule}"));
        assert!(
            tagged.contains("the key 'domain' appears twice"),
            "{tagged}"
        );
        let tagged_metadata = error_of(&format!(
            "domain: a\n{rule}    metadata: {{!a x: 1, !b x: 2}}\n"
        ));
        assert!(
            tagged_metadata.contains("the key 'x' appears twice"),
            "{tagged_metadata}"
        );
        let second = error_of(&format!("domain: a\n{rule}---\ndomain: b\n"));
        assert!(second.contains("a second YAML document"), "{second}");
        for text in [&duplicate, &tagged, &tagged_metadata, &second] {
            assert!(
                !text.contains("Options") && !text.contains("from_str"),
                "{text}"
            );
        }
    }
}
