//! At debug level, one line per check saying why it was decided so: the domain, each
//! descriptor, the rule it matched, its count against the limit, and the decision. Checks come
//! by the thousand per second, so the lines are throttled: debug logging cannot take the
//! service down, and each line says how many checks went unlogged since the previous one.

use std::fmt::{self, Write};
use std::time::Duration;

use super::{Check, Decision, Outcome};
use crate::algorithm::Algorithm;
use crate::logs::Throttle;

/// Between two check lines: ten a second are enough to follow what happens, and cost nothing
/// next to the checks themselves.
const INTERVAL: Duration = Duration::from_millis(100);

/// Longest descriptor value shown; values can be kilobytes of a client's path or header.
const MAX_VALUE_CHARS: usize = 64;

static CHECKS: Throttle = Throttle::new(INTERVAL);

/// `Some(held_back)` when this check is to be logged (debug is on, and the throttle lets it).
pub(super) fn admit() -> Option<u64> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        CHECKS.admit()
    } else {
        None
    }
}

/// Logs a decided check; `rules[i]` is the stats key of the rule descriptor `i` matched.
pub(super) fn log(held_back: u64, check: &Check<'_>, rules: &[Option<&str>], decision: &Decision) {
    let mut descriptors = String::new();
    for (index, (descriptor, outcome)) in
        check.descriptors.iter().zip(&decision.outcomes).enumerate()
    {
        if index > 0 {
            descriptors.push_str("; ");
        }
        for (position, entry) in descriptor.entries.iter().enumerate() {
            let separator = if position == 0 { "" } else { "," };
            let _ = write!(
                descriptors,
                "{separator}{}={:?}",
                entry.key,
                Short(&entry.value)
            );
        }
        let rule = rules.get(index).copied().flatten();
        let _ = write!(descriptors, " -> {}", Explained { rule, outcome });
    }
    let decision = if decision.over_limit {
        "OVER_LIMIT"
    } else {
        "OK"
    };
    tracing::debug!(
        held_back,
        domain = check.domain,
        decision,
        "check: {descriptors}"
    );
}

/// A value cut to [`MAX_VALUE_CHARS`].
struct Short<'a>(&'a str);

impl fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(MAX_VALUE_CHARS) {
            Some((end, _)) => write!(f, "{:?}...", &self.0[..end]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

struct Explained<'a> {
    rule: Option<&'a str>,
    outcome: &'a Outcome,
}

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.outcome, self.rule) {
            (Outcome::NoLimit { .. }, _) => f.write_str("no limit"),
            (Outcome::Unlimited, _) => f.write_str("unlimited"),
            (Outcome::Counted(counted), rule) => {
                match rule {
                    Some(rule) => write!(f, "rule {rule}: ")?,
                    None => f.write_str("the request's own limit: ")?,
                }
                let verdict = if counted.over_limit { "over" } else { "within" };
                let unit = counted.unit.name().to_ascii_lowercase();
                let window = match counted.unit_multiplier {
                    1 => unit,
                    several => format!("{several} {unit}s"),
                };
                match counted.algorithm {
                    Algorithm::FixedWindow => write!(f, "{}/{}", counted.count, counted.capacity)?,
                    Algorithm::SlidingWindow => {
                        write!(f, "{}/{} sliding", counted.count, counted.capacity)?
                    }
                    Algorithm::TokenBucket => write!(
                        f,
                        "{}/{} tokens taken, refilling {}",
                        counted.count, counted.capacity, counted.requests_per_unit
                    )?,
                }
                write!(f, " per {window} ({verdict})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Unit;
    use crate::limiter::Counted;

    fn explained(algorithm: Algorithm, unit_multiplier: u32, capacity: u32) -> String {
        let outcome = Outcome::Counted(Counted {
            over_limit: false,
            refused: false,
            unit: Unit::Minute,
            unit_multiplier,
            requests_per_unit: 10,
            capacity,
            algorithm,
            name: None,
            count: 3,
            remaining: capacity - 3,
            resets_in: Duration::ZERO,
            quota: false,
            metadata: None,
        });
        let rule = Some("api.user");
        Explained {
            rule,
            outcome: &outcome,
        }
        .to_string()
    }

    #[test]
    fn each_algorithm_says_what_it_counts() {
        assert_eq!(
            explained(Algorithm::FixedWindow, 1, 10),
            "rule api.user: 3/10 per minute (within)"
        );
        assert_eq!(
            explained(Algorithm::SlidingWindow, 5, 10),
            "rule api.user: 3/10 sliding per 5 minutes (within)"
        );
        assert_eq!(
            explained(Algorithm::TokenBucket, 1, 20),
            "rule api.user: 3/20 tokens taken, refilling 10 per minute (within)"
        );
    }
}
