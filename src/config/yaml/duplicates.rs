//! Keys written twice in one mapping. The parser refuses such a mapping itself, except when YAML
//! tags make the two keys differ to it (`!a x` and `!b x`): both read as `x` here, so the
//! mappings read here check their keys too.

use std::collections::HashSet;

use serde::de;

/// What a key written twice in one mapping is told.
pub fn appears_twice(key: &str) -> String {
    format!(
        "the key '{key}' appears twice in one mapping; keep one of them (the Go service silently keeps the last, which hides the mistake)"
    )
}

/// The keys of one mapping read so far.
#[derive(Default)]
pub struct KeysSeen(HashSet<String>);

impl KeysSeen {
    /// Notes `key`, refusing it when the mapping had it already.
    pub fn first<E: de::Error>(&mut self, key: &str) -> Result<(), E> {
        if self.0.insert(key.to_string()) {
            Ok(())
        } else {
            Err(E::custom(appears_twice(key)))
        }
    }
}
