//! A run whose keys lie in several hash slots of a Cluster: one script call cannot judge it (a
//! script's keys share a slot), so it is judged in two steps, as the Go service judges every
//! request with STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT: first each op is looked at (its count
//! read, nothing counted), then the ops are sent again, in runs within one slot, counted as the
//! looks decided ([`crate::store::is_counted`]). Only a whole request's run
//! (`--stop-cache-key-increment-when-overlimit`) can spread so: a list's keys share a slot.
//!
//! Not atomic: hits another node counts between the two steps are seen by the second step
//! only, as between the Go service's `GET` and `INCRBY` pipelines.

use super::cluster::slot;
use crate::store::{Count, CounterOp, is_counted};

/// Whether an op joins a run whose previous op's key lies in another hash slot.
pub fn spans_slots(ops: &[CounterOp], keys: &[String]) -> bool {
    (1..ops.len()).any(|index| crosses(ops, keys, index))
}

fn crosses(ops: &[CounterOp], keys: &[String], index: usize) -> bool {
    ops[index].admission.joins_previous() && slot(&keys[index]) != slot(&keys[index - 1])
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
/// hits fit, the ops as they are but in runs within one slot; else every op alone, and those
/// whose hits fit only looked at again (so that a count-all window going over is still counted).
pub fn counts(ops: &[CounterOp], keys: &[String], looked: &[Count]) -> Vec<CounterOp> {
    let fits: Vec<bool> = ops
        .iter()
        .zip(looked)
        .map(|(op, count)| fits(op, count))
        .collect();
    let all_fit = fits.iter().all(|&fit| fit);
    ops.iter()
        .enumerate()
        .map(|(index, op)| {
            let alone = !all_fit || crosses(ops, keys, index);
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
        let keys = ["{x}a".to_string(), "{y}b".to_string()];
        assert!(spans_slots(&ops, &keys));
        let second = counts(&ops, &keys, &[found(1), found(2)]);
        assert_eq!(second[0].delta, 0, "a fits: not counted");
        assert_eq!(second[1].delta, 1, "b goes over: counted");
        assert!(second.iter().all(|op| !op.admission.joins_previous()));
        let second = counts(&ops, &keys, &[found(1), found(1)]);
        assert_eq!((second[0].delta, second[1].delta), (1, 1), "both fit");
        assert_eq!(second[1].admission, Admission::CountAll, "other slot");
    }
}
