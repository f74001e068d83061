//! Sliding-window counting (the `sliding_window` algorithm and the HTTP `/check`): the window is
//! split into [`BUCKETS`] buckets and a check counts the current bucket plus the [`BUCKETS`]
//! before it, so the span counted always covers the whole window and at most one bucket more.
//!
//! The bound that follows: no span of `window` ever admits more than `limit` hits (the span
//! counted covers it), and whenever hits are refused, the hits admitted in the last `BUCKETS +
//! 1` buckets (the window and one bucket, 5% more) leave no room for them. A refused caller so
//! waits at most one bucket longer than an exact sliding log would make it wait (how many fewer
//! it admits depends on the arrivals: `tests/service/algorithms/sliding_log.rs` measures it).
//! Memory per key is `BUCKETS + 1` counts, whatever the limit. Only admitted hits are counted.
//! Stores that cannot run this code (Redis runs a script) keep the same rules.

use std::collections::VecDeque;
use std::time::Duration;

/// Buckets per window: a refused caller waits at most 5% of the window too long.
pub const BUCKETS: u64 = 20;

/// The outcome of one sliding-window check (`POST /check`).
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
    /// The buckets still counted at `now_ms` for `window`: none when the key was counted with
    /// another window (it starts over).
    fn counted(&self, now_ms: u64, window: Duration) -> impl Iterator<Item = (u64, u64)> + '_ {
        let width = bucket_width_ms(window);
        let oldest = (now_ms / width).saturating_sub(BUCKETS);
        self.counts
            .iter()
            .copied()
            .filter(move |&(bucket, _)| width == self.width_ms && bucket >= oldest)
    }

    /// Hits counted at `now_ms` for `window`.
    pub fn total(&self, now_ms: u64, window: Duration) -> u64 {
        self.counted(now_ms, window).map(|(_, hits)| hits).sum()
    }

    /// How long until `hits` more fit under `limit`: zero when they fit now, the whole window
    /// when they never can (more than the limit), else when enough old buckets have left.
    pub fn wait(&self, now_ms: u64, window: Duration, limit: u64, hits: u64) -> Duration {
        if hits > limit {
            return window;
        }
        let width = bucket_width_ms(window);
        let mut left = self.total(now_ms, window);
        if left + hits <= limit {
            return Duration::ZERO;
        }
        for (bucket, counted) in self.counted(now_ms, window) {
            left -= counted;
            if left + hits <= limit {
                let leaves_ms = (bucket + BUCKETS + 1) * width;
                return Duration::from_millis(leaves_ms.saturating_sub(now_ms));
            }
        }
        window
    }

    /// How long until the oldest hit counted at `now_ms` leaves the span counted; `None` when
    /// nothing is counted.
    pub fn oldest_leaves(&self, now_ms: u64, window: Duration) -> Option<Duration> {
        let width = bucket_width_ms(window);
        let (bucket, _) = self.counted(now_ms, window).next()?;
        let leaves_ms = (bucket + BUCKETS + 1) * width;
        Some(Duration::from_millis(leaves_ms.saturating_sub(now_ms)))
    }

    /// How long a hit counted at `now_ms` stays counted.
    pub fn new_hit_leaves(now_ms: u64, window: Duration) -> Duration {
        let width = bucket_width_ms(window);
        let leaves_ms = (now_ms / width + BUCKETS + 1) * width;
        Duration::from_millis(leaves_ms - now_ms)
    }

    /// Counts `delta` hits at `now_ms` (in the current bucket), or refunds `-delta` of them
    /// (newest first). A different window than the key's last one starts the key over.
    pub fn apply(&mut self, now_ms: u64, window: Duration, delta: i64) {
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
        if delta > 0 {
            let hits = delta.unsigned_abs();
            match self.counts.back_mut() {
                Some((bucket, counted)) if *bucket == current => *counted += hits,
                _ => self.counts.push_back((current, hits)),
            }
            return;
        }
        let mut refund = delta.unsigned_abs();
        while refund > 0
            && let Some((_, counted)) = self.counts.back_mut()
        {
            let taken = refund.min(*counted);
            *counted -= taken;
            refund -= taken;
            if *counted == 0 {
                self.counts.pop_back();
            }
        }
    }

    /// Hits counted at `now_ms`, by the key's own window (for listings).
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

    /// One hit at `now` when it fits: whether it did.
    fn admit(buckets: &mut Buckets, now: u64, limit: u64) -> bool {
        let fits = buckets.total(now, SECOND) < limit;
        if fits {
            buckets.apply(now, SECOND, 1);
        }
        fits
    }

    #[test]
    fn admits_up_to_the_limit_then_refuses_until_old_hits_leave() {
        let mut buckets = Buckets::default();
        // Width 50 ms; start at bucket 100.
        assert!(admit(&mut buckets, 5_000, 2));
        assert!(admit(&mut buckets, 5_400, 2));
        assert!(!admit(&mut buckets, 5_500, 2));
        assert_eq!(buckets.total(5_500, SECOND), 2);
        // The first hit (bucket 100) is counted until bucket 121 starts, at 6_050 ms.
        assert_eq!(
            buckets.wait(5_500, SECOND, 2, 1),
            Duration::from_millis(550)
        );
        assert!(!admit(&mut buckets, 6_049, 2));
        assert!(admit(&mut buckets, 6_050, 2));
        assert_eq!(buckets.expires_ms(), (121 + 21) * 50);
    }

    #[test]
    fn refunds_take_back_the_newest_hits() {
        let mut buckets = Buckets::default();
        buckets.apply(5_000, SECOND, 2);
        buckets.apply(5_400, SECOND, 3);
        buckets.apply(5_450, SECOND, -4);
        assert_eq!(buckets.total(5_450, SECOND), 1);
        assert_eq!(buckets.expires_ms(), (100 + 21) * 50);
        buckets.apply(5_450, SECOND, -9);
        assert_eq!((buckets.total(5_450, SECOND), buckets.expires_ms()), (0, 0));
    }

    #[test]
    fn no_span_of_one_window_ever_admits_more_than_the_limit() {
        let mut buckets = Buckets::default();
        let mut admitted = Vec::new();
        for now in (0..20_000u64).step_by(7) {
            if admit(&mut buckets, now, 10) {
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
    fn more_hits_than_the_limit_never_fit() {
        let buckets = Buckets::default();
        assert_eq!(buckets.wait(0, SECOND, 3, 4), SECOND);
        assert_eq!(buckets.wait(0, SECOND, 3, 3), Duration::ZERO);
    }

    #[test]
    fn another_window_starts_the_key_over() {
        let mut buckets = Buckets::default();
        buckets.apply(5_000, SECOND, 3);
        assert_eq!(buckets.total(5_000, 2 * SECOND), 0);
        buckets.apply(5_000, 2 * SECOND, 1);
        assert_eq!(buckets.total(5_000, 2 * SECOND), 1);
    }
}
