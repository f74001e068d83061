//! Counter keys: an injective, versioned text encoding of (domain, rule, request values).
//!
//! envoyproxy/ratelimit joins parts with `_`, so `(a_b, c)` and `(a, b_c)` share a counter. Here
//! every part is percent-escaped so that the separators can only come from the encoder, and the
//! way each level matched (exact value, any value, wildcard) and the window length are part of the
//! key, so the same descriptor under two different rules never shares a counter. The window's
//! start is not in the key: stores keep it beside the count, so one authority (the store's clock)
//! decides when a window rolls over.
//!
//! ```text
//! key   := "1|" domain "|" scope ("|" level)+ ["|{" tag "}"]
//! scope := window_secs                               a rule's fixed window (the Go service's)
//!        | window_secs "x" requests_per_unit         a request's own limit
//!        | ("f" | "s" | "t") window_secs             a fixed or sliding window, a token bucket
//! level := k "=" v | k "?" v | k "~" pattern "=" v | k "~" pattern
//!          exact      any value  wildcard              shared wildcard (share_threshold)
//! tag   := 16 hex digits                             limits of a list only
//! ```
//!
//! No `{` or `}` survives escaping, so no request value can pick a Redis Cluster hash slot. The
//! limits of one list must be counted in one script call, so on a Cluster in one hash slot: their
//! keys end with a hash tag that the encoder derives from everything but the scope (a 64-bit
//! FNV-1a of the domain and levels as written), the same for every limit of the list and for
//! every node, and chosen by no client.
//!
//! The HTTP `/check` counts sliding windows under keys of their own, which carry the caller's
//! key, the window and the limit (so that each counter shows its own limit, and the same key
//! checked against two limits counts twice). Their first component is never `1`, so they can
//! never meet a key above:
//!
//! ```text
//! check := "c1|" key "|" window_ms "|" limit
//! ```

mod check;
mod decode;
mod escape;
mod tag;

pub use check::CheckKey;

/// The hash tag that ends the key of a list's limit (the same for every limit of the list);
/// `None` for any other key.
pub fn list_tag(key: &str) -> Option<u64> {
    tag::split(key)?.1
}
pub use decode::{DecodedKey, DecodedLevel, decode};
use escape::{escape_into, push_number};

use crate::algorithm::Algorithm;

/// Encoding version, the key's first component; bump it when the layout changes.
pub(crate) const VERSION: &str = "1";

/// First component of `/check` keys; versioned like [`VERSION`].
const CHECK_TAG: &str = "c1";

/// Which limit a counter belongs to, besides its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A limit from the configuration, counted in windows of this many seconds.
    Rule { window_secs: u64 },
    /// A limit carried by the request itself (`RateLimitDescriptor.limit`).
    Override {
        window_secs: u64,
        requests_per_unit: u32,
    },
    /// A limit the Go service cannot express: another algorithm, or (`listed`) one limit of a
    /// rule's list, whose keys share a hash tag.
    Limit {
        algorithm: Algorithm,
        window_secs: u64,
        listed: bool,
    },
}

impl Scope {
    pub fn window_secs(self) -> u64 {
        match self {
            Scope::Rule { window_secs }
            | Scope::Override { window_secs, .. }
            | Scope::Limit { window_secs, .. } => window_secs,
        }
    }

    /// How the counter counts: a fixed window but for [`Scope::Limit`].
    pub fn algorithm(self) -> Algorithm {
        match self {
            Scope::Limit { algorithm, .. } => algorithm,
            Scope::Rule { .. } | Scope::Override { .. } => Algorithm::FixedWindow,
        }
    }
}

/// The letter of an algorithm in a [`Scope::Limit`].
pub(crate) fn algorithm_letter(algorithm: Algorithm) -> char {
    match algorithm {
        Algorithm::FixedWindow => 'f',
        Algorithm::SlidingWindow => 's',
        Algorithm::TokenBucket => 't',
    }
}

/// How one descriptor entry matched its rule level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level<'a> {
    /// The rule names this exact value.
    Exact { key: &'a str, value: &'a str },
    /// The rule names only the key; any value matches and each value counts apart.
    AnyValue { key: &'a str, value: &'a str },
    /// A wildcard value pattern matched; each value counts apart.
    Wildcard {
        key: &'a str,
        pattern: &'a str,
        value: &'a str,
    },
    /// A wildcard with `share_threshold`: every matching value shares one counter.
    SharedWildcard { key: &'a str, pattern: &'a str },
}

