//! What the service knows about its own health, shared by the parts that change it (shutdown,
//! the counter store, config and certificate reloads) and the parts that report it (gRPC
//! health, `/health`).
//!
//! The store's health comes from what its calls do, not only from whether it answers PING: a
//! Redis that answers PING but refuses every count (out of memory, a user without the right to
//! run scripts) makes the service degraded, with the reason.
//!
//! Whether calls can be answered at all (not shutting down, a usable config in force) is also
//! published on a watch channel, which the gRPC health service follows.

mod outcomes;
mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

pub use store::StoreHealth;
use tokio::sync::watch;

/// The service's state as a load balancer should see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Serving, with every dependency reachable.
    Healthy,
    /// Serving, but the counter store cannot be reached or fails its calls: checks answer
    /// UNAVAILABLE and Envoy's `failure_mode_deny` decides.
    Degraded,
    /// Shutting down: stop sending.
    Draining,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Draining => "draining",
        }
    }

    /// Whether requests should still be sent here.
    pub fn is_serving(self) -> bool {
        self != Status::Draining
    }
}

/// The outcome of the latest loads of something reloaded from files (the config, a listener's
/// certificate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadStatus {
    /// When what is in force was loaded; `None` while nothing ever loaded.
    pub loaded_at: Option<SystemTime>,
    /// The latest failed load since then, if any: what was loaded before stays in force.
    pub last_error: Option<LoadFailure>,
}

/// Whether the files on disk are what is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadState {
    /// The latest files loaded and are in force.
    Current,
    /// The latest files were refused: what loaded before them stays in force.
    Stale,
    /// Nothing ever loaded (the service started on a bad config with --allow-empty-config).
    Missing,
}

