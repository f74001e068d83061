//! The escaping that makes counter keys injective: every byte the encoding uses as a separator,
//! `%` itself, Redis hash-tag braces and control characters become `%XX`.

/// Bytes that are escaped: the encoding's separators, `%` itself, Redis hash-tag braces and
/// control characters (so keys print on one line).
fn needs_escape(byte: u8) -> bool {
    ESCAPED[usize::from(byte)]
}

/// [`needs_escape`] as a table: one load per byte on the request path, where keys are built.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = byte < 0x20 || byte == 0x7f;
        byte += 1;
    }
    let separators = *b"%|=?~{}";
    let mut at = 0;
    while at < separators.len() {
        table[separators[at] as usize] = true;
        at += 1;
    }
    table
};

pub(super) fn escape_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.bytes().position(needs_escape) {
        out.push_str(&rest[..at]);
        let byte = rest.as_bytes()[at];
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends a number in decimal without the formatting machinery (it is on the request path).
pub(super) fn push_number(out: &mut String, mut number: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&digit| char::from(digit)));
}

pub(super) fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'%' {
            // Exactly what `escape_into` writes: two upper-case hex digits (`from_str_radix`
            // alone would also take `+3` or `a0`) of a byte that needs escaping.
            let hex = text.get(at + 1..at + 3)?;
            if !hex.bytes().all(|b| HEX.contains(&b)) {
                return None;
            }
            let decoded = u8::from_str_radix(hex, 16).ok()?;
            if !needs_escape(decoded) {
                return None;
            }
            out.push(decoded);
            at += 3;
        } else if needs_escape(byte) {
            return None;
        } else {
            out.push(byte);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}
