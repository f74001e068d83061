//! One reload: read every config file and, when anything changed, validate the whole set and
//! swap it in at once. A set that fails keeps the previous config in force; either way the
//! outcome goes to the metrics and to [`Health`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::{Config, ConfigError, Sources};
use crate::health::Health;
use crate::metrics::Metrics;

/// Loads the config at `path` into the snapshot the limiter reads.
pub struct Reloader {
    path: PathBuf,
    config: Arc<ArcSwap<Config>>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    /// What the previous reload read: the same input gives the same outcome, so it is not
    /// compiled, counted or logged again.
    last_read: Option<Result<Sources, ConfigError>>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files are as the previous reload read them; nothing was done.
    Unchanged,
    /// The new config is in force.
    Applied { domains: usize },
    /// The files were rejected; the previous config stays in force.
    Rejected(Vec<ConfigError>),
}

impl Reloader {
    pub fn new(
        path: &Path,
        config: Arc<ArcSwap<Config>>,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            config,
            health,
            metrics,
            last_read: None,
        }
    }

    /// The config directory or file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the files and, if they changed since the previous reload, validates them and
    /// swaps the new config in. Requests see either the old snapshot or the new one, whole.
    pub fn reload(&mut self) -> Reload {
        let read = Sources::read(&self.path);
        if self.last_read.as_ref() == Some(&read) {
            return Reload::Unchanged;
        }
        let compiled = match &read {
            Ok(sources) => sources.compile(),
            Err(error) => Err(vec![error.clone()]),
        };
        self.last_read = Some(read);
        let now = SystemTime::now();
        match compiled {
            Ok(config) => {
                let domains = config.domains().len();
                self.config.store(Arc::new(config));
                self.metrics.config_load_success.inc();
                self.health.config_loaded(now);
                Reload::Applied { domains }
            }
            Err(errors) => {
                self.metrics.config_load_error.inc();
                self.health.config_failed(&errors, now);
                Reload::Rejected(errors)
            }
        }
    }
}

impl Reload {
    /// Logs the outcome: each rejected file as `<file>: <message> at line L, column C`.
    pub fn log(&self, path: &Path) {
        let path = path.display();
        match self {
            Reload::Unchanged => tracing::debug!(%path, "config files unchanged"),
            Reload::Applied { domains } => {
                tracing::info!(%path, domains, "loaded rate limit config");
            }
            Reload::Rejected(errors) => {
                for error in errors {
                    tracing::error!("{error}");
                }
                tracing::error!(%path, errors = errors.len(), "rate limit config rejected; the previous config stays in force");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, requests_per_unit: 1}\n";
    const BAD: &str = "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n";

    fn reloader(dir: &Path) -> (Reloader, Arc<ArcSwap<Config>>, Arc<Metrics>) {
        let config = Arc::new(ArcSwap::from_pointee(Config::default()));
        let metrics = Arc::new(Metrics::new(10));
        let health = Arc::new(Health::new(SystemTime::now()));
        let reloader = Reloader::new(dir, config.clone(), health, metrics.clone());
        (reloader, config, metrics)
    }

    #[test]
    fn the_same_files_are_not_loaded_or_counted_twice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.yaml"), GOOD).unwrap();
        let (mut reloader, config, metrics) = reloader(dir.path());
        assert_eq!(reloader.reload(), Reload::Applied { domains: 1 });
        let loaded = config.load_full();
        assert_eq!(reloader.reload(), Reload::Unchanged);
        assert!(Arc::ptr_eq(&loaded, &config.load_full()), "no swap");
        assert_eq!(metrics.config_load_success.get(), 1);

        std::fs::write(dir.path().join("d.yaml"), BAD).unwrap();
        assert!(matches!(reloader.reload(), Reload::Rejected(_)));
        assert_eq!(reloader.reload(), Reload::Unchanged);
        assert_eq!(metrics.config_load_error.get(), 1);
        assert!(Arc::ptr_eq(&loaded, &config.load_full()), "kept");
    }

    #[test]
    fn going_back_to_the_config_in_force_after_a_failure_is_a_good_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let (mut reloader, _, metrics) = reloader(dir.path());
        reloader.reload();
        std::fs::write(&file, BAD).unwrap();
        reloader.reload();
        std::fs::write(&file, GOOD).unwrap();
        assert_eq!(reloader.reload(), Reload::Applied { domains: 1 });
        assert_eq!(reloader.health.config().last_error, None);
        assert_eq!(metrics.config_load_success.get(), 2);
    }

    #[test]
    fn a_missing_directory_is_rejected_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut reloader, _, metrics) = reloader(&dir.path().join("missing"));
        let Reload::Rejected(errors) = reloader.reload() else {
            panic!("a missing directory loaded");
        };
        assert!(
            errors[0]
                .to_string()
                .contains("missing: cannot read config"),
            "{errors:?}"
        );
        assert_eq!(reloader.reload(), Reload::Unchanged);
        assert_eq!(metrics.config_load_error.get(), 1);
    }
}
