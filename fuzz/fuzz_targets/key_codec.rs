//! Counter keys. A first byte of 0 reads the rest as a key from outside (a Redis key, a
//! `DELETE /api/counters/{key}`): whatever decodes must encode back to exactly that text, and no
//! text decodes as both a rule key and a `/check` key. Otherwise the rest is structured: two
//! arbitrary rule keys and two `/check` keys, each of which must decode back to itself and
//! encode apart from the others unless equal.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ratelimiter::algorithm::Algorithm;
use ratelimiter::key::{self, CheckKey, DecodedKey, DecodedLevel, Scope};

#[derive(Arbitrary, Debug)]
struct Keys {
    a: RuleKey,
    b: RuleKey,
    c: CheckInput,
    d: CheckInput,
}

#[derive(Arbitrary, Debug)]
struct RuleKey {
    domain: String,
    scope: ScopeInput,
    first: LevelInput,
    more: Vec<LevelInput>,
}

#[derive(Arbitrary, Debug)]
enum ScopeInput {
    Rule(u64),
    Override(u64, u32),
    /// An algorithm (by its index in `Algorithm::ALL`), a window, and whether it is a list's.
    Limit(u8, u64, bool),
}

#[derive(Arbitrary, Debug)]
enum LevelInput {
    Exact(String, String),
    AnyValue(String, String),
    Wildcard(String, String, String),
    SharedWildcard(String, String),
}

#[derive(Arbitrary, Debug)]
struct CheckInput {
    key: String,
    window_ms: u64,
    limit: u64,
}

impl RuleKey {
    fn decoded(self) -> DecodedKey {
        let scope = match self.scope {
            ScopeInput::Rule(window_secs) => Scope::Rule { window_secs },
            ScopeInput::Override(window_secs, requests_per_unit) => Scope::Override {
                window_secs,
                requests_per_unit,
            },
            ScopeInput::Limit(algorithm, window_secs, listed) => Scope::Limit {
                algorithm: Algorithm::ALL[usize::from(algorithm) % Algorithm::ALL.len()],
                window_secs,
                listed,
            },
        };
        let levels = std::iter::once(self.first)
            .chain(self.more)
            .map(|level| match level {
                LevelInput::Exact(key, value) => DecodedLevel::Exact { key, value },
                LevelInput::AnyValue(key, value) => DecodedLevel::AnyValue { key, value },
                LevelInput::Wildcard(key, pattern, value) => DecodedLevel::Wildcard {
                    key,
                    pattern,
                    value,
                },
                LevelInput::SharedWildcard(key, pattern) => {
                    DecodedLevel::SharedWildcard { key, pattern }
                }
            })
            .collect();
        DecodedKey {
            domain: self.domain,
            scope,
            levels,
        }
    }
}

impl CheckInput {
    fn key(self) -> CheckKey {
        CheckKey {
            key: self.key,
            window_ms: self.window_ms,
            limit: self.limit,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, raw)) => {
            if let Ok(text) = std::str::from_utf8(raw) {
                outside_key(text);
            }
        }
        Some((_, rest)) => {
            if let Ok(keys) = Keys::arbitrary_take_rest(Unstructured::new(rest)) {
                made_keys(keys);
            }
        }
        None => {}
    }
});

fn outside_key(text: &str) {
    let rule = key::decode(text);
    let check = CheckKey::decode(text);
    if let Some(rule) = &rule {
        assert_eq!(rule.encode(), text, "{rule:?}");
    }
    if let Some(check) = &check {
        assert_eq!(check.encode(), text, "{check:?}");
    }
    assert!(
        rule.is_none() || check.is_none(),
        "{text:?} decodes as both"
    );
}

fn made_keys(keys: Keys) {
    let (a, b) = (keys.a.decoded(), keys.b.decoded());
    let (c, d) = (keys.c.key(), keys.d.key());
    let (ea, eb, ec, ed) = (a.encode(), b.encode(), c.encode(), d.encode());
    assert_eq!(key::decode(&ea).as_ref(), Some(&a), "{ea:?}");
    assert_eq!(key::decode(&eb).as_ref(), Some(&b), "{eb:?}");
    assert_eq!(CheckKey::decode(&ec).as_ref(), Some(&c), "{ec:?}");
    assert_eq!(CheckKey::decode(&ed).as_ref(), Some(&d), "{ed:?}");
    assert_eq!(a == b, ea == eb, "{a:?} and {b:?} give {ea:?} and {eb:?}");
    assert_eq!(c == d, ec == ed, "{c:?} and {d:?} give {ec:?} and {ed:?}");
    for (rule, rule_key) in [(&a, &ea), (&b, &eb)] {
        for check_key in [&ec, &ed] {
            assert_ne!(rule_key, check_key);
        }
        assert!(
            !untagged(rule, rule_key).contains(['{', '}', '\n']),
            "{rule_key:?}"
        );
    }
}

/// A rule key without the hash tag a list's keys end with (`|{` 16 lower-case hex digits `}`),
/// the only braces a key may hold: no client text can choose a Cluster slot.
fn untagged<'k>(rule: &DecodedKey, key: &'k str) -> &'k str {
    if !matches!(rule.scope, Scope::Limit { listed: true, .. }) {
        return key;
    }
    let (untagged, tag) = key
        .rsplit_once("|{")
        .expect("a list's key ends with its tag");
    let hex = tag.strip_suffix('}').expect("a tag ends with a brace");
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{key:?}"
    );
    untagged
}
