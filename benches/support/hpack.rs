//! Just enough HPACK (RFC 7541) for the raw gRPC client: the request's header block, encoded
//! once with literal fields that touch no table, and a reader of reply blocks that finds
//! `:status` and `grpc-status` without decoding anything else.
//!
//! The client announces a header table of size 0, so the server's encoder can refer to nothing
//! but the static table: every field it sends is static or literal. Literal strings may be
//! Huffman-coded (the `h2` crate always codes them); rather than decode them, the reader
//! compares them with the Huffman codes of the few words it looks for. Huffman codes are
//! canonical, so equal codes mean equal words.

/// The static table's `:status` entries (indexes 8 to 14); 8 is `:status: 200`.
const STATUS_200: u64 = 8;
const STATUS_ENTRIES: std::ops::RangeInclusive<u64> = 8..=14;

/// The static table's last index: anything above points into the dynamic table.
const STATIC_ENTRIES: u64 = 61;

/// Huffman codes (RFC 7541 Appendix B) of the characters of the words looked for.
const CODES: [(u8, u32, u8); 11] = [
    (b'0', 0b00000, 5),
    (b'2', 0b00010, 5),
    (b'a', 0b00011, 5),
    (b'c', 0b00100, 5),
    (b's', 0b01000, 5),
    (b't', 0b01001, 5),
    (b'-', 0b010110, 6),
    (b'g', 0b100110, 6),
    (b'p', 0b101011, 6),
    (b'r', 0b101100, 6),
    (b'u', 0b101101, 6),
];

/// The request's header block: `POST`, `http` (`https` when `secure`), then literal fields
/// without indexing.
pub fn request_block(path: &str, authority: &str, secure: bool) -> Vec<u8> {
    // Static indexes: 3 `:method: POST`, 6 `:scheme: http`, 7 `:scheme: https`; names 4
    // `:path`, 1 `:authority`, 31 `content-type`.
    let scheme = if secure { 7 } else { 6 };
    let mut block = vec![0x80 | 3, 0x80 | scheme];
    for (name, value) in [(4, path), (1, authority), (31, "application/grpc")] {
        integer(&mut block, 0x00, 4, name);
        string(&mut block, value);
    }
    block.push(0x00);
    string(&mut block, "te");
    string(&mut block, "trailers");
    block
}

fn integer(out: &mut Vec<u8>, flags: u8, prefix: u32, mut value: u64) {
    let max = (1u64 << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A string literal, not Huffman-coded.
fn string(out: &mut Vec<u8>, text: &str) {
    integer(out, 0x00, 7, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// What a reply's header blocks said so far.
#[derive(Clone, Copy, Default)]
pub struct Heard {
    pub status_200: bool,
    /// `Some(true)` for `grpc-status: 0`, `Some(false)` for any other status.
    pub grpc_ok: Option<bool>,
}

/// The words a reply is read for, plain and Huffman-coded.
pub struct Words {
    grpc_status: [Vec<u8>; 2],
    zero: [Vec<u8>; 2],
    two_hundred: [Vec<u8>; 2],
}

impl Words {
    pub fn new() -> Words {
        let both = |word: &str| [word.as_bytes().to_vec(), huffman(word)];
        Words {
            grpc_status: both("grpc-status"),
            zero: both("0"),
            two_hundred: both("200"),
        }
    }

    /// Reads one header block into `heard`; false when it cannot be read (malformed, or a
    /// reference to a dynamic table the server must not use).
    pub fn read(&self, mut block: &[u8], heard: &mut Heard) -> bool {
        while let Some(&first) = block.first() {
            let Some(rest) = self.field(first, block, heard) else {
                return false;
            };
            block = rest;
        }
        true
    }

    fn field<'b>(&self, first: u8, block: &'b [u8], heard: &mut Heard) -> Option<&'b [u8]> {
        if first & 0x80 != 0 {
            let (index, rest) = read_integer(block, 7)?;
            match index {
                STATUS_200 => heard.status_200 = true,
                index if STATUS_ENTRIES.contains(&index) => heard.status_200 = false,
                1..=STATIC_ENTRIES => {}
                _ => return None,
            }
            return Some(rest);
        }
        if first & 0xe0 == 0x20 {
            // A table size update.
            return read_integer(block, 5).map(|(_, rest)| rest);
        }
        let prefix = if first & 0x40 != 0 { 6 } else { 4 };
        let (index, rest) = read_integer(block, prefix)?;
        let (name, rest) = match index {
            0 => {
                let (name, rest) = read_string(rest)?;
                (Some(name), rest)
            }
            1..=STATIC_ENTRIES => (None, rest),
            _ => return None,
        };
        let (value, rest) = read_string(rest)?;
        if STATUS_ENTRIES.contains(&index) {
            heard.status_200 = is(value, &self.two_hundred);
        } else if name.is_some_and(|name| is(name, &self.grpc_status)) {
            heard.grpc_ok = Some(is(value, &self.zero));
        }
        Some(rest)
    }
}

/// A string as sent: Huffman-coded or not, and its bytes.
type Text<'b> = (bool, &'b [u8]);

fn is((huffman, bytes): Text<'_>, word: &[Vec<u8>; 2]) -> bool {
    bytes == word[usize::from(huffman)]
}

fn read_integer(block: &[u8], prefix: u32) -> Option<(u64, &[u8])> {
    let max = (1u64 << prefix) - 1;
    let (&first, mut rest) = block.split_first()?;
    let mut value = u64::from(first) & max;
    if value < max {
        return Some((value, rest));
    }
    let mut shift = 0;
    loop {
        let (&byte, after) = rest.split_first()?;
        rest = after;
        value += u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 || shift > 28 {
            return (byte & 0x80 == 0).then_some((value, rest));
        }
    }
}

fn read_string(block: &[u8]) -> Option<(Text<'_>, &[u8])> {
    let huffman = block.first()? & 0x80 != 0;
    let (length, rest) = read_integer(block, 7)?;
    let length = usize::try_from(length).ok()?;
    (rest.len() >= length).then(|| ((huffman, &rest[..length]), &rest[length..]))
}

/// `word` Huffman-coded, padded with ones to a whole byte.
fn huffman(word: &str) -> Vec<u8> {
    let (mut out, mut bits, mut pending) = (Vec::new(), 0u32, 0u64);
    for byte in word.bytes() {
        let &(_, code, length) = CODES
            .iter()
            .find(|(character, _, _)| *character == byte)
            .expect("a character with a known code");
        pending = (pending << length) | u64::from(code);
        bits += u32::from(length);
        while bits >= 8 {
            bits -= 8;
            out.push((pending >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((pending << (8 - bits)) as u8) | (0xff >> bits));
    }
    out
}
