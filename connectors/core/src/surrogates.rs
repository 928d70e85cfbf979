//! Lone UTF-16 surrogates in JSON text. Stripe and Intercom accept strings that end in half of a
//! surrogate pair (a truncated emoji) and answer them as `\ud83d` escapes; a Rust string cannot
//! hold one (serde_json refuses the text) and neither can Postgres. Every provider answer and
//! every verified webhook body is read through [`repair`] first: each lone surrogate escape is
//! replaced by `\ufffd` (U+FFFD, the replacement character), the same length, so the rest of the
//! text is untouched and the object is mirrored with that one character replaced.

/// Replaces each lone surrogate escape of JSON text with `\ufffd`, in place; answers how many.
/// A well-formed pair (`\ud83d\ude00`) is kept, and an escaped backslash followed by `ud800`
/// is text, not an escape.
pub fn repair(text: &mut [u8]) -> usize {
    let Some(first) = first_candidate(text) else {
        return 0;
    };
    // Escapes are read from the start of the run of backslashes the candidate ends.
    let mut i = text[..first]
        .iter()
        .rposition(|&b| b != b'\\')
        .map_or(0, |i| i + 1);
    let mut repaired = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(unit) = unit_at(text, i) else {
            // Any other escape: a backslash and one character.
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => match unit_at(text, i + 6) {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => {
                    text[i..i + 6].copy_from_slice(REPLACEMENT);
                    repaired += 1;
                    i += 6;
                }
            },
            0xDC00..=0xDFFF => {
                text[i..i + 6].copy_from_slice(REPLACEMENT);
                repaired += 1;
                i += 6;
            }
            _ => i += 6,
        }
    }
    repaired
}

const REPLACEMENT: &[u8; 6] = b"\\ufffd";

/// The first place a surrogate escape may start (`\ud` or `\uD`), if any: most texts have none
/// and are scanned once.
fn first_candidate(text: &[u8]) -> Option<usize> {
    let lower = memchr::memmem::find(text, b"\\ud");
    let upper = memchr::memmem::find(text, b"\\uD");
    match (lower, upper) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The UTF-16 unit of the `\uXXXX` escape starting at `i`, if one does.
fn unit_at(text: &[u8], i: usize) -> Option<u16> {
    let escape = text.get(i..i + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(text: &str) -> (String, usize) {
        let mut bytes = text.as_bytes().to_vec();
        let n = repair(&mut bytes);
        (String::from_utf8(bytes).unwrap(), n)
    }

    #[test]
    fn lone_surrogates_are_replaced_and_pairs_kept() {
        assert_eq!(
            repaired(r#"{"a":"x\ud83d"}"#),
            (r#"{"a":"x\ufffd"}"#.into(), 1)
        );
        assert_eq!(
            repaired(r#"{"a":"\uDE00y"}"#),
            (r#"{"a":"\ufffdy"}"#.into(), 1)
        );
        assert_eq!(
            repaired(r#"{"a":"\ud83d\ude00","b":"\ud83d\u0041"}"#),
            (r#"{"a":"\ud83d\ude00","b":"\ufffd\u0041"}"#.into(), 1)
        );
        // Two highs in a row: both lone.
        assert_eq!(
            repaired(r#"["\ud800\ud800"]"#),
            (r#"["\ufffd\ufffd"]"#.into(), 2)
        );
        // Text that only looks like an escape, and escapes of other kinds, are left alone.
        assert_eq!(repaired(r#"["\\ud800"]"#), (r#"["\\ud800"]"#.into(), 0));
        assert_eq!(
            repaired(r#"["\"\n\\\ud800"]"#),
            (r#"["\"\n\\\ufffd"]"#.into(), 1)
        );
        assert_eq!(repaired(r#"{"a":1}"#), (r#"{"a":1}"#.into(), 0));
        // A truncated escape at the end of the text is left for the JSON reader to refuse.
        assert_eq!(repaired(r#"["\ud8"#), (r#"["\ud8"#.into(), 0));
    }

    #[test]
    fn repaired_text_is_read_by_serde_json() {
        let mut bytes = br#"{"name":"Ada \ud83d","emoji":"\ud83d\ude00"}"#.to_vec();
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
        repair(&mut bytes);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["name"], "Ada \u{fffd}");
        assert_eq!(value["emoji"], "\u{1f600}");
    }
}
