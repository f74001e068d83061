//! One op judged against the counter it finds, before anything changes, so that a run of ops
//! can be decided whole: whether its hits fit, its count if they are counted and if they are
//! not, and the change that counts them.

use std::time::Duration;

use super::shard::{Change, Counter};
use crate::algorithm::Algorithm;
use crate::clock::Window;
use crate::store::bucket::{Bucket, Shape};
use crate::store::sliding::Buckets;
use crate::store::{Admission, Count, CounterOp};

pub(super) struct Verdict {
    pub(super) fits: bool,
    /// The op's count once `change` is made.
    pub(super) counted: Count,
    /// The op's count when its hits are not counted.
    pub(super) refused: Count,
    pub(super) change: Change,
}

pub(super) fn judge(found: Option<&Counter>, op: &CounterOp, now_ms: u64) -> Verdict {
    match op.algorithm {
        Algorithm::FixedWindow => fixed(found, op, now_ms),
        Algorithm::SlidingWindow => sliding(found, op, now_ms),
        Algorithm::TokenBucket => token_bucket(found, op, now_ms),
    }
}

/// The hits that must fit for an op to fit: one to only look, none to refund.
fn needed(delta: i64) -> u64 {
    u64::try_from(delta).map_or(0, |hits| hits.max(1))
}

fn fixed(found: Option<&Counter>, op: &CounterOp, now_ms: u64) -> Verdict {
    let window = Window::containing(now_ms, op.window_ms);
    let before = match found {
        Some(Counter::Fixed { ends_ms, count }) if *ends_ms == window.end_ms => *count,
        _ => 0,
    };
    let after = add_delta(before, op.delta);
    let fits = match op.admission {
        Admission::CountAll | Admission::CountAllWithPrevious => after <= op.limit,
        Admission::Fit | Admission::WithPrevious => {
            before.saturating_add(needed(op.delta)) <= op.limit || op.delta < 0
        }
    };
    let resets_in = window.remaining(now_ms);
    Verdict {
        fits,
        counted: Count {
            value: after,
            fits,
            resets_in,
        },
        refused: Count {
            value: before,
            fits,
            resets_in,
        },
        change: Change::Fixed {
            ends_ms: window.end_ms,
            count: after,
        },
    }
}

fn sliding(found: Option<&Counter>, op: &CounterOp, now_ms: u64) -> Verdict {
    let window = Duration::from_millis(op.window_ms);
    let fresh = Buckets::default();
    let buckets = match found {
        Some(Counter::Sliding(buckets)) => buckets,
        _ => &fresh,
    };
    let before = buckets.total(now_ms, window);
    let need = needed(op.delta);
    let fits = op.delta < 0 || before.saturating_add(need) <= op.limit;
    let oldest_leaves = buckets.oldest_leaves(now_ms, window);
    let refused_wait = if fits {
        oldest_leaves.unwrap_or_default()
    } else {
        buckets.wait(now_ms, window, op.limit, need)
    };
    // Counting adds to the current bucket, so the oldest hit is the one found, or this one.
    let counted_wait = match (oldest_leaves, op.delta > 0) {
        (Some(leaves), _) => leaves,
        (None, true) => Buckets::new_hit_leaves(now_ms, window),
        (None, false) => Duration::ZERO,
    };
    Verdict {
        fits,
        counted: Count {
            value: add_delta(before, op.delta),
            fits,
            resets_in: counted_wait,
        },
        refused: Count {
            value: before,
            fits,
            resets_in: refused_wait,
        },
        change: Change::Slide {
            window,
            delta: op.delta,
        },
    }
}

fn token_bucket(found: Option<&Counter>, op: &CounterOp, now_ms: u64) -> Verdict {
    let never = Duration::from_millis(op.window_ms);
    let Some(shape) = Shape::new(op.window_ms, op.limit, op.burst) else {
        // A bucket that never refills admits nothing (a limit of 0 refuses every hit).
        let count = Count {
            value: op.burst,
            fits: op.delta < 0,
            resets_in: never,
        };
        return Verdict {
            fits: count.fits,
            counted: count,
            refused: count,
            change: Change::Keep,
        };
    };
    let now_us = now_ms.saturating_mul(1_000);
    let before = match found {
        Some(Counter::Bucket(bucket)) => bucket.at(shape, now_us),
        _ => Bucket::full(shape, now_us),
    };
    let need = needed(op.delta);
    let fits = op.delta < 0 || before.remaining() >= need;
    let after = before.take(op.delta);
    let count = |bucket: &Bucket| {
        let remaining = bucket.remaining().min(shape.burst);
        let resets_in = match (fits, remaining < shape.burst) {
            (false, _) => bucket.wait(need, never),
            (true, true) => bucket.wait(remaining + 1, never),
            (true, false) => Duration::ZERO,
        };
        Count {
            value: shape.burst - remaining,
            fits,
            resets_in,
        }
    };
    Verdict {
        fits,
        counted: count(&after),
        refused: count(&before),
        change: Change::Refill(after),
    }
}

pub(super) fn add_delta(count: u64, delta: i64) -> u64 {
    if delta >= 0 {
        count.saturating_add(delta as u64)
    } else {
        count.saturating_sub(delta.unsigned_abs())
    }
}
