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
    /// The snapshot the latest swap replaced, dropped at the next swap: requests that loaded it
    /// are done by then, so freeing it (milliseconds for a large config) happens here and never
    /// on a request's path.
    retired: Option<Arc<Config>>,
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
            retired: None,
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
                self.retired = Some(self.config.swap(Arc::new(config)));
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

    /// A reloader on a directory with one file.
    struct Fixture {
        dir: tempfile::TempDir,
        reloader: Reloader,
        config: Arc<ArcSwap<Config>>,
        metrics: Arc<Metrics>,
    }

    impl Fixture {
        fn new(path_in_dir: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let config = Arc::new(ArcSwap::from_pointee(Config::default()));
            let metrics = Arc::new(Metrics::new(10));
            let health = Arc::new(Health::new(SystemTime::now()));
            let path = dir.path().join(path_in_dir);
            let reloader = Reloader::new(&path, config.clone(), health, metrics.clone());
            Fixture {
                dir,
                reloader,
                config,
                metrics,
            }
        }

        /// Writes the file and reloads.
        fn edit(&mut self, text: &str) -> Reload {
            std::fs::write(self.dir.path().join("d.yaml"), text).unwrap();
            self.reloader.reload()
        }
    }

    #[test]
    fn the_same_files_are_not_loaded_or_counted_twice() {
        let mut fixture = Fixture::new("");
        assert_eq!(fixture.edit(GOOD), Reload::Applied { domains: 1 });
        let loaded = fixture.config.load_full();
        assert_eq!(fixture.reloader.reload(), Reload::Unchanged);
        assert!(Arc::ptr_eq(&loaded, &fixture.config.load_full()), "no swap");
        assert_eq!(fixture.metrics.config_load_success.get(), 1);

        assert!(matches!(fixture.edit(BAD), Reload::Rejected(_)));
        assert_eq!(fixture.reloader.reload(), Reload::Unchanged);
        assert_eq!(fixture.metrics.config_load_error.get(), 1);
        assert!(Arc::ptr_eq(&loaded, &fixture.config.load_full()), "kept");
    }

    #[test]
    fn going_back_to_the_config_in_force_after_a_failure_is_a_good_load() {
        let mut fixture = Fixture::new("");
        fixture.edit(GOOD);
        fixture.edit(BAD);
        assert_eq!(fixture.edit(GOOD), Reload::Applied { domains: 1 });
        assert_eq!(fixture.reloader.health.config().last_error, None);
        assert_eq!(fixture.metrics.config_load_success.get(), 2);
    }

    #[test]
    fn a_replaced_config_is_freed_by_the_next_reload_not_by_a_request() {
        let mut fixture = Fixture::new("");
        fixture.edit(GOOD);
        let first = Arc::downgrade(&fixture.config.load_full());
        fixture.edit(&GOOD.replace("1}", "2}"));
        assert!(first.upgrade().is_some(), "kept after the first swap");
        fixture.edit(&GOOD.replace("1}", "3}"));
        assert!(first.upgrade().is_none(), "freed by the next one");
    }

    #[test]
    fn a_missing_directory_is_rejected_once() {
        let mut fixture = Fixture::new("missing");
        let Reload::Rejected(errors) = fixture.reloader.reload() else {
            panic!("a missing directory loaded");
        };
        let message = errors[0].to_string();
        assert!(message.contains("missing: cannot read config"), "{message}");
        assert_eq!(fixture.reloader.reload(), Reload::Unchanged);
        assert_eq!(fixture.metrics.config_load_error.get(), 1);
    }
}
