//! The hash tag that ends the keys of a list's limits: derived by the encoder from the domain
//! and levels as written (never from the scope), so every limit of one list lands in one Redis
//! Cluster hash slot, and every node derives the same tag. FNV-1a: stable across processes and
//! versions, unlike the hashers seeded per process.

/// FNV-1a's 64-bit offset basis and prime.
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Hex digits in a tag.
const DIGITS: usize = 16;

/// The tag of a key whose domain and levels are written as `domain` and `levels` (the levels
/// with their leading separators).
pub(super) fn of(domain: &str, levels: &str) -> u64 {
    domain
        .bytes()
        .chain([b'|'])
        .chain(levels.bytes())
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(PRIME)
        })
}

/// Appends `|{tag}`.
pub(super) fn push(key: &mut String, tag: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    key.push_str("|{");
    for shift in (0..DIGITS).rev() {
        key.push(char::from(HEX[((tag >> (4 * shift)) & 0xf) as usize]));
    }
    key.push('}');
}

/// The key without its tag, and the tag; `None` for a tag that [`push`] cannot write.
pub(super) fn split(key: &str) -> Option<(&str, Option<u64>)> {
    let Some((untagged, last)) = key.rsplit_once('|') else {
        return Some((key, None));
    };
    let Some(inner) = last.strip_prefix('{') else {
        return Some((key, None));
    };
    let hex = inner.strip_suffix('}')?;
    let canonical = hex.len() == DIGITS
        && hex
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !canonical {
        return None;
    }
    Some((untagged, Some(u64::from_str_radix(hex, 16).ok()?)))
}
