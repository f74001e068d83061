//! Sliding-window counting (for the HTTP `/check`): the window is split into [`BUCKETS`] buckets
//! and a check counts the current bucket plus the [`BUCKETS`] before it, so the span counted
//! always covers the whole window and at most one bucket more.
//!
//! The bound that follows: no span of `window` ever admits more than `limit` hits, and a denied
//! caller may wait up to one bucket (`window / BUCKETS`) longer than an exact sliding log would
//! make it wait. Memory per key is `BUCKETS + 1` counts, whatever the limit. Only admitted hits
//! are counted. Stores that cannot run this code (Redis runs a script) must keep the same rules.

use std::collections::VecDeque;
use std::time::Duration;

/// Buckets per window: a denied caller waits at most 5% of the window too long.
pub const BUCKETS: u64 = 20;

/// The outcome of one sliding-window check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slide {
    pub allowed: bool,
    /// Hits counted in the window after this check (this check's hits included when allowed).
    pub count: u64,
    /// How long until this many hits would be admitted; zero when allowed. A request for more
    /// hits than the limit can never be admitted and gets the whole window.
    pub retry_after: Duration,
}

/// The width of one bucket, in milliseconds, for a window.
pub fn bucket_width_ms(window: Duration) -> u64 {
    (window.as_millis() as u64).div_ceil(BUCKETS).max(1)
}

/// The buckets of one key: (bucket number, hits), oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Buckets {
    width_ms: u64,
    counts: VecDeque<(u64, u64)>,
}

impl Buckets {
    /// Checks `hits` against `limit` over `window` ending at `now_ms`, counting them if
    /// admitted. A different window than the key's last one starts the key over.
    pub fn admit(&mut self, now_ms: u64, window: Duration, limit: u64, hits: u64) -> Slide {
        let width = bucket_width_ms(window);
        if width != self.width_ms {
            self.width_ms = width;
            self.counts.clear();
        }
        let current = now_ms / width;
        let oldest = current.saturating_sub(BUCKETS);
        while self
            .counts
            .front()
            .is_some_and(|&(bucket, _)| bucket < oldest)
        {
            self.counts.pop_front();
        }
        let count: u64 = self.counts.iter().map(|&(_, hits)| hits).sum();
        if count.checked_add(hits).is_some_and(|total| total <= limit) {
            match self.counts.back_mut() {
                Some((bucket, counted)) if *bucket == current => *counted += hits,
                _ if hits > 0 => self.counts.push_back((current, hits)),
                _ => {}
            }
            return Slide {
                allowed: true,
                count: count + hits,
                retry_after: Duration::ZERO,
            };
        }
        Slide {
            allowed: false,
            count,
            retry_after: self.retry_after(now_ms, window, count, limit, hits),
        }
    }

    /// When enough old buckets will have left the counted span for `hits` to fit.
    fn retry_after(
        &self,
        now_ms: u64,
        window: Duration,
        count: u64,
        limit: u64,
        hits: u64,
    ) -> Duration {
        if hits > limit {
            return window;
        }
        let mut left = count;
        for &(bucket, counted) in &self.counts {
            left -= counted;
            if left + hits <= limit {
                let leaves_ms = (bucket + BUCKETS + 1) * self.width_ms;
                return Duration::from_millis(leaves_ms.saturating_sub(now_ms));
            }
        }
        window
    }

    /// Hits counted at `now_ms`, without changing anything.
    pub fn count(&self, now_ms: u64) -> u64 {
        let oldest = (now_ms / self.width_ms.max(1)).saturating_sub(BUCKETS);
        self.counts
            .iter()
            .filter(|&&(bucket, _)| bucket >= oldest)
            .map(|&(_, hits)| hits)
            .sum()
    }

    /// When the newest bucket leaves the counted span: after this the key holds nothing.
    pub fn expires_ms(&self) -> u64 {
        self.counts
            .back()
            .map_or(0, |&(bucket, _)| (bucket + BUCKETS + 1) * self.width_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn admits_up_to_the_limit_then_denies_until_old_hits_leave() {
        let mut buckets = Buckets::default();
        // Width 50 ms; start at bucket 100.
        assert_eq!(buckets.admit(5_000, SECOND, 2, 1).count, 1);
        assert_eq!(buckets.admit(5_400, SECOND, 2, 1).count, 2);
        let denied = buckets.admit(5_500, SECOND, 2, 1);
        assert!(!denied.allowed);
        assert_eq!(denied.count, 2);
        // The first hit (bucket 100) is counted until bucket 121 starts, at 6_050 ms.
        assert_eq!(denied.retry_after, Duration::from_millis(550));
        assert!(!buckets.admit(6_049, SECOND, 2, 1).allowed);
        assert!(buckets.admit(6_050, SECOND, 2, 1).allowed);
        assert_eq!(buckets.expires_ms(), (121 + 21) * 50);
    }

    #[test]
    fn no_span_of_one_window_ever_admits_more_than_the_limit() {
        let mut buckets = Buckets::default();
        let mut admitted = Vec::new();
        for now in (0..20_000u64).step_by(7) {
            if buckets.admit(now, SECOND, 10, 1).allowed {
                admitted.push(now);
            }
        }
        for (index, &start) in admitted.iter().enumerate() {
            let in_window = admitted[index..]
                .iter()
                .take_while(|&&t| t < start + 1_000)
                .count();
            assert!(
                in_window <= 10,
                "{in_window} admitted in the second from {start}"
            );
        }
        // And the rate is close to the limit: at least 10 per 1.05 s.
        assert!(admitted.len() >= 190, "{}", admitted.len());
    }

    #[test]
    fn more_hits_than_the_limit_are_never_admitted() {
        let mut buckets = Buckets::default();
        let slide = buckets.admit(0, SECOND, 3, 4);
        assert_eq!(
            (slide.allowed, slide.count, slide.retry_after),
            (false, 0, SECOND)
        );
    }
}
