//! "Did you mean": the known word closest to a misspelt one (a key, a unit), when one is close
//! enough to be what was meant.

/// Keys a config file may hold, at any level.
pub const KEYS: [&str; 19] = [
    "domain",
    "descriptors",
    "key",
    "value",
    "rate_limit",
    "unit",
    "requests_per_unit",
    "unit_multiplier",
    "algorithm",
    "burst",
    "unlimited",
    "name",
    "replaces",
    "shadow_mode",
    "quota_mode",
    "detailed_metric",
    "value_to_metric",
    "share_threshold",
    "metadata",
];

/// Units a rate limit may have (case-insensitive).
pub const UNITS: [&str; 7] = ["second", "minute", "hour", "day", "week", "month", "year"];

/// ` (did you mean 'x'?)` for the closest of `known` to `word`, or nothing when none is close:
/// at most a third of the word's letters differ (rounded up), ignoring case and `_`.
pub fn did_you_mean(word: &str, known: &[&str]) -> String {
    let plain = |text: &str| text.to_ascii_lowercase().replace('_', "");
    let typed = plain(word);
    if typed.is_empty() {
        return String::new();
    }
    let most = typed.chars().count().div_ceil(3);
    known
        .iter()
        .map(|candidate| (distance(&typed, &plain(candidate)), candidate))
        .filter(|(distance, _)| *distance <= most)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| format!(" (did you mean '{candidate}'?)"))
        .unwrap_or_default()
}

/// Levenshtein distance: the fewest letters inserted, removed or replaced to turn `a` into `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, y) in b.iter().enumerate() {
            let replaced = previous[j] + usize::from(x != *y);
            current.push(replaced.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_suggested_and_far_ones_are_not() {
        assert_eq!(
            did_you_mean("ratelimit", &KEYS),
            " (did you mean 'rate_limit'?)"
        );
        assert_eq!(
            did_you_mean("requestsperunit", &KEYS),
            " (did you mean 'requests_per_unit'?)"
        );
        assert_eq!(did_you_mean("secnd", &UNITS), " (did you mean 'second'?)");
        assert_eq!(did_you_mean("Minutes", &UNITS), " (did you mean 'minute'?)");
        assert_eq!(did_you_mean("minit", &UNITS), " (did you mean 'minute'?)");
        assert_eq!(did_you_mean("fortnight", &UNITS), "");
        assert_eq!(did_you_mean("", &UNITS), "");
    }
}
