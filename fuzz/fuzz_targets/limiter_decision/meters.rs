//! The model of the limits the Go service does not have: a fixed window counted only when it
//! fits (in a list), a sliding window of 20 buckets, a token bucket. The model keeps each
//! counter exactly (a bucket's tokens as integers, in token-microseconds per window) together
//! with the log of hits it admitted, so that it can say whether a request's hits surely fit,
//! may fit (a bucket counts a token once it is within 1e-9 of whole), or cannot; and check,
//! after every admission, that no limit holds more than it allows.

use std::collections::HashMap;
use std::time::Duration;

use ratelimiter::algorithm::Algorithm;
use ratelimiter::clock::Window;
use ratelimiter::config::{Rate, Rule};
use ratelimiter::limiter::Counted;

/// Buckets per sliding window (`store::sliding::BUCKETS`).
const BUCKETS: u64 = 20;

/// A bucket's tolerance, in parts of a token: ten times the store's 1e-9, for float rounding.
const TOKEN_SLACK: i128 = 100_000_000;

/// Each counter as the store should hold it, by key.
#[derive(Default)]
pub struct Meters {
    counters: HashMap<String, Meter>,
}

#[derive(Default)]
struct Meter {
    /// Admitted hits (negative: refunds), oldest first.
    log: Vec<(u64, i64)>,
    /// A token bucket's tokens x window µs at `at_us`; `None` while full.
    bucket: Option<(i128, u64)>,
}

/// What one limit says of a request's hits, before anything is counted.
pub struct Judged {
    pub surely_fits: bool,
    pub may_fit: bool,
    /// The hits that fit now, as `(least, most)`: when the request's hits are counted, and
    /// when they are not.
    pub remaining_counted: (u64, u64),
    pub remaining_refused: (u64, u64),
}

/// The hits that must fit for a request to fit: one to only look, none to refund.
fn needed(delta: i64) -> u64 {
    u64::try_from(delta).map_or(0, |hits| hits.max(1))
}

fn window_ms(rate: &Rate) -> u64 {
    rate.window_secs() * 1_000
}

fn width_ms(rate: &Rate) -> u64 {
    window_ms(rate).div_ceil(BUCKETS)
}

/// The longest `duration_until_reset` a limit may report: its window, a bucket more for a
/// sliding window, the time to fill for a bucket larger than its refill.
fn longest_wait(rate: &Rate) -> Duration {
    let window = window_ms(rate);
    let longest = match rate.algorithm {
        Algorithm::FixedWindow => window,
        Algorithm::SlidingWindow => window + width_ms(rate),
        Algorithm::TokenBucket => {
            let fill = u64::from(rate.burst) * window / u64::from(rate.requests_per_unit.max(1));
            window.max(fill) + 1
        }
    };
    Duration::from_millis(longest)
}

impl Meters {
    /// What `rate`'s counter at `key` says of `delta` hits at `now_ms`.
    pub fn judge(&self, key: &str, rate: &Rate, delta: i64, now_ms: u64) -> Judged {
        let meter = self.counters.get(key);
        let need = needed(delta);
        let limit = u64::from(rate.requests_per_unit);
        if rate.algorithm == Algorithm::TokenBucket {
            let window_us = i128::from(window_ms(rate)) * 1_000;
            let full = i128::from(rate.burst) * window_us;
            let now = tokens(meter, rate, now_ms);
            let after = if delta >= 0 {
                now - i128::from(delta) * window_us
            } else {
                (now + i128::from(delta.unsigned_abs()) * window_us).min(full)
            };
            let whole = |held: i128| {
                let least = held.div_euclid(window_us).clamp(0, rate.burst.into());
                let most = (held + window_us / TOKEN_SLACK)
                    .div_euclid(window_us)
                    .clamp(0, rate.burst.into());
                (least as u64, most as u64)
            };
            let wanted = i128::from(need) * window_us;
            return Judged {
                surely_fits: delta < 0 || (now >= wanted && limit > 0),
                may_fit: delta < 0 || (now + window_us / TOKEN_SLACK >= wanted && limit > 0),
                remaining_counted: whole(after),
                remaining_refused: whole(now),
            };
        }
        let before = self.counted(meter, rate, now_ms);
        let fits = delta < 0 || before.saturating_add(need) <= limit;
        let after = if delta >= 0 {
            before.saturating_add(delta as u64)
        } else {
            before.saturating_sub(delta.unsigned_abs())
        };
        let remaining = |count: u64| {
            let left = limit.saturating_sub(count);
            (left, left)
        };
        Judged {
            surely_fits: fits,
            may_fit: fits,
            remaining_counted: remaining(after),
            remaining_refused: remaining(before),
        }
    }

