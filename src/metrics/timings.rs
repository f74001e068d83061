//! ShouldRateLimit response times kept one by one for a statsd push, which sends each as a
//! timer as the Go service does; kept only once a pusher asked for them, and bounded.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most times kept between two pushes (10 s at 6,500 calls a second); later ones are dropped,
/// so that a stalled pusher cannot grow memory.
const MAX_KEPT: usize = 65_536;

#[derive(Default)]
pub struct ResponseTimes {
    kept: AtomicBool,
    times: Mutex<Vec<u32>>,
}

impl ResponseTimes {
    /// Starts keeping times.
    pub fn keep(&self) {
        self.kept.store(true, Ordering::Relaxed);
    }

    pub fn record(&self, elapsed: Duration) {
        if !self.kept.load(Ordering::Relaxed) {
            return;
        }
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        if times.len() < MAX_KEPT {
            // Whole milliseconds, truncated, as the Go service reports them.
            times.push(u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX));
        }
    }

    /// The times kept since the last call, in milliseconds.
    pub fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.times.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
