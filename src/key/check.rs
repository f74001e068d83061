//! Keys of the HTTP `/check` sliding-window counters (see the module docs above for the layout).

use std::fmt::Write as _;

use super::escape::{escape_into, unescape};
use super::{CHECK_TAG, parse_number};

/// A `/check` counter: the caller's key, checked against `limit` hits per `window_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckKey {
    pub key: String,
    pub window_ms: u64,
    pub limit: u64,
}

impl CheckKey {
    /// Encodes the counter key. Injective, and never equal to a key from [`super::encode`].
    pub fn encode(&self) -> String {
        let mut encoded = String::with_capacity(self.key.len() + 32);
        encoded.push_str(CHECK_TAG);
        encoded.push('|');
        escape_into(&mut encoded, &self.key);
        // Writing to a String cannot fail.
        let _ = write!(encoded, "|{}|{}", self.window_ms, self.limit);
        encoded
    }

    /// Takes a `/check` key apart; `None` when it was not made by [`CheckKey::encode`].
    pub fn decode(encoded: &str) -> Option<CheckKey> {
        let mut parts = encoded.split('|');
        if parts.next()? != CHECK_TAG {
            return None;
        }
        let check = CheckKey {
            key: unescape(parts.next()?)?,
            window_ms: parse_number(parts.next()?)?,
            limit: parse_number(parts.next()?)?,
        };
        parts.next().is_none().then_some(check)
    }
}