    /// Hits a window counts at `now_ms`, as the store counts them: a fixed window's since it
    /// began, a sliding window's in its current bucket and the 20 before.
    fn counted(&self, meter: Option<&Meter>, rate: &Rate, now_ms: u64) -> u64 {
        let since = match rate.algorithm {
            Algorithm::SlidingWindow => {
                let width = width_ms(rate);
                (now_ms / width).saturating_sub(BUCKETS) * width
            }
            _ => Window::containing(now_ms, window_ms(rate)).start_ms,
        };
        meter.map_or(0, |meter| net_since(&meter.log, since).max(0) as u64)
    }

    /// Counts `delta` hits of `rate`'s counter at `key` (refunds the newest, for a window).
    pub fn count(&mut self, key: &str, rate: &Rate, delta: i64, now_ms: u64) {
        if delta == 0 {
            return;
        }
        let held = tokens(self.counters.get(key), rate, now_ms);
        let meter = self.counters.entry(key.to_string()).or_default();
        if rate.algorithm == Algorithm::TokenBucket {
            let window_us = i128::from(window_ms(rate)) * 1_000;
            let full = i128::from(rate.burst) * window_us;
            let after = (held - i128::from(delta) * window_us).min(full);
            meter.bucket = Some((after, now_ms * 1_000));
            meter.log.push((now_ms, delta));
            return;
        }
        if delta > 0 {
            meter.log.push((now_ms, delta));
            return;
        }
        let mut refund = delta.unsigned_abs();
        while refund > 0
            && let Some((_, hits)) = meter.log.last_mut()
        {
            let taken = refund.min(hits.unsigned_abs());
            *hits -= taken as i64;
            refund -= taken;
            if *hits == 0 {
                meter.log.pop();
            }
        }
    }

    /// Panics when `rate`'s counter at `key` holds more than `rate` allows at `now_ms`: a fixed
    /// window more than its limit since it began, a sliding window more in any span of one
    /// window, a bucket more since any moment than its burst and what refilled since.
    pub fn assert_within(&self, key: &str, rate: &Rate, now_ms: u64) {
        let Some(meter) = self.counters.get(key) else {
            return;
        };
        let limit = i64::from(rate.requests_per_unit);
        match rate.algorithm {
            Algorithm::FixedWindow => {
                let start = Window::containing(now_ms, window_ms(rate)).start_ms;
                let count = net_since(&meter.log, start);
                assert!(count <= limit, "{key}: {count} in a window of {rate:?}");
            }
            Algorithm::SlidingWindow => {
                let start = now_ms.saturating_sub(window_ms(rate));
                let count = net_since(&meter.log, start);
                assert!(
                    count <= limit,
                    "{key}: {count} within one window of {rate:?}"
                );
            }
            Algorithm::TokenBucket => {
                let window_us = i128::from(window_ms(rate)) * 1_000;
                let full = i128::from(rate.burst) * window_us;
                for &(since, _) in &meter.log {
                    let taken = i128::from(net_since(&meter.log, since)) * window_us;
                    let refilled = i128::from(now_ms - since) * 1_000 * i128::from(limit);
                    assert!(
                        taken <= full + refilled + window_us / TOKEN_SLACK,
                        "{key}: {} tokens taken since {since} ms, by {now_ms} ms, from {rate:?}",
                        taken / window_us
                    );
                }
            }
        }
    }
}

