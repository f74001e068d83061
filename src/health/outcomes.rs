//! The counter store's recent calls, succeeded and failed, over a sliding [`WINDOW`]: when most
//! of them fail, the store is failing whatever PING says. [`RECOVERED_AFTER`] successes in a row
//! mean it works again: the failures before them are forgotten, so health turns green as soon
//! as a restarted Redis answers, not once its failures have aged out.

use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How far back calls count: long enough to see a pattern, short enough that health recovers
/// within seconds once calls succeed again.
const WINDOW: Duration = Duration::from_secs(10);

/// The share of failed calls from which the store is failing ...
const FAILING_RATIO: f64 = 0.5;

/// ... once at least this many failed, so that one failure on a quiet node does not flap it.
const MIN_FAILURES: u64 = 5;

/// Successes in a row after which earlier failures no longer count.
const RECOVERED_AFTER: u64 = 5;

/// One bucket per second of the window.
const BUCKETS: usize = WINDOW.as_secs() as usize;

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

#[derive(Debug, Default)]
pub(super) struct Outcomes {
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    buckets: [Bucket; BUCKETS],
    latest_error: Option<String>,
    successes_in_a_row: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// The second (since [`START`]) this bucket counts; older counts are stale.
    second: u64,
    succeeded: u64,
    failed: u64,
}

impl Outcomes {
    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn record(&self, failure: Option<&str>) {
        self.record_at(START.elapsed().as_secs(), failure);
    }

    fn record_at(&self, second: u64, failure: Option<&str>) {
        let mut recent = self.recent();
        let bucket = &mut recent.buckets[second as usize % BUCKETS];
        if bucket.second != second {
            *bucket = Bucket {
                second,
                ..Bucket::default()
            };
        }
        match failure {
            None => {
                bucket.succeeded += 1;
                recent.successes_in_a_row += 1;
                if recent.successes_in_a_row == RECOVERED_AFTER {
                    recent
                        .buckets
                        .iter_mut()
                        .for_each(|bucket| bucket.failed = 0);
                }
            }
            Some(error) => {
                bucket.failed += 1;
                recent.successes_in_a_row = 0;
                if recent.latest_error.as_deref() != Some(error) {
                    recent.latest_error = Some(error.to_string());
                }
            }
        }
    }

    /// Why the store is failing, when it is.
    pub(super) fn failing(&self) -> Option<String> {
        self.failing_at(START.elapsed().as_secs())
    }

    fn failing_at(&self, now: u64) -> Option<String> {
        let recent = self.recent();
        let live = recent
            .buckets
            .iter()
            .filter(|bucket| bucket.second + BUCKETS as u64 > now && bucket.second <= now);
        let (succeeded, failed) = live.fold((0, 0), |(succeeded, failed), bucket| {
            (succeeded + bucket.succeeded, failed + bucket.failed)
        });
        let total = succeeded + failed;
        if failed < MIN_FAILURES || (failed as f64) < FAILING_RATIO * total as f64 {
            return None;
        }
        let latest = recent.latest_error.as_deref().unwrap_or("unknown");
        Some(format!(
            "{failed} of the last {total} counter store calls failed (within {}s); the latest: {latest}",
            BUCKETS
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_calls_failing_is_a_failing_store_until_they_age_out() {
        let outcomes = Outcomes::default();
        for _ in 0..10 {
            outcomes.record_at(100, None);
        }
        for _ in 0..9 {
            outcomes.record_at(101, Some("OOM command not allowed"));
        }
        assert_eq!(outcomes.failing_at(101), None, "9 of 19 is under half");
        outcomes.record_at(102, Some("OOM command not allowed"));
        let problem = outcomes.failing_at(102).expect("10 of 20 failed");
        assert!(problem.contains("10 of the last 20"), "{problem}");
        assert!(problem.contains("OOM"), "{problem}");
        assert_eq!(outcomes.failing_at(112), None, "aged out");
    }

    #[test]
    fn successes_in_a_row_forget_the_failures_before_them() {
        let outcomes = Outcomes::default();
        for _ in 0..50 {
            outcomes.record_at(7, Some("connection refused"));
        }
        for _ in 0..RECOVERED_AFTER - 1 {
            outcomes.record_at(8, None);
        }
        assert!(outcomes.failing_at(8).is_some(), "not yet");
        outcomes.record_at(8, Some("connection refused"));
        for _ in 0..RECOVERED_AFTER - 1 {
            outcomes.record_at(8, None);
        }
        assert!(
            outcomes.failing_at(8).is_some(),
            "a failure restarts the run"
        );
        outcomes.record_at(8, None);
        assert_eq!(outcomes.failing_at(8), None, "recovered");
        for _ in 0..2 * RECOVERED_AFTER {
            outcomes.record_at(9, Some("connection refused"));
        }
        assert!(
            outcomes.failing_at(9).is_some(),
            "fresh failures count again, against the successes"
        );
    }

    #[test]
    fn a_few_failures_on_a_quiet_node_are_not_a_failing_store() {
        let outcomes = Outcomes::default();
        for _ in 0..MIN_FAILURES - 1 {
            outcomes.record_at(5, Some("timeout"));
        }
        assert_eq!(outcomes.failing_at(5), None);
    }
}
