//! Time as the limiter sees it: rate-limit units, the clock that is read, and the fixed windows
//! aligned to the Unix epoch that every node (and every store) agrees on.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The length of a rate-limit window, as envoyproxy/ratelimit names it. Month and year are the
/// Go service's fixed approximations (30 and 365 days), not calendar months and years.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    pub const ALL: [Unit; 7] = [
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ];

    /// Window length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 604_800,
            Unit::Month => 2_592_000,
            Unit::Year => 31_536_000,
        }
    }

    /// Upper-case name, as in the Envoy proto and the Go service's `/rlconfig`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Second => "SECOND",
            Unit::Minute => "MINUTE",
            Unit::Hour => "HOUR",
            Unit::Day => "DAY",
            Unit::Week => "WEEK",
            Unit::Month => "MONTH",
            Unit::Year => "YEAR",
        }
    }

    /// Parses a unit name case-insensitively (`minute`, `MINUTE`, `Minute`).
    pub fn parse(text: &str) -> Option<Unit> {
        Unit::ALL
            .into_iter()
            .find(|unit| unit.name().eq_ignore_ascii_case(text))
    }

    /// The unit's number in `envoy.service.ratelimit.v3.RateLimitResponse.RateLimit.Unit`, which
    /// shares its numbering with `envoy.type.v3.RateLimitUnit` (WEEK is 7 in both).
    pub fn proto_number(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    /// The unit for a proto enum number; `None` for UNKNOWN (0) and numbers no unit has.
    pub fn from_proto_number(number: i32) -> Option<Unit> {
        Unit::ALL
            .into_iter()
            .find(|unit| unit.proto_number() == number)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fixed window `[start, end)` in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Window {
    /// The window of `length_ms` that contains `now_ms`. Windows start at multiples of their
    /// length since the epoch, so any two clocks that agree on the time agree on the window.
    pub fn containing(now_ms: u64, length_ms: u64) -> Window {
        let length_ms = length_ms.max(1);
        let start_ms = now_ms - now_ms % length_ms;
        Window {
            start_ms,
            end_ms: start_ms.saturating_add(length_ms),
        }
    }

    /// Time from `now_ms` to the end of the window.
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.end_ms.saturating_sub(now_ms))
    }
}

/// Rounds a time to the next whole second, the resolution of `duration_until_reset` and the
/// `RateLimit-Reset` header in the Go service (`unit - now % unit`, never 0 inside a window).
pub fn whole_seconds_up(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

/// The source of "now". Injected so that tests can move time by hand.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 is reported as the epoch rather than crashing the service.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_case_insensitively_and_round_trip_through_proto_numbers() {
        assert_eq!(Unit::parse("minute"), Some(Unit::Minute));
        assert_eq!(Unit::parse("WeEk"), Some(Unit::Week));
        assert_eq!(Unit::parse("unknown"), None);
        assert_eq!(Unit::parse(""), None);
        for unit in Unit::ALL {
            assert_eq!(Unit::from_proto_number(unit.proto_number()), Some(unit));
        }
        assert_eq!(Unit::from_proto_number(0), None);
        assert_eq!(Unit::from_proto_number(8), None);
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let window = Window::containing(2_222_500, 60_000);
        assert_eq!(window.start_ms, 2_220_000);
        assert_eq!(window.end_ms, 2_280_000);
        assert_eq!(whole_seconds_up(window.remaining(2_222_500)), 58);
        assert_eq!(whole_seconds_up(window.remaining(2_222_000)), 58);
        assert_eq!(whole_seconds_up(window.remaining(2_220_000)), 60);
    }
}