impl LoadState {
    pub fn name(self) -> &'static str {
        match self {
            LoadState::Current => "current",
            LoadState::Stale => "stale",
            LoadState::Missing => "none",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadFailure {
    /// Each problem as `<file>: <message> at line L, column C`.
    pub errors: Vec<String>,
    /// When loads started failing (the first failure since the last good load).
    pub since: SystemTime,
}

/// What calls are answered, and health says, while no config could be loaded.
pub const NO_CONFIG_LOADED: &str = "no rate limit configuration loaded";

#[derive(Debug)]
pub struct Health {
    draining: AtomicBool,
    store: Arc<StoreHealth>,
    /// The per-second Redis's, once there is one (`--redis-per-second-url`).
    per_second_store: OnceLock<Arc<StoreHealth>>,
    config: RwLock<LoadStatus>,
    /// Domains of the config in force.
    config_domains: AtomicUsize,
    /// Unhealthy while the config in force has no domain (`--healthy-only-with-config`).
    config_required: AtomicBool,
    /// Each TLS listener's certificate, by listener name (`grpc`, `http`).
    certificates: RwLock<BTreeMap<&'static str, LoadStatus>>,
    /// Whether calls can be answered: see [`Health::answering`].
    answering: watch::Sender<bool>,
}

impl Health {
    /// Health of a service that is starting: serving, its config not yet loaded.
    pub fn new() -> Health {
        Health {
            draining: AtomicBool::new(false),
            store: Arc::default(),
            per_second_store: OnceLock::new(),
            config: RwLock::new(LoadStatus {
                loaded_at: None,
                last_error: None,
            }),
            config_domains: AtomicUsize::new(0),
            config_required: AtomicBool::new(false),
            certificates: RwLock::new(BTreeMap::new()),
            answering: watch::Sender::new(true),
        }
    }

    /// Whether calls can be answered: the service is not shutting down and has no config
    /// problem. The receiver sees each change (the gRPC health service's SERVING or
    /// NOT_SERVING); a store problem does not count, as calls still reach the store.
    pub fn answering(&self) -> watch::Receiver<bool> {
        self.answering.subscribe()
    }

    /// Publishes [`Health::answering`] after a change. The state is read under the channel's
    /// lock, so the last of two concurrent changes publishes what both did.
    fn publish(&self) {
        self.answering.send_if_modified(|answering| {
            let now = !self.draining.load(Ordering::Relaxed) && self.config_problem().is_none();
            std::mem::replace(answering, now) != now
        });
    }

    /// Unhealthy while the config in force has no domain (the Go service's
    /// HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED).
    pub fn require_config(&self, required: bool) {
        self.config_required.store(required, Ordering::Relaxed);
        self.publish();
    }

    /// Records how many domains the config in force has.
    pub fn set_config_domains(&self, domains: usize) {
        self.config_domains.store(domains, Ordering::Relaxed);
        self.publish();
    }

    /// Why the config makes the service unhealthy, in words for `/health`; `None` when it
    /// does not. A config that failed to load with none in force is a problem; a service whose
    /// first load has not happened yet is only starting.
    pub fn config_problem(&self) -> Option<String> {
        let config = self.config();
        if config.loaded_at.is_none() && config.last_error.is_some() {
            Some(NO_CONFIG_LOADED.into())
        } else if self.config_required.load(Ordering::Relaxed)
            && self.config_domains.load(Ordering::Relaxed) == 0
        {
            Some("no config with at least one domain is loaded".into())
        } else {
            None
        }
    }

    /// Why the service is not healthy (the store first, then the config); `None` when it is.
    pub fn problem(&self) -> Option<String> {
        self.store_problem().or_else(|| self.config_problem())
    }

    pub fn status(&self) -> Status {
        if self.draining.load(Ordering::Relaxed) {
            Status::Draining
        } else if self.problem().is_none() {
            Status::Healthy
        } else {
            Status::Degraded
        }
    }

    /// Why the counter store is not healthy (either Redis, with a per-second one), in words for
    /// `/health`; `None` when it is.
    pub fn store_problem(&self) -> Option<String> {
        self.store.problem().or_else(|| {
            let per_second = self.per_second_store.get()?.problem()?;
            Some(format!("the per-second Redis: {per_second}"))
        })
    }

    /// The health of the counter store (the main Redis, with a per-second one).
    pub fn store(&self) -> Arc<StoreHealth> {
        self.store.clone()
    }

    /// The health of the per-second Redis, counted in the service's from the first call on.
    pub fn per_second_store(&self) -> Arc<StoreHealth> {
        self.per_second_store.get_or_init(Arc::default).clone()
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.publish();
    }

    /// Whether the counter store can be reached (both Redis, with a per-second one).
    pub fn is_store_reachable(&self) -> bool {
        self.store.is_reachable()
            && self
                .per_second_store
                .get()
                .is_none_or(|per_second| per_second.is_reachable())
    }

    pub fn config(&self) -> LoadStatus {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records a good config load: its time, and no error.
    pub fn config_loaded(&self, at: SystemTime) {
        *write(&self.config) = LoadStatus::loaded(at);
        self.publish();
    }

    /// Records a failed config load, each problem as one line; the failure's `since` stays at
    /// the first failure in a row.
    pub fn config_failed(&self, errors: Vec<String>, at: SystemTime) {
        write(&self.config).failed(errors, at);
        self.publish();
    }

    /// Each TLS listener's certificate status, by listener name.
    pub fn certificates(&self) -> BTreeMap<&'static str, LoadStatus> {
        self.certificates
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Records that `listener` now serves a newly loaded certificate.
    pub fn certificate_loaded(&self, listener: &'static str, at: SystemTime) {
        write(&self.certificates).insert(listener, LoadStatus::loaded(at));
    }

    /// Records a certificate of `listener` that was refused (the previous one stays in use).
    pub fn certificate_failed(&self, listener: &'static str, error: String, at: SystemTime) {
        write(&self.certificates)
            .entry(listener)
            .or_insert_with(|| LoadStatus::loaded(at))
            .failed(vec![error], at);
    }
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl LoadStatus {
    fn loaded(at: SystemTime) -> LoadStatus {
        LoadStatus {
            loaded_at: Some(at),
            last_error: None,
        }
    }

    pub fn state(&self) -> LoadState {
        match (self.loaded_at, &self.last_error) {
            (None, _) => LoadState::Missing,
            (Some(_), Some(_)) => LoadState::Stale,
            (Some(_), None) => LoadState::Current,
        }
    }

    fn failed(&mut self, errors: Vec<String>, at: SystemTime) {
        let since = self.last_error.as_ref().map_or(at, |failure| failure.since);
        self.last_error = Some(LoadFailure { errors, since });
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answering_follows_the_config_and_ends_at_draining() {
        let health = Health::new();
        let answering = health.answering();
        assert!(*answering.borrow(), "starting");
        health.config_failed(vec!["bad".into()], SystemTime::now());
        assert!(!*answering.borrow(), "nothing ever loaded");
        health.config_loaded(SystemTime::now());
        assert!(*answering.borrow());
        health.require_config(true);
        assert!(!*answering.borrow(), "no domain, and one is required");
        health.set_config_domains(1);
        assert!(*answering.borrow());
        health.store().set_reachable(false);
        assert!(*answering.borrow(), "calls still reach the store");
        health.set_draining();
        assert!(!*answering.borrow());
    }

    #[test]
    fn a_per_second_redis_out_of_reach_makes_the_store_unhealthy() {
        let health = Health::new();
        assert_eq!(health.store_problem(), None);
        health.per_second_store().set_reachable(false);
        assert!(!health.is_store_reachable());
        assert_eq!(
            health.store_problem().as_deref(),
            Some("the per-second Redis: the counter store cannot be reached")
        );
        assert_eq!(health.status(), Status::Degraded);
    }
}
