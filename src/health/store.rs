//! One counter store's health: whether it can be reached, what its recent calls did, and
//! whether it refuses what the service needs. The service has one for its store, and one more
//! for a per-second Redis (`--redis-per-second-url`); either failing makes the service degraded.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::outcomes::Outcomes;

#[derive(Debug)]
pub struct StoreHealth {
    reachable: AtomicBool,
    /// The store's recent calls.
    calls: Outcomes,
    /// Set while the store refuses what the service must do (run its scripts).
    refusal: RwLock<Option<String>>,
}

impl Default for StoreHealth {
    fn default() -> StoreHealth {
        StoreHealth {
            reachable: AtomicBool::new(true),
            calls: Outcomes::default(),
            refusal: RwLock::new(None),
        }
    }
}

impl StoreHealth {
    /// Why the store is not healthy, in words for `/health`; `None` when it is.
    pub fn problem(&self) -> Option<String> {
        if !self.is_reachable() {
            return Some("the counter store cannot be reached".into());
        }
        let refusal = self
            .refusal
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        refusal.or_else(|| self.calls.failing())
    }

    /// Records one call's outcome (the error's text when it failed).
    pub fn record_call(&self, failure: Option<&str>) {
        self.calls.record(failure);
    }

    /// Records that the store refuses what the service needs (`None` once it no longer does).
    pub fn set_refusal(&self, refusal: Option<String>) {
        *self
            .refusal
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = refusal;
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
    }
}