/// Encodes a counter key. Injective: two different inputs never give the same key.
pub fn encode<'a>(
    domain: &str,
    scope: Scope,
    levels: impl IntoIterator<Item = Level<'a>>,
) -> String {
    // Room for a typical key without growing: the parts, their separators and a few escapes.
    let mut key = String::with_capacity(domain.len() + 96);
    key.push_str(VERSION);
    key.push('|');
    escape_into(&mut key, domain);
    let domain_end = key.len();
    key.push('|');
    match scope {
        Scope::Rule { window_secs } => push_number(&mut key, window_secs),
        Scope::Override {
            window_secs,
            requests_per_unit,
        } => {
            push_number(&mut key, window_secs);
            key.push('x');
            push_number(&mut key, requests_per_unit.into());
        }
        Scope::Limit {
            algorithm,
            window_secs,
            ..
        } => {
            key.push(algorithm_letter(algorithm));
            push_number(&mut key, window_secs);
        }
    }
    let levels_start = key.len();
    for level in levels {
        key.push('|');
        match level {
            Level::Exact { key: k, value } => {
                escape_into(&mut key, k);
                key.push('=');
                escape_into(&mut key, value);
            }
            Level::AnyValue { key: k, value } => {
                escape_into(&mut key, k);
                key.push('?');
                escape_into(&mut key, value);
            }
            Level::Wildcard {
                key: k,
                pattern,
                value,
            } => {
                escape_into(&mut key, k);
                key.push('~');
                escape_into(&mut key, pattern);
                key.push('=');
                escape_into(&mut key, value);
            }
            Level::SharedWildcard { key: k, pattern } => {
                escape_into(&mut key, k);
                key.push('~');
                escape_into(&mut key, pattern);
            }
        }
    }
    if let Scope::Limit { listed: true, .. } = scope {
        let tag = tag::of(&key[VERSION.len() + 1..domain_end], &key[levels_start..]);
        tag::push(&mut key, tag);
    }
    key
}

/// A number as [`encode`] writes it: decimal digits, without leading zeros (so that each number
/// has one text, and a decoded key encodes back to exactly the key it was read from).
pub(crate) fn parse_number<T: std::str::FromStr>(text: &str) -> Option<T> {
    let canonical = match text.as_bytes() {
        [] => false,
        [b'0', _, ..] => false,
        digits => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(secs: u64) -> Scope {
        Scope::Rule { window_secs: secs }
    }

    #[test]
    fn underscore_joins_that_collide_in_the_go_service_do_not_collide_here() {
        let a = encode(
            "d",
            rule(60),
            [Level::Exact {
                key: "a_b",
                value: "c",
            }],
        );
        let b = encode(
            "d",
            rule(60),
            [Level::Exact {
                key: "a",
                value: "b_c",
            }],
        );
        assert_ne!(a, b);
        let one_entry = encode(
            "d",
            rule(60),
            [Level::AnyValue {
                key: "user",
                value: "alice_path_/x",
            }],
        );
        let two_entries = encode(
            "d",
            rule(60),
            [
                Level::AnyValue {
                    key: "user",
                    value: "alice",
                },
                Level::AnyValue {
                    key: "path",
                    value: "/x",
                },
            ],
        );
        assert_ne!(one_entry, two_entries);
    }

    #[test]
    fn separators_braces_and_control_bytes_are_escaped() {
        let key = encode(
            "d|x",
            rule(1),
            [Level::Exact {
                key: "k=",
                value: "{tag}\n\0|%é",
            }],
        );
        assert_eq!(key, "1|d%7Cx|1|k%3D=%7Btag%7D%0A%00%7C%25é");
        assert!(!key.contains('{') && !key.contains('\n'));
    }

    #[test]
    fn decode_rejects_what_encode_cannot_produce() {
        for bad in [
            "",
            "2|d|60|k=v",
            "1|d|60",
            "1|d|6a|k=v",
            "1|d|60|k",
            "1|d|60|k=%7b",
            "1|d|60|k=%41",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    /// Found by the key_codec fuzz target: `c1|usser:42|000|10` decoded as the key of window 0,
    /// which encodes as `c1|usser:42|0|10`; two texts named one counter in `/api/counters`.
    #[test]
    fn numbers_with_leading_zeros_are_not_keys() {
        for bad in ["1|d|060|k=v", "1|d|60x05|k=v", "1|d|00|k=v"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        for bad in ["c1|usser:42|000|10", "c1|k|060000|5", "c1|k|1000|01"] {
            assert_eq!(CheckKey::decode(bad), None, "{bad:?}");
        }
        let zero = "1|d|0x0|k=v";
        assert_eq!(decode(zero).map(|key| key.encode()).as_deref(), Some(zero));
    }

    /// Found by the key_codec fuzz target: `%+3` was read as the escape of byte 3 (the hex
    /// parser takes a sign), so `1||3|%+3+3D=` decoded and encoded back as `1||3|%03+3D=`.
    #[test]
    fn escapes_are_two_upper_case_hex_digits() {
        for bad in ["1||3|%+3+3D=", "1|d|1|k=%-1", "1|d|1|k=%7c", "1|d|1|k=% 3"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(CheckKey::decode("c1|%+3|1|1"), None);
        let escaped = "1|d|1|k=%7C%0A";
        assert_eq!(
            decode(escaped).map(|key| key.encode()).as_deref(),
            Some(escaped)
        );
    }

    #[test]
    fn check_keys_escape_the_callers_key_and_never_decode_as_rule_keys() {
        let check = CheckKey {
            key: "user|1=%{x}".into(),
            window_ms: 60_000,
            limit: 5,
        };
        let encoded = check.encode();
        assert_eq!(encoded, "c1|user%7C1%3D%25%7Bx%7D|60000|5");
        assert_eq!(CheckKey::decode(&encoded), Some(check));
        assert_eq!(decode(&encoded), None);
        for bad in [
            "c1|k|60000",
            "c1|k|60000|5|6",
            "c1|k|-1|5",
            "c2|k|1|1",
            "c1|k%7c|1|1",
        ] {
            assert_eq!(CheckKey::decode(bad), None, "{bad:?}");
        }
    }
}
