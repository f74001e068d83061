//! A run whose ops cannot be judged in one call: on a Redis Cluster its keys lie in several
//! hash slots (a script's keys share one), or with a per-second Redis its ops lie in both Redis.
//! It is judged in two steps, as the Go service judges every request with
//! STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT: first each op is looked at (its count read, nothing
//! counted), then the ops are sent again, in runs that do not spread, counted as the looks
//! decided ([`super::is_counted`]). Only a whole request's run
//! (`--stop-cache-key-increment-when-overlimit`) can spread so: a list's keys share a slot and a
//! store.
//!
//! Not atomic: hits another node counts between the two steps are seen by the second step
//! only, as between the Go service's `GET` and `INCRBY` pipelines.

use super::{Count, CounterOp, is_counted};

/// Whether an op joins a run whose previous op lies apart from it (`apart(index)`: op `index`
/// cannot be judged in one call with op `index - 1`).
pub fn spans(ops: &[CounterOp], apart: impl Fn(usize) -> bool) -> bool {
    (1..ops.len()).any(|index| ops[index].admission.joins_previous() && apart(index))
}

/// The first step: every op alone, adding nothing.
pub fn looks(ops: &[CounterOp]) -> Vec<CounterOp> {
    ops.iter()
        .map(|op| CounterOp {
            delta: 0,
            admission: op.admission.alone(),
            ..op.clone()
        })
        .collect()
}

/// The second step, given what the first found (`looked`, one count per op): when every op's
/// hits fit, the ops as they are but with no run spreading apart; else every op alone, and those
/// whose hits fit only looked at again (so that a count-all window going over is still counted).
pub fn counts(
    ops: &[CounterOp],
    looked: &[Count],
    apart: impl Fn(usize) -> bool,
) -> Vec<CounterOp> {
    let fits: Vec<bool> = ops
        .iter()
        .zip(looked)
        .map(|(op, count)| fits(op, count))
        .collect();
    let all_fit = fits.iter().all(|&fit| fit);
    ops.iter()
        .enumerate()
        .map(|(index, op)| {
            let alone = !all_fit || (index > 0 && apart(index));
            let counted = is_counted(op, fits[index], all_fit);
            CounterOp {
                delta: if counted || !fits[index] { op.delta } else { 0 },
                admission: if alone {
                    op.admission.alone()
                } else {
                    op.admission
                },
                ..op.clone()
            }
        })
        .collect()
}

/// Whether `op`'s own hits fit the count its look found.
fn fits(op: &CounterOp, looked: &Count) -> bool {
    let Ok(hits) = u64::try_from(op.delta) else {
        return true;
    };
    let room = op.capacity().saturating_sub(looked.value);
    if op.admission.counts_all() {
        hits <= room
    } else {
        hits.max(1) <= room
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::Admission;
    use crate::store::redis::slot;

    fn joined(key: &str, limit: u64) -> CounterOp {
        CounterOp {
            admission: Admission::CountAllWithPrevious,
            ..CounterOp::count_all(key.into(), 60, limit, 1)
        }
    }

    fn found(value: u64) -> Count {
        Count {
            value,
            fits: true,
            resets_in: Duration::from_secs(1),
        }
    }

    #[test]
    fn only_the_op_going_over_is_counted_when_one_goes_over() {
        let ops = [CounterOp::count_all("a".into(), 60, 5, 1), joined("b", 2)];
        let apart = |index: usize| slot("{x}a") != slot("{y}b") && index == 1;
        assert!(spans(&ops, apart));
        let second = counts(&ops, &[found(1), found(2)], apart);
        assert_eq!(second[0].delta, 0, "a fits: not counted");
        assert_eq!(second[1].delta, 1, "b goes over: counted");
        assert!(second.iter().all(|op| !op.admission.joins_previous()));
        let second = counts(&ops, &[found(1), found(1)], apart);
        assert_eq!((second[0].delta, second[1].delta), (1, 1), "both fit");
        assert_eq!(second[1].admission, Admission::CountAll, "apart");
    }
}
