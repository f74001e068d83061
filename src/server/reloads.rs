//! What happens to each config reload's outcome: a new config is put in force in the limiter, and
//! every outcome is logged, counted and shown in health. The first load at startup and every
//! later one from the watcher go through the same [`applier`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Apply, Reload};
use crate::health::Health;
use crate::limiter::Limiter;
use crate::metrics::Metrics;

/// The callback the config watcher calls with each outcome.
pub fn applier(
    limiter: Arc<Limiter>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    path: PathBuf,
) -> Apply {
    Box::new(move |outcome: Reload| {
        let in_force = limiter.limits();
        let loaded_at = health.config().loaded_at;
        outcome.log(&path, loaded_at.map(|at| (in_force.config(), at)));
        let now = SystemTime::now();
        match outcome {
            Reload::Unchanged => {}
            Reload::Loaded(config) => {
                let domains = config.domains().len();
                limiter.install(config);
                health.set_config_domains(domains);
                metrics.config_load_success.inc();
                metrics.config_in_force.set(1);
                metrics.config_loaded_at.set(unix_seconds(now));
                health.config_loaded(now);
            }
            Reload::Rejected(errors) => {
                metrics.config_load_error.inc();
                metrics.config_in_force.set(0);
                health.config_failed(errors.iter().map(ToString::to_string).collect(), now);
            }
        }
    })
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::edits::{BAD, ConfigDir, GOOD};
    use crate::limiter::{LimiterOptions, Modes};
    use crate::store::MemoryStore;

    struct Fixture {
        files: ConfigDir,
        apply: Apply,
        limiter: Arc<Limiter>,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let metrics = Arc::new(Metrics::new(10));
            let health = Arc::new(Health::new());
            let store = Arc::new(MemoryStore::new(10, Arc::new(ManualClock::new(0))));
            let options = LimiterOptions {
                modes: Modes::default(),
                near_limit_ratio: 0.8,
                max_match_bytes: 1 << 20,
                blocked_cache_keys: 0,
            };
            let limiter = Arc::new(Limiter::new(store, metrics.clone(), options));
            let files = ConfigDir::new("");
            let path = files.reloader.path().to_path_buf();
            Fixture {
                files,
                apply: applier(limiter.clone(), health.clone(), metrics.clone(), path),
                limiter,
                health,
                metrics,
            }
        }

        /// Writes the file, reloads and applies the outcome.
        fn edit(&mut self, text: &str) {
            let outcome = self.files.edit(text);
            (self.apply)(outcome);
        }

        fn reload(&mut self) {
            (self.apply)(self.files.reloader.reload());
        }
    }

    #[test]
    fn the_same_files_are_not_loaded_or_counted_twice() {
        let mut fixture = Fixture::new();
        fixture.edit(GOOD);
        let loaded = fixture.limiter.limits();
        fixture.reload();
        assert!(Arc::ptr_eq(&loaded, &fixture.limiter.limits()), "no swap");
        assert_eq!(fixture.metrics.config_load_success.get(), 1);

        fixture.edit(BAD);
        fixture.reload();
        assert_eq!(fixture.metrics.config_load_error.get(), 1);
        assert!(Arc::ptr_eq(&loaded, &fixture.limiter.limits()), "kept");
        let failure = fixture.health.config().last_error.expect("reported");
        assert!(
            failure.errors[0].contains("fortnight"),
            "{:?}",
            failure.errors
        );
    }

    #[test]
    fn going_back_to_the_config_in_force_after_a_failure_is_a_good_load() {
        let mut fixture = Fixture::new();
        fixture.edit(GOOD);
        fixture.edit(BAD);
        fixture.edit(GOOD);
        assert_eq!(fixture.health.config().last_error, None);
        assert_eq!(fixture.metrics.config_load_success.get(), 2);
    }
}
