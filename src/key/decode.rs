//! Keys taken apart again (for `/api/counters`): the exact inverse of [`super::encode`], which
//! refuses anything the encoder cannot write, a tag that does not match its key included.

use super::escape::unescape;
use super::{Level, Scope, VERSION, algorithm_letter, encode, parse_number, tag};
use crate::algorithm::Algorithm;

/// A key taken apart again; the inverse of [`super::encode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedKey {
    pub domain: String,
    pub scope: Scope,
    pub levels: Vec<DecodedLevel>,
}

/// An owned [`Level`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodedLevel {
    Exact {
        key: String,
        value: String,
    },
    AnyValue {
        key: String,
        value: String,
    },
    Wildcard {
        key: String,
        pattern: String,
        value: String,
    },
    SharedWildcard {
        key: String,
        pattern: String,
    },
}

impl DecodedKey {
    /// Encodes the key again: `decode(&key)?.encode() == key` for every key [`decode`] accepts.
    pub fn encode(&self) -> String {
        encode(
            &self.domain,
            self.scope,
            self.levels.iter().map(DecodedLevel::as_level),
        )
    }
}

impl DecodedLevel {
    /// The borrowed [`Level`] this was decoded from.
    pub fn as_level(&self) -> Level<'_> {
        match self {
            DecodedLevel::Exact { key, value } => Level::Exact { key, value },
            DecodedLevel::AnyValue { key, value } => Level::AnyValue { key, value },
            DecodedLevel::Wildcard {
                key,
                pattern,
                value,
            } => Level::Wildcard {
                key,
                pattern,
                value,
            },
            DecodedLevel::SharedWildcard { key, pattern } => Level::SharedWildcard { key, pattern },
        }
    }

    /// The descriptor entry's key.
    pub fn key(&self) -> &str {
        match self {
            DecodedLevel::Exact { key, .. }
            | DecodedLevel::AnyValue { key, .. }
            | DecodedLevel::Wildcard { key, .. }
            | DecodedLevel::SharedWildcard { key, .. } => key,
        }
    }

    /// The value the counter stands for: the request's value, or the pattern when shared.
    pub fn value(&self) -> &str {
        match self {
            DecodedLevel::Exact { value, .. }
            | DecodedLevel::AnyValue { value, .. }
            | DecodedLevel::Wildcard { value, .. } => value,
            DecodedLevel::SharedWildcard { pattern, .. } => pattern,
        }
    }
}

/// Takes a key apart; `None` when it was not made by [`super::encode`].
pub fn decode(key: &str) -> Option<DecodedKey> {
    let (untagged, tag) = tag::split(key)?;
    let mut parts = untagged.split('|');
    if parts.next()? != VERSION {
        return None;
    }
    let domain_text = parts.next()?;
    let domain = unescape(domain_text)?;
    let scope_text = parts.next()?;
    let mut scope = decode_scope(scope_text)?;
    let levels_start = VERSION.len() + domain_text.len() + scope_text.len() + 2;
    match (&mut scope, tag) {
        (_, None) => {}
        (Scope::Limit { listed, .. }, Some(tag)) => {
            *listed = tag == tag::of(domain_text, &untagged[levels_start..]);
            if !*listed {
                return None;
            }
        }
        (_, Some(_)) => return None,
    }
    let levels = parts.map(decode_level).collect::<Option<Vec<_>>>()?;
    if levels.is_empty() {
        return None;
    }
    Some(DecodedKey {
        domain,
        scope,
        levels,
    })
}

fn decode_scope(text: &str) -> Option<Scope> {
    let algorithm = Algorithm::ALL
        .into_iter()
        .find(|&algorithm| text.starts_with(algorithm_letter(algorithm)));
    if let Some(algorithm) = algorithm {
        return Some(Scope::Limit {
            algorithm,
            window_secs: parse_number(&text[1..])?,
            listed: false,
        });
    }
    Some(match text.split_once('x') {
        None => Scope::Rule {
            window_secs: parse_number(text)?,
        },
        Some((window, requests)) => Scope::Override {
            window_secs: parse_number(window)?,
            requests_per_unit: parse_number(requests)?,
        },
    })
}

fn decode_level(text: &str) -> Option<DecodedLevel> {
    let split = text.find(['=', '?', '~'])?;
    let key = unescape(&text[..split])?;
    let rest = &text[split + 1..];
    match text.as_bytes()[split] {
        b'=' => Some(DecodedLevel::Exact {
            key,
            value: unescape(rest)?,
        }),
        b'?' => Some(DecodedLevel::AnyValue {
            key,
            value: unescape(rest)?,
        }),
        _ => match rest.split_once('=') {
            Some((pattern, value)) => Some(DecodedLevel::Wildcard {
                key,
                pattern: unescape(pattern)?,
                value: unescape(value)?,
            }),
            None => Some(DecodedLevel::SharedWildcard {
                key,
                pattern: unescape(rest)?,
            }),
        },
    }
}
