//! Rate-limit configuration: a directory of envoyproxy/ratelimit YAML files, one domain each,
//! loaded and validated as a whole into one immutable [`Config`] snapshot, and loaded again by
//! the [`ConfigWatcher`] whenever the files change.

mod reload;
mod sources;
mod tree;
mod validate;
mod watch;
pub mod yaml;

use std::collections::HashMap;
use std::fmt;

pub use reload::{Reload, Reloader};
pub use sources::{Sources, config_files, load};
pub use tree::{DomainTree, LevelSpec, Limit, Pattern, Rule, Selector};
pub use watch::ConfigWatcher;

/// One problem with the configuration, reported as `<file>: <message>` plus the position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub message: String,
    /// Line and column (1-based), where known.
    pub position: Option<(usize, usize)>,
}

impl ConfigError {
    pub fn new(
        file: &str,
        message: impl Into<String>,
        position: Option<(usize, usize)>,
    ) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)?;
        if let Some((line, column)) = self.position {
            write!(f, " at line {line}, column {column}")?;
        }
        Ok(())
    }
}

/// Every domain's limits, as loaded at one moment. Never changed once built; a reload builds a
/// new one.
#[derive(Debug, Default)]
pub struct Config {
    domains: HashMap<String, DomainTree>,
}

impl Config {
    pub fn domain(&self, name: &str) -> Option<&DomainTree> {
        self.domains.get(name)
    }

    /// Domains sorted by name.
    pub fn domains(&self) -> Vec<&DomainTree> {
        let mut domains: Vec<&DomainTree> = self.domains.values().collect();
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        domains
    }

    /// envoyproxy/ratelimit's `/rlconfig` text: `<path>: unit=<UNIT> requests_per_unit=<n>,
    /// shadow_mode: <bool>, quota_mode: <bool>`, one line per rule, sorted; unlimited rules show
    /// `unit=UNKNOWN requests_per_unit=0`.
    pub fn rlconfig(&self) -> String {
        let mut lines: Vec<String> = self
            .domains
            .values()
            .flat_map(|domain| &domain.rules)
            .map(|rule| {
                let (unit, requests_per_unit) = rule.limit.rate().unwrap_or(("UNKNOWN", 0));
                format!(
                    "{}: unit={unit} requests_per_unit={requests_per_unit}, shadow_mode: {}, quota_mode: {}\n",
                    rule.path_key, rule.shadow_mode, rule.quota_mode
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
        let mut config = Config::default();
        let mut errors = Vec::new();
        for (name, text) in sources {
            match parse_file(name, text) {
                Err(mut file_errors) => errors.append(&mut file_errors),
                Ok(domain) if config.domains.contains_key(&domain.name) => {
                    errors.push(ConfigError::new(
                        name,
                        format!("duplicate domain '{}' in config file", domain.name),
                        None,
                    ));
                }
                Ok(domain) => {
                    config.domains.insert(domain.name.clone(), domain);
                }
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

fn parse_file(name: &str, text: &str) -> Result<DomainTree, Vec<ConfigError>> {
    let doc = yaml::parse(text).map_err(|error| vec![yaml_error(name, &error)])?;
    validate::compile(name, doc)
}

/// A YAML syntax or type error, with its position taken out of the message text.
fn yaml_error(name: &str, error: &serde_saphyr::Error) -> ConfigError {
    let text = error.without_snippet().to_string();
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
