//! Logs that repeat: a failure that every request meets must not write a line per request. A
//! [`Throttle`] lets one line through per interval and counts the ones it held back, which the
//! next line reports (`held_back=N`); [`throttled!`] puts one at a call site. Other crates'
//! warnings (h2 logs one per misbehaving connection) are thinned the same way, per call site,
//! by [`RepeatFilter`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Between two lines of one throttled call site: an operator still sees a failure within
/// seconds, and a flood writes six lines a minute.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The moment throttles count from (the first use).
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// One line per interval; the rest are counted.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: u64,
    /// Milliseconds after [`START`] from which the next line may go.
    next_ms: AtomicU64,
    held_back: AtomicU64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Throttle {
        Throttle {
            interval_ms: interval.as_millis() as u64,
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were held back since the
    /// previous one; `None` (and one more held back) otherwise.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(START.elapsed().as_millis() as u64)
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        let won = now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if won {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A `tracing` event at `LEVEL` (`WARN`, `DEBUG`, ...) written at most once per [`INTERVAL`]
/// from this call site, with `held_back` = the lines dropped since the previous one. A level
/// that is off costs one check and counts nothing.
///
/// `throttled!(WARN, %error, "counter store call failed")`
#[macro_export]
macro_rules! throttled {
    ($level:ident, $($rest:tt)+) => {{
        static THROTTLE: $crate::logs::Throttle = $crate::logs::Throttle::new($crate::logs::INTERVAL);
        if tracing::enabled!(tracing::Level::$level)
            && let Some(held_back) = THROTTLE.admit()
        {
            tracing::event!(tracing::Level::$level, held_back, $($rest)+);
        }
    }};
}

/// A layer that lets each call site of another crate write one event per [`INTERVAL`], and
/// says how many it dropped when the next one goes. This crate's events pass untouched: they
/// are throttled where they are written, when they repeat.
#[derive(Default)]
pub struct RepeatFilter {
    sites: Mutex<HashMap<Identifier, &'static Throttle>>,
}

impl RepeatFilter {
    fn throttle(&self, site: Identifier) -> &'static Throttle {
        let mut sites = self
            .sites
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Call sites are static and few (one per log line in the code), so leaking one small
        // throttle each is bounded.
        sites
            .entry(site)
            .or_insert_with(|| Box::leak(Box::new(Throttle::new(INTERVAL))))
    }
}

impl<S: Subscriber> Layer<S> for RepeatFilter {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if metadata.target().starts_with(env!("CARGO_CRATE_NAME")) {
            return true;
        }
        match self.throttle(metadata.callsite()).admit() {
            None => false,
            Some(0) => true,
            Some(held_back) => {
                tracing::warn!(
                    held_back,
                    target = metadata.target(),
                    "the next line repeats: {held_back} like it were dropped"
                );
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_next_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.admit_at(0), Some(0));
        for at in 1..1_000 {
            assert_eq!(throttle.admit_at(at), None);
        }
        assert_eq!(throttle.admit_at(9_999), None);
        assert_eq!(throttle.admit_at(10_000), Some(1_000));
        assert_eq!(throttle.admit_at(10_001), None);
        assert_eq!(throttle.admit_at(25_000), Some(1));
    }
}
