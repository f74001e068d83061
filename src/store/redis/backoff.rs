//! Retrying with jittered exponential backoff, shared by every loop that keeps a Redis
//! connection (the link's keeper, each sentinel listener): how long to pause after each failure
//! in a row, and which failures are worth a log line.

use std::hash::BuildHasher;
use std::time::Duration;

/// The first pause after a failure; small, so that a Redis restart costs little.
const MIN: Duration = Duration::from_millis(50);

/// The longest pause: with the connect timeout it keeps recovery within about 2 s of Redis
/// coming back, while a fleet of nodes dials a dead Redis about once a second.
const MAX: Duration = Duration::from_secs(1);

/// Failures in a row, and the jitter that spreads the nodes of a fleet.
pub struct Backoff {
    failures: u32,
    jitter: foldhash::fast::RandomState,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            failures: 0,
            jitter: foldhash::fast::RandomState::default(),
        }
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Counts a failure; true when it should be logged (the 1st, 2nd, 4th, 8th... in a row), so
    /// that an outage is visible without flooding the log.
    pub fn failed(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.failures.is_power_of_two()
    }

    /// Counts a success and returns the failures it ends.
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    /// The pause before the next attempt: doubling from [`MIN`] with each failure up to [`MAX`],
    /// then a random point in its upper half, so that nodes spread their attempts.
    pub fn pause(&self) -> Duration {
        let ceiling = MIN.saturating_mul(1 << self.failures.min(16)).min(MAX);
        let half = ceiling / 2;
        let spread = half.as_millis() as u64;
        half + Duration::from_millis(self.jitter.hash_one(self.failures) % (spread + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling_and_stay_in_its_upper_half() {
        let mut backoff = Backoff::new();
        let mut logged = Vec::new();
        for failure in 1..=40u32 {
            if backoff.failed() {
                logged.push(failure);
            }
            let ceiling = MIN.saturating_mul(1 << failure.min(16)).min(MAX);
            let pause = backoff.pause();
            assert!(
                pause >= ceiling / 2 && pause <= ceiling,
                "{failure}: {pause:?}"
            );
        }
        assert_eq!(logged, [1, 2, 4, 8, 16, 32]);
        assert_eq!(backoff.succeeded(), 40);
        assert_eq!(backoff.failures(), 0);
    }
}
