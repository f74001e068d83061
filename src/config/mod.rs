//! Rate-limit configuration: a directory of envoyproxy/ratelimit YAML files, one domain each,
//! loaded and validated as a whole into one immutable [`Config`] snapshot.

mod tree;
mod validate;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use tree::{DomainTree, LevelSpec, Limit, Pattern, Rule, Selector};

/// Files larger than this are refused rather than read: a limits file is a few kilobytes, and a
/// runaway file must not take the service's memory with it.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

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

/// Reads and validates `path`: a directory of `*.yaml`/`*.yml` files (dotfiles and
/// dot-directories such as a ConfigMap's `..data` are skipped; subdirectories are not read), or
/// a single file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let files = config_files(path).map_err(|error| vec![error])?;
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for file in &files {
        match read_file(file) {
            Ok(text) => sources.push((file.display().to_string(), text)),
            Err(error) => errors.push(error),
        }
    }
    let config = Config::from_sources(
        sources
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    );
    match config {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// The files `load` reads, sorted by name.
pub fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let shown = path.display().to_string();
    let metadata = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(&shown, format!("cannot read config: {e}"), None))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ConfigError::new(&shown, format!("error opening directory: {e}"), None))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| ConfigError::new(&shown, format!("error reading directory: {e}"), None))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        // Follows symlinks: ConfigMap files are links into the `..data` directory.
        let is_file = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
        if is_yaml && is_file && !name.starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(ConfigError::new(
            &shown,
            format!("file is {size} bytes, more than the {MAX_FILE_BYTES} allowed"),
            None,
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(&shown, format!("error reading config file: {e}"), None))?;
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            &shown,
            format!("error loading config file: not valid UTF-8 ({e})"),
            None,
        )
    })
}
