//! Opaque page cursors (`pages.next.starting_after`) and query-string decoding.
//!
//! Intercom's cursors are base64 text with line breaks in it (Ruby's `encode64`: a newline after
//! every 60 characters and one at the end), so `+`, `/`, `=` and `\n` all appear in them and a client
//! must percent-encode the cursor it sends back. The fake's cursors have the same shape: 48 bytes
//! (a marker that always encodes as `+/+/`, the position scrambled, and a check) in 64 base64
//! characters, broken after the 60th. Query strings are decoded the way Intercom's Rails stack does
//! it, `+` meaning a space, so a cursor sent without encoding arrives damaged and is refused with a
//! 400, as it would be by Intercom.
//!
//! A cursor names a position, not an object: the sort key of the last object of the page served
//! and that page's number. A cursor stays valid when its object is deleted.

use crate::fake_stripe::synth::Rng;

/// Encodes as `+/+/`: every cursor contains characters that need percent-encoding.
const MARKER: [u8; 3] = [0xFB, 0xFF, 0xBF];
const PAYLOAD: usize = 21;
const CHECK: usize = 24;
const LEN: usize = MARKER.len() + PAYLOAD + CHECK;
const KEY: u64 = 0x1c7e_c0de_5eed_f00d;

/// Which walk a cursor belongs to; a cursor of another walk is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    ContactList = 1,
    ConversationList = 2,
    ContactSearch = 3,
    ConversationSearch = 4,
}

/// A position in a walk: after the object with sort key `(primary, seq)`, on page `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub walk: Walk,
    /// The number of the page that ended here (the next is `page + 1`).
    pub page: u32,
    /// The sort value of the last object served (`created_at`, or the search's sort field).
    pub primary: i64,
    /// Its insertion sequence, breaking ties.
    pub seq: u64,
}

impl Cursor {
    /// The cursor text, as served in `starting_after`.
    pub fn encode(&self) -> String {
        let mut payload = [0u8; PAYLOAD];
        payload[0] = self.walk as u8;
        payload[1..5].copy_from_slice(&self.page.to_be_bytes());
        payload[5..13].copy_from_slice(&self.primary.to_be_bytes());
        payload[13..21].copy_from_slice(&self.seq.to_be_bytes());
        let check = check_of(&payload);
        scramble(&mut payload);
        let mut raw = Vec::with_capacity(LEN);
        raw.extend_from_slice(&MARKER);
        raw.extend_from_slice(&payload);
        raw.extend_from_slice(&check);
        encode64(&raw)
    }

    /// The cursor `text` encodes, if it is one of the fake's and belongs to `walk`.
    pub fn decode(text: &str, walk: Walk) -> Option<Cursor> {
        let raw = decode64(text)?;
        if raw.len() != LEN || raw[..3] != MARKER {
            return None;
        }
        let mut payload: [u8; PAYLOAD] = raw[3..3 + PAYLOAD].try_into().ok()?;
        scramble(&mut payload);
        if raw[3 + PAYLOAD..] != check_of(&payload) || payload[0] != walk as u8 {
            return None;
        }
        Some(Cursor {
            walk,
            page: u32::from_be_bytes(payload[1..5].try_into().ok()?),
            primary: i64::from_be_bytes(payload[5..13].try_into().ok()?),
            seq: u64::from_be_bytes(payload[13..21].try_into().ok()?),
        })
    }
}

/// XORs the payload with a fixed keystream (its own inverse).
fn scramble(payload: &mut [u8; PAYLOAD]) {
    let mut rng = Rng(KEY);
    for chunk in payload.chunks_mut(8) {
        let key = rng.next().to_be_bytes();
        for (b, k) in chunk.iter_mut().zip(key) {
            *b ^= k;
        }
    }
}

fn check_of(payload: &[u8; PAYLOAD]) -> [u8; CHECK] {
    let seed = payload.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng(seed ^ KEY);
    let mut out = [0u8; CHECK];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_be_bytes());
    }
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, a newline after every 60 characters and at the end.
fn encode64(input: &[u8]) -> String {
    let mut flat = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                flat.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                flat.push('=');
            }
        }
    }
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for (i, c) in flat.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out
}

/// Decodes [`encode64`]'s output; line breaks are skipped, any other stray character fails.
fn decode64(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b'\n' | b'\r'))
        .collect();
    if !symbols.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    for quad in symbols.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &s) in quad.iter().enumerate() {
            let v = match s {
                b'=' if i >= 2 => {
                    pad += 1;
                    0
                }
                _ if pad > 0 => return None,
                _ => ALPHABET.iter().position(|&a| a == s)? as u32,
            };
            n = n << 6 | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Decodes a query string into its pairs, in order: percent escapes, and `+` as a space.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes one query component, `+` meaning a space; a malformed escape is kept as is.
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_look_like_intercoms() {
        let c = Cursor {
            walk: Walk::ContactList,
            page: 3,
            primary: 1_734_537_437,
            seq: 42,
        };
        let text = c.encode();
        assert!(text.starts_with("+/+/"));
        assert_eq!(text.len(), 66);
        assert_eq!(&text[60..61], "\n");
        assert!(text.ends_with('\n'));
        assert_eq!(Cursor::decode(&text, Walk::ContactList), Some(c));
        assert_eq!(Cursor::decode(&text, Walk::ContactSearch), None);
        assert_eq!(
            Cursor::decode(&text.replace('+', " "), Walk::ContactList),
            None
        );
        assert_eq!(
            Cursor::decode(&text.replacen('A', "B", 1), Walk::ContactList),
            None
        );
        assert_eq!(Cursor::decode("garbage", Walk::ContactList), None);
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [("", "\n"), ("f", "Zg==\n"), ("foob", "Zm9vYg==\n")] {
            assert_eq!(encode64(plain.as_bytes()), encoded);
            assert_eq!(decode64(encoded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn decodes_queries_like_rails() {
        assert_eq!(
            parse_query("per_page=5&starting_after=%2B%2F%0Aa+b&x"),
            vec![
                ("per_page".into(), "5".into()),
                ("starting_after".into(), "+/\na b".into()),
                ("x".into(), String::new()),
            ]
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
