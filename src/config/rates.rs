//! One descriptor's `rate_limit`, checked and compiled: a map (the Go service's form, checked
//! with its messages) or a list of maps (several limits, all or nothing), with the fields the Go
//! service does not have: `unit_multiplier`, `algorithm` and `burst`.

use super::problems::{Position, Problems, position};
use super::suggest::{self, did_you_mean};
use super::tree::{Limit, Rate};
use super::yaml::{At, Item, RateLimitDoc, RateLimitsDoc, ReplaceDoc, Scalar};
use crate::algorithm::Algorithm;
use crate::clock::Unit;

/// A compiled `rate_limit` and the rule names it `replaces`.
pub(super) struct Compiled {
    pub(super) limit: Limit,
    pub(super) replaces: Vec<String>,
}

/// The longest window: a year, the longest unit the Go service has.
const MAX_WINDOW_SECS: u64 = 31_536_000;

/// The most limits in one list: a request's store work grows with them (one op each), and a
/// descriptor has a handful of meaningful windows.
pub const MAX_LIST_LIMITS: usize = 16;

/// A token bucket refills at most one token per microsecond: stores keep time in microseconds.
const MIN_REFILL_US: u64 = 1;

/// Checks and compiles a `rate_limit`; `None` when it has problems (all reported).
pub(super) fn compile(problems: &mut Problems, at: &At<RateLimitsDoc>) -> Option<Compiled> {
    match &at.value {
        RateLimitsDoc::One(doc) => {
            let (limit, replaces) = one(problems, doc, position(at), &[])?;
            Some(Compiled { limit, replaces })
        }
        RateLimitsDoc::List(items) => list(problems, items, position(at)),
    }
}

fn list(
    problems: &mut Problems,
    items: &[At<Item<RateLimitDoc>>],
    at: Position,
) -> Option<Compiled> {
    let errors_before = problems.count();
    if items.is_empty() {
        problems.error("rate_limit list must not be empty", Some(at));
    }
    if items.len() > MAX_LIST_LIMITS {
        problems.error(
            format!(
                "a rate_limit list holds at most {MAX_LIST_LIMITS} limits, found {}",
                items.len()
            ),
            Some(at),
        );
    }
    // A list's limits are one rule: none of them may replace another's name (it would drop the
    // rule itself).
    let names: Vec<&str> = items
        .iter()
        .filter_map(|item| match &item.value {
            Item::Map(doc) => doc.name.as_ref().map(|name| name.value.as_str()),
            Item::NotAMap(_) => None,
        })
        .collect();
    let mut rates: Vec<Rate> = Vec::new();
    let mut replaces = Vec::new();
    for item in items {
        let doc = match &item.value {
            Item::Map(doc) => doc,
            Item::NotAMap(text) => {
                problems.error(
                    format!("config error, yaml file contains list of type other than map: {text}"),
                    Some(position(item)),
                );
                continue;
            }
        };
        if let Some(unlimited) = doc.unlimited.as_ref().filter(|flag| flag.value) {
            problems.error(
                "unlimited cannot be used in a rate_limit list",
                Some(position(unlimited)),
            );
            continue;
        }
        let Some((Limit::Single(rate), mut named)) = one(problems, doc, position(item), &names)
        else {
            continue;
        };
        let same = |other: &Rate| {
            other.algorithm == rate.algorithm && other.window_secs() == rate.window_secs()
        };
        if rates.iter().any(same) {
            problems.error(
                format!(
                    "duplicate limit in rate_limit list: {} over {} seconds",
                    rate.algorithm,
                    rate.window_secs()
                ),
                Some(position(item)),
            );
            continue;
        }
        rates.push(rate);
        replaces.append(&mut named);
    }
    (problems.count() == errors_before).then_some(Compiled {
        limit: Limit::List(rates),
        replaces,
    })
}

/// One map: its limit (a single rate, or unlimited) and the names it replaces, which must be
/// none of `rule_names` (the other names of its rule) nor its own. `at` is the map's place.
fn one(
    problems: &mut Problems,
    doc: &RateLimitDoc,
    at: Position,
    rule_names: &[&str],
) -> Option<(Limit, Vec<String>)> {
    let errors_before = problems.count();
    problems.stray_keys(&doc.stray_keys);
    let unit = unit(problems, doc, at);
    let requests_per_unit = doc
        .requests_per_unit
        .as_ref()
        .map_or(Some(0), |n| requests_per_unit(problems, n));
    let name = doc
        .name
        .as_ref()
        .map(|n| n.value.clone())
        .filter(|n| !n.is_empty());
    let own: Vec<&str> = rule_names.iter().copied().chain(name.as_deref()).collect();
    let replaces = replaces(problems, &doc.replaces, &own);
    if doc.is_unlimited() {
        unlimited_alone(problems, doc);
    }
    let limit = match (doc.is_unlimited(), unit, requests_per_unit) {
        (true, _, _) => Limit::Unlimited { name },
        (false, Some(unit), Some(requests_per_unit)) => Limit::Single(extended(
            problems,
            doc,
            Rate {
                name,
                ..Rate::fixed(unit, requests_per_unit)
            },
        )),
        _ => return None,
    };
    (problems.count() == errors_before).then_some((limit, replaces))
}

/// The rate limit's unit; an unlimited rule must have none, any other a known one.
fn unit(problems: &mut Problems, doc: &RateLimitDoc, at: Position) -> Option<Unit> {
    let text = doc.unit.as_ref().map(|u| u.value.as_str()).unwrap_or("");
    let unit_at = doc.unit.as_ref().map(position).or(Some(at));
    let unit = Unit::parse(text);
    match (doc.is_unlimited(), unit) {
        (true, Some(_)) => {
            problems.error("should not specify rate limit unit when unlimited", unit_at)
        }
        (_, None) if !(doc.is_unlimited() && text.is_empty()) => {
            let hint = did_you_mean(text, &suggest::UNITS);
            problems.error(format!("invalid rate limit unit '{text}'{hint}"), unit_at)
        }
        _ => {}
    }
    unit
}