/// Net hits logged at or after `since_ms`.
fn net_since(log: &[(u64, i64)], since_ms: u64) -> i64 {
    log.iter()
        .filter(|(at, _)| *at >= since_ms)
        .map(|(_, hits)| hits)
        .sum()
}

/// A bucket's tokens x window µs at `now_ms`: full when it has no state.
fn tokens(meter: Option<&Meter>, rate: &Rate, now_ms: u64) -> i128 {
    let window_us = i128::from(window_ms(rate)) * 1_000;
    let full = i128::from(rate.burst) * window_us;
    match meter.and_then(|meter| meter.bucket) {
        None => full,
        Some((held, at_us)) => {
            let refilled = i128::from(now_ms * 1_000 - at_us) * i128::from(rate.requests_per_unit);
            (held + refilled).min(full)
        }
    }
}

/// Checks a descriptor counted by other algorithms than the Go service's, or by a list, against
/// the model: it must admit when every limit surely fits and refuse when one cannot; it counts
/// all of its limits or none; it reports its deciding limit; and afterwards no limit holds more
/// than it allows. Returns whether the descriptor is over.
pub fn check(
    rule: &Rule,
    rates: &[Rate],
    keys: &[String],
    delta: i64,
    counted: &Counted,
    now_ms: u64,
    meters: &mut Meters,
) -> bool {
    let judged: Vec<Judged> = rates
        .iter()
        .zip(keys)
        .map(|(rate, key)| meters.judge(key, rate, delta, now_ms))
        .collect();
    let refused = counted.refused;
    assert!(
        !(refused && judged.iter().all(|judged| judged.surely_fits)),
        "refused what every limit admits: {keys:?} {counted:?}"
    );
    assert!(
        refused || judged.iter().all(|judged| judged.may_fit),
        "admitted what a limit refuses: {keys:?} {counted:?}"
    );
    assert_eq!(counted.over_limit, refused && !rule.shadow_mode);

    let deciding = rates
        .iter()
        .position(|rate| rate.name == counted.name)
        .expect("the reported limit is one of the rule's");
    let rate = &rates[deciding];
    assert_eq!(
        (
            counted.unit,
            counted.unit_multiplier,
            counted.requests_per_unit,
            counted.algorithm,
            counted.capacity,
        ),
        (
            rate.unit,
            rate.unit_multiplier,
            rate.requests_per_unit,
            rate.algorithm,
            rate.capacity(),
        )
    );
    assert_eq!(
        u64::from(counted.remaining) + counted.count,
        u64::from(rate.capacity()),
        "{counted:?}"
    );
    assert!(counted.resets_in <= longest_wait(rate), "{counted:?}");
    if rate.algorithm == Algorithm::FixedWindow {
        let window = Window::containing(now_ms, rate.window_secs() * 1_000);
        assert_eq!(counted.resets_in, window.remaining(now_ms));
    }
    let remaining = u64::from(counted.remaining);
    let within = |(least, most): (u64, u64)| least <= remaining && remaining <= most;
    let counts = !refused && delta != 0;
    let view = |judged: &Judged| match counts {
        true => judged.remaining_counted,
        false => judged.remaining_refused,
    };
    if refused {
        assert!(!judged[deciding].surely_fits, "{counted:?}");
        assert!(within(view(&judged[deciding])), "{counted:?}");
    } else {
        // Admitted: the limit with the least remaining decides.
        assert!(within(view(&judged[deciding])), "{counted:?}");
        let least = judged.iter().map(|judged| view(judged).0).min();
        let most = judged.iter().map(|judged| view(judged).1).min();
        assert!(
            within((least.unwrap_or(0), most.unwrap_or(0))),
            "{counted:?}"
        );
    }

    if counts {
        for (rate, key) in rates.iter().zip(keys) {
            meters.count(key, rate, delta, now_ms);
        }
    }
    for (rate, key) in rates.iter().zip(keys) {
        meters.assert_within(key, rate, now_ms);
    }
    counted.over_limit
}
