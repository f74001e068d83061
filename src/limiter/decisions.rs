//! `ratelimiter_limit_decisions_total`: counted descriptors by the algorithm of the limit that
//! decided them, each series resolved once.

use prometheus::IntCounter;

use crate::algorithm::Algorithm;
use crate::metrics::Metrics;

/// `ratelimiter_limit_decisions_total`, resolved once per algorithm and result.
pub(super) struct Decisions {
    /// (admitted, refused) in the order of [`Algorithm::ALL`].
    counters: Vec<(IntCounter, IntCounter)>,
}

impl Decisions {
    pub(super) fn new(metrics: &Metrics) -> Decisions {
        let resolve = |algorithm: Algorithm, result: &str| {
            metrics
                .limit_decisions
                .with_label_values(&[algorithm.name(), result])
        };
        Decisions {
            counters: Algorithm::ALL
                .into_iter()
                .map(|algorithm| {
                    (
                        resolve(algorithm, "admitted"),
                        resolve(algorithm, "refused"),
                    )
                })
                .collect(),
        }
    }

    pub(super) fn count(&self, algorithm: Algorithm, admitted: bool) {
        // `ALL` lists the algorithms in declaration order, so the discriminant is the index.
        let (admitted_counter, refused_counter) = &self.counters[algorithm as usize];
        if admitted {
            admitted_counter.inc();
        } else {
            refused_counter.inc();
        }
    }
}
