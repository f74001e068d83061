//! Token buckets (the `token_bucket` algorithm, GCRA kept as the tokens a bucket holds at one
//! moment): `limit` tokens refill evenly over each window, one every `window / limit`, and the
//! bucket holds at most `burst`. A hit takes a token; hits that find too few tokens take none.
//!
//! A key holds the tokens left at the moment of its last change and expires when the bucket is
//! full again: a missing key is a full bucket. Times are in microseconds (Redis `TIME`'s unit);
//! tokens are fractional between refills, and a token counts once it is within [`EPSILON`] of
//! whole, so that float rounding never refuses a hit that exact arithmetic admits. Redis keeps
//! the same rules in its script.

use std::time::Duration;

/// How close to whole a fractional token count must be to count as whole.
pub const EPSILON: f64 = 1e-9;

/// What a bucket is: how fast it refills and how much it holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Microseconds per token: the window over its limit.
    pub interval_us: f64,
    pub burst: u64,
}

impl Shape {
    /// `limit` tokens per `window_ms`, at most `burst` held; `None` when it never refills.
    pub fn new(window_ms: u64, limit: u64, burst: u64) -> Option<Shape> {
        (limit > 0).then(|| Shape {
            interval_us: window_ms as f64 * 1_000.0 / limit as f64,
            burst,
        })
    }
}

/// A bucket that is not full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Tokens held at `at_us`.
    pub tokens: f64,
    pub at_us: u64,
    pub shape: Shape,
}

impl Bucket {
    /// A full bucket at `now_us`.
    pub fn full(shape: Shape, now_us: u64) -> Bucket {
        Bucket {
            tokens: shape.burst as f64,
            at_us: now_us,
            shape,
        }
    }

    /// The bucket at `now_us`, refilled since its last change (in `shape`, which may differ
    /// from the one it was kept with after a reload).
    pub fn at(&self, shape: Shape, now_us: u64) -> Bucket {
        let refilled = now_us.saturating_sub(self.at_us) as f64 / shape.interval_us;
        Bucket {
            tokens: (self.tokens + refilled).min(shape.burst as f64),
            at_us: now_us.max(self.at_us),
            shape,
        }
    }

    /// Whole tokens held: hits that fit now.
    pub fn remaining(&self) -> u64 {
        (self.tokens + EPSILON).floor().max(0.0) as u64
    }

    /// Takes `delta` tokens (gives `-delta` back, up to full).
    pub fn take(&self, delta: i64) -> Bucket {
        Bucket {
            tokens: (self.tokens - delta as f64).min(self.shape.burst as f64),
            ..*self
        }
    }

    /// How long until `hits` tokens are held: zero when they are, `never` when they cannot be
    /// (more than the bucket holds).
    pub fn wait(&self, hits: u64, never: Duration) -> Duration {
        if hits > self.shape.burst {
            return never;
        }
        let missing = hits as f64 - self.tokens - EPSILON;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_micros((missing * self.shape.interval_us).ceil() as u64)
    }

    /// When the bucket is full again (and its key has nothing to keep), in milliseconds.
    pub fn full_at_ms(&self) -> u64 {
        let missing = (self.shape.burst as f64 - self.tokens).max(0.0);
        let full_at_us = self.at_us as f64 + missing * self.shape.interval_us;
        (full_at_us / 1_000.0).ceil() as u64
    }

    /// Whether it is full: nothing to keep.
    pub fn is_full(&self) -> bool {
        self.tokens + EPSILON >= self.shape.burst as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEVER: Duration = Duration::from_secs(3600);

    #[test]
    fn a_full_bucket_gives_its_burst_at_once_then_refills_evenly() {
        // 10 per second, 20 held: a token every 100 ms.
        let shape = Shape::new(1_000, 10, 20).unwrap();
        let mut bucket = Bucket::full(shape, 0);
        let mut taken = 0;
        while bucket.remaining() >= 1 {
            bucket = bucket.take(1);
            taken += 1;
        }
        assert_eq!(taken, 20);
        assert_eq!(bucket.wait(1, NEVER), Duration::from_millis(100));
        let later = bucket.at(shape, 250_000);
        assert_eq!(later.remaining(), 2);
        assert_eq!(later.wait(3, NEVER), Duration::from_millis(50));
        assert_eq!(later.wait(21, NEVER), NEVER);
        assert_eq!(later.full_at_ms(), 2_000);
        assert!(later.at(shape, 2_000_000).is_full());
    }

    #[test]
    fn thirds_of_a_millisecond_add_up_to_whole_tokens() {
        // 3 per second: 333,333.3 µs a token; three of them make one second.
        let shape = Shape::new(1_000, 3, 3).unwrap();
        let empty = Bucket::full(shape, 0).take(3);
        assert_eq!(empty.at(shape, 1_000_000).remaining(), 3);
        assert_eq!(empty.at(shape, 999_999).remaining(), 2);
    }

    #[test]
    fn a_limit_of_zero_never_refills() {
        assert_eq!(Shape::new(1_000, 0, 5), None);
    }
}
