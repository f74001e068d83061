//! The environment read with the Go service's parsing (kelseyhightower/envconfig over Go's
//! `strconv` and `time.ParseDuration`), remembering which variables were read so that nothing
//! set is left unread without a word.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

/// A Go variable set to a value that cannot be honoured here (the reason says whether the Go
/// service refuses it too).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {why}")]
pub struct GoNameError {
    name: &'static str,
    value: String,
    why: String,
}

impl GoNameError {
    pub fn new(name: &'static str, value: &str, why: &str) -> GoNameError {
        GoNameError {
            name,
            value: value.to_string(),
            why: why.to_string(),
        }
    }

    /// The variable refused.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The environment, read with Go's parsing.
pub struct GoEnv<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'e> GoEnv<'e> {
    pub fn new(env: &'e dyn Fn(&str) -> Option<String>) -> GoEnv<'e> {
        GoEnv {
            env,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// The variables read so far that were set.
    pub fn read(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// Whether `name` is set, without counting it as read.
    pub fn is_set(&self, name: &str) -> bool {
        (self.env)(name).is_some()
    }

    /// Set, even to the empty string (envconfig counts an empty value as set).
    pub fn string(&self, name: &'static str) -> Option<String> {
        let value = (self.env)(name);
        if value.is_some() {
            self.read.borrow_mut().insert(name);
        }
        value
    }

    /// Set and not empty.
    pub fn non_empty(&self, name: &'static str) -> Option<String> {
        self.string(name).filter(|value| !value.is_empty())
    }

    /// Refuses `name` when it is true: what it asks for is not built here (`why` says so).
    pub fn refuse_true(&self, name: &'static str, why: &str) -> Result<(), GoNameError> {
        match self.bool(name)? {
            Some(true) => Err(GoNameError::new(name, "true", why)),
            _ => Ok(()),
        }
    }

    /// Refuses `name` when it is set and not empty (`why` says what is not supported).
    pub fn refuse_set(&self, name: &'static str, why: &str) -> Result<(), GoNameError> {
        match self.non_empty(name) {
            Some(value) => Err(GoNameError::new(name, &value, why)),
            None => Ok(()),
        }
    }

    /// Go's `strconv.ParseBool`.
    pub fn bool(&self, name: &'static str) -> Result<Option<bool>, GoNameError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(Some(false)),
            Some(other) => Err(GoNameError::new(name, other, "expected true or false")),
        }
    }

    /// Go's `strconv.ParseInt(text, 0, 64)`: decimal, `0x`, `0o`, `0b` and leading-`0` octal,
    /// `_` between digits.
    pub fn int(&self, name: &'static str) -> Result<Option<i64>, GoNameError> {
        let Some(text) = self.string(name) else {
            return Ok(None);
        };
        parse_go_int(&text).map(Some).ok_or_else(|| {
            let why = if text.contains("://") {
                "not an integer; this looks like a Kubernetes service link (set enableServiceLinks: false on the pod)"
            } else {
                "not an integer"
            };
            GoNameError::new(name, &text, why)
        })
    }

    /// A port number (an int in Go, which then fails to listen when out of range).
    pub fn port(&self, name: &'static str) -> Result<Option<u16>, GoNameError> {
        let Some(port) = self.int(name)? else {
            return Ok(None);
        };
        u16::try_from(port)
            .map(Some)
            .map_err(|_| GoNameError::new(name, &port.to_string(), "not a port number"))
    }

    /// Go's `strconv.ParseFloat`.
    pub fn float(&self, name: &'static str) -> Result<Option<f64>, GoNameError> {
        let Some(text) = self.string(name) else {
            return Ok(None);
        };
        text.parse()
            .map(Some)
            .map_err(|_| GoNameError::new(name, &text, "not a number"))
    }

    /// Go's `time.ParseDuration`; negative durations are refused here.
    pub fn duration(&self, name: &'static str) -> Result<Option<Duration>, GoNameError> {
        let Some(text) = self.string(name) else {
            return Ok(None);
        };
        parse_go_duration(&text)
            .map(Some)
            .map_err(|why| GoNameError::new(name, &text, why))
    }

    /// envconfig's `map[string]string`: `k1:v1,k2:v2`, no trimming, one `:` per item.
    pub fn map(&self, name: &'static str) -> Result<Option<Vec<(String, String)>>, GoNameError> {
        let Some(text) = self.string(name) else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(Some(Vec::new()));
        }
        text.split(',')
            .map(|item| match item.split(':').collect::<Vec<_>>()[..] {
                [key, value] => Ok((key.to_string(), value.to_string())),
                _ => Err(GoNameError::new(
                    name,
                    &text,
                    &format!("invalid map item: {item:?}"),
                )),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }
}

fn parse_go_int(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    // Go allows `_` only between digits (and after a base prefix).
    if digits.is_empty() || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    if radix == 10 && digits.starts_with('_') {
        return None;
    }
    let magnitude = i64::from_str_radix(&digits.replace('_', ""), radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `300ms`, `1h30m`, `1.5h`, `2us`, bare `0`; `10` (no unit) and `1d` are refused as in Go.
pub fn parse_go_duration(text: &str) -> Result<Duration, &'static str> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.starts_with('-') {
        return Err("a negative duration has no meaning here");
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err("not a duration (examples: 300ms, 10s, 1h30m)");
    }
    let mut seconds = 0.0_f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("missing unit in duration (ns, us, ms, s, m, h)")?;
        let number: f64 = rest[..number_end]
            .parse()
            .map_err(|_| "not a duration (examples: 300ms, 10s, 1h30m)")?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err("unknown unit in duration (ns, us, ms, s, m, h)"),
        };
        seconds += number * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| "duration out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_durations_parse_as_go_parses_them() {
        for (text, value) in [
            ("8080", 8080),
            ("+5", 5),
            ("0x1F", 31),
            ("010", 8),
            ("1_000", 1000),
        ] {
            assert_eq!(parse_go_int(text), Some(value), "{text}");
        }
        for text in ["08080", " 80", "", "tcp://10.0.0.1:8125", "1__0", "_1"] {
            assert_eq!(parse_go_int(text), None, "{text:?}");
        }
        for (text, millis) in [
            ("10s", 10_000),
            ("1h30m", 5_400_000),
            ("300ms", 300),
            ("1.5h", 5_400_000),
            ("0", 0),
        ] {
            assert_eq!(
                parse_go_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        assert_eq!(parse_go_duration("2us"), Ok(Duration::from_micros(2)));
        for text in ["10", "1d", "", "-1s", "s"] {
            assert!(parse_go_duration(text).is_err(), "{text:?}");
        }
    }
}
