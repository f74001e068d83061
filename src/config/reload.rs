//! One reload: read every config file and, when anything changed since the previous read,
//! validate the whole set into a new [`Config`]. What to do with the outcome (swap it in, report
//! it) is the caller's: this module only reads and compiles.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::diff::{ConfigDiff, Names};
use super::{Config, ConfigError, Layout, Sources};

/// Loads the config at `path`, remembering what it read last.
pub struct Reloader {
    path: PathBuf,
    layout: Layout,
    /// What the previous reload read: the same input gives the same outcome, so it is not
    /// compiled, counted or logged again.
    last_read: Option<Result<Sources, ConfigError>>,
}

/// What a reload found.
#[derive(Debug)]
pub enum Reload {
    /// The files are as the previous reload read them; nothing was done.
    Unchanged,
    /// The files changed and make up this config.
    Loaded(Config),
    /// The files changed and were rejected: the config in force should stay.
    Rejected(Vec<ConfigError>),
}

impl Reloader {
    pub fn new(path: &Path, layout: Layout) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            layout,
            last_read: None,
        }
    }

    /// The config directory or file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forgets what the previous reload read: the next one compiles and reports the files
    /// even if they are the same.
    pub fn forget(&mut self) {
        self.last_read = None;
    }

    /// Reads the files and, if they changed since the previous reload, compiles them.
    pub fn reload(&mut self) -> Reload {
        let read = Sources::read(&self.path, self.layout);
        if self.last_read.as_ref() == Some(&read) {
            return Reload::Unchanged;
        }
        if let Ok(sources) = &read {
            sources.warn_skipped();
        }
        let compiled = match &read {
            Ok(sources) => sources.compile(),
            Err(error) => Err(vec![error.clone()]),
        };
        self.last_read = Some(read);
        match compiled {
            Ok(config) => Reload::Loaded(config),
            Err(errors) => Reload::Rejected(errors),
        }
    }
}

impl Reload {
    /// Logs the outcome against `in_force`, the config it would replace (`None` when none ever
    /// loaded): what a new config adds, removes and changes (WARN for each domain that goes),
    /// and each rejected file as `<file>: <message> at line L, column C`.
    pub fn log(&self, path: &Path, in_force: Option<(&Config, SystemTime)>) {
        let path = path.display();
        match (self, in_force) {
            (Reload::Unchanged, _) => tracing::debug!(%path, "config files unchanged"),
            (Reload::Loaded(config), None) => tracing::info!(
                %path,
                domains = config.domains().len(),
                rules = config.rule_count(),
                "loaded rate limit config"
            ),
            (Reload::Loaded(config), Some((previous, _))) => {
                let diff = ConfigDiff::between(previous, config);
                for domain in &diff.domains_removed {
                    tracing::warn!(
                        %path,
                        domain,
                        "domain removed from the rate limit config: its requests are no longer limited"
                    );
                }
                tracing::info!(
                    %path,
                    domains = config.domains().len(),
                    rules = config.rule_count(),
                    domains_added = %Names(&diff.domains_added),
                    domains_removed = %Names(&diff.domains_removed),
                    rules_added = %Names(&diff.rules_added),
                    rules_removed = %Names(&diff.rules_removed),
                    rules_changed = %Names(&diff.rules_changed),
                    "loaded rate limit config"
                );
            }
            (Reload::Rejected(errors), in_force) => {
                for error in errors {
                    tracing::error!("{error}");
                }
                match in_force {
                    Some((_, loaded_at)) => tracing::error!(
                        %path,
                        errors = errors.len(),
                        in_force_since = %humantime::format_rfc3339_seconds(loaded_at),
                        "rate limit config rejected; the config loaded before stays in force"
                    ),
                    None => tracing::error!(
                        %path,
                        errors = errors.len(),
                        "rate limit config rejected; no config was ever loaded, so no request is limited"
                    ),
                }
            }
        }
    }
}

/// A config directory of one file that tests edit, and the reloader that reads it.
#[cfg(test)]
pub(crate) mod edits {
    use super::*;

    pub const GOOD: &str = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n";
    pub const BAD: &str =
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n";

    pub struct ConfigDir {
        dir: tempfile::TempDir,
        pub reloader: Reloader,
    }

    impl ConfigDir {
        /// A new directory, read by a reloader at `path_in_dir` inside it (`""`: the directory).
        pub fn new(path_in_dir: &str) -> ConfigDir {
            let dir = tempfile::tempdir().unwrap();
            let reloader = Reloader::new(&dir.path().join(path_in_dir), Layout::default());
            ConfigDir { dir, reloader }
        }

        /// Writes the directory's one file and reloads.
        pub fn edit(&mut self, text: &str) -> Reload {
            std::fs::write(self.dir.path().join("d.yaml"), text).unwrap();
            self.reloader.reload()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::edits::{BAD, ConfigDir, GOOD};
    use super::*;

    fn domains(reload: &Reload) -> Option<usize> {
        match reload {
            Reload::Loaded(config) => Some(config.domains().len()),
            _ => None,
        }
    }

    #[test]
    fn the_same_files_are_not_compiled_twice() {
        let mut fixture = ConfigDir::new("");
        assert_eq!(domains(&fixture.edit(GOOD)), Some(1));
        assert!(matches!(fixture.reloader.reload(), Reload::Unchanged));
        assert!(matches!(fixture.edit(BAD), Reload::Rejected(_)));
        assert!(matches!(fixture.reloader.reload(), Reload::Unchanged));
    }

    #[test]
    fn going_back_to_the_files_of_before_a_failure_loads_them_again() {
        let mut fixture = ConfigDir::new("");
        fixture.edit(GOOD);
        fixture.edit(BAD);
        assert_eq!(domains(&fixture.edit(GOOD)), Some(1));
    }

    #[test]
    fn a_missing_directory_is_rejected_once() {
        let mut fixture = ConfigDir::new("missing");
        let Reload::Rejected(errors) = fixture.reloader.reload() else {
            panic!("a missing directory loaded");
        };
        let message = errors[0].to_string();
        assert!(message.contains("missing: cannot read config"), "{message}");
        assert!(matches!(fixture.reloader.reload(), Reload::Unchanged));
    }
}