/// An unlimited limit has no window, no algorithm and no bucket.
fn unlimited_alone(problems: &mut Problems, doc: &RateLimitDoc) {
    let fields = [
        (
            "unit_multiplier",
            doc.unit_multiplier.as_ref().map(position),
        ),
        ("algorithm", doc.algorithm.as_ref().map(position)),
        ("burst", doc.burst.as_ref().map(position)),
    ];
    for (field, at) in fields {
        if at.is_some() {
            problems.error(format!("should not specify {field} when unlimited"), at);
        }
    }
}

/// `rate` (a fixed window of one unit) with the fields beyond the Go service's applied.
fn extended(problems: &mut Problems, doc: &RateLimitDoc, mut rate: Rate) -> Rate {
    if let Some(multiplier) = &doc.unit_multiplier
        && let Some(value) = whole(problems, "unit_multiplier", multiplier)
    {
        rate.unit_multiplier = value;
        if rate.window_secs() > MAX_WINDOW_SECS {
            problems.error(
                format!(
                    "a window (unit x unit_multiplier) must be at most a year ({MAX_WINDOW_SECS} seconds), found {} seconds",
                    rate.window_secs()
                ),
                Some(position(multiplier)),
            );
        }
    }
    if let Some(algorithm) = &doc.algorithm {
        match Algorithm::parse(&algorithm.value) {
            None => problems.error(
                format!(
                    "invalid rate limit algorithm '{}' (fixed_window, sliding_window or token_bucket)",
                    algorithm.value
                ),
                Some(position(algorithm)),
            ),
            Some(_) if rate.requests_per_unit == 0 => problems.error(
                "an algorithm has no meaning with requests_per_unit 0, which refuses every request",
                Some(position(algorithm)),
            ),
            Some(parsed) => rate.algorithm = parsed,
        }
    }
    if let Some(burst) = &doc.burst {
        if rate.algorithm != Algorithm::TokenBucket {
            problems.error(
                "burst can only be used with algorithm token_bucket",
                Some(position(burst)),
            );
        } else if let Some(value) = whole(problems, "burst", burst) {
            rate.burst = value;
        }
    }
    if rate.algorithm == Algorithm::TokenBucket {
        bucket_in_range(problems, &rate, doc.algorithm.as_ref().map(position));
    }
    rate
}

/// A token bucket refills at most a token per microsecond, and fills within a year. A window
/// over a year is already refused (and would overflow these sums).
fn bucket_in_range(problems: &mut Problems, rate: &Rate, at: Option<Position>) {
    if rate.window_secs() > MAX_WINDOW_SECS {
        return;
    }
    let window_us = rate.window_secs() * 1_000_000;
    let requests = u64::from(rate.requests_per_unit.max(1));
    if window_us / requests < MIN_REFILL_US {
        problems.error(
            format!(
                "a token_bucket refills at most one token per microsecond, found {} per {} seconds",
                rate.requests_per_unit,
                rate.window_secs()
            ),
            at,
        );
    }
    let fill_secs = u64::from(rate.burst) * rate.window_secs() / requests;
    if fill_secs > MAX_WINDOW_SECS {
        problems.error(
            format!(
                "a token_bucket must fill within a year ({MAX_WINDOW_SECS} seconds), found {fill_secs} seconds for burst {}",
                rate.burst
            ),
            at,
        );
    }
}

/// A field that must be an integer from 1 to `u32::MAX`.
fn whole(problems: &mut Problems, field: &str, at: &At<Scalar>) -> Option<u32> {
    if let Scalar::Int(n) = at.value
        && let Ok(n) = u32::try_from(n)
        && n > 0
    {
        return Some(n);
    }
    problems.error(
        format!(
            "{field} must be an integer from 1 to {}, found {}",
            u32::MAX,
            at.value
        ),
        Some(position(at)),
    );
    None
}

/// The names of the rules this one `replaces`; never empty, never one of its `own` names.
fn replaces(problems: &mut Problems, items: &[At<Item<ReplaceDoc>>], own: &[&str]) -> Vec<String> {
    let mut replaces = Vec::new();
    for item in items {
        let replaced = match &item.value {
            Item::NotAMap(text) => {
                let message =
                    format!("config error, yaml file contains list of type other than map: {text}");
                problems.error(message, Some(position(item)));
                continue;
            }
            Item::Map(replace) => {
                problems.stray_keys(&replace.stray_keys);
                replace
                    .name
                    .as_ref()
                    .map(|n| n.value.as_str())
                    .unwrap_or("")
            }
        };
        if replaced.is_empty() {
            problems.error(
                "should not have an empty replaces entry",
                Some(position(item)),
            );
        } else if own.contains(&replaced) {
            problems.error(
                "replaces should not contain name of same descriptor",
                Some(position(item)),
            );
        } else {
            replaces.push(replaced.to_string());
        }
    }
    replaces
}

fn requests_per_unit(problems: &mut Problems, at: &At<Scalar>) -> Option<u32> {
    if let Scalar::Int(n) = at.value
        && let Ok(n) = u32::try_from(n)
    {
        return Some(n);
    }
    let prefix = match at.value {
        Scalar::Float(_) => "error checking config",
        _ => "error loading config file",
    };
    let message = format!(
        "{prefix}: requests_per_unit must be an integer from 0 to {}, found {}",
        u32::MAX,
        at.value
    );
    problems.error(message, Some(position(at)));
    None
}
