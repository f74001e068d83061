//! The limits in force: one config snapshot, and what the limiter keeps beside each of its rules
//! (the rule's metric handles, resolved on first use). A reload installs a new snapshot whole;
//! requests hold the one they started with.

use std::sync::OnceLock;

use crate::config::{Config, DomainTree, Rule};
use crate::metrics::RuleCounters;

pub struct Limits {
    config: Config,
    /// `[domain index][rule index]`: each rule's counters, kept for the life of the snapshot
    /// (resolving labels per request costs twenty times an increment).
    rule_counters: Vec<Box<[OnceLock<RuleCounters>]>>,
}

impl Limits {
    pub fn new(config: Config) -> Limits {
        let rule_counters = config
            .domains()
            .iter()
            .map(|domain| domain.rules.iter().map(|_| OnceLock::new()).collect())
            .collect();
        Limits {
            config,
            rule_counters,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters of `rule` of `domain`, resolved by `resolve` the first time.
    pub(super) fn rule_counters(
        &self,
        domain: &DomainTree,
        rule: &Rule,
        resolve: impl FnOnce() -> RuleCounters,
    ) -> &RuleCounters {
        self.rule_counters[domain.index][rule.index].get_or_init(resolve)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(Config::default())
    }
}
