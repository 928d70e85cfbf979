//! Values from outside as parameters, sent in the one form Postgres can store: a string of an
//! object that holds U+0000 (which Stripe and Intercom accept, and a `jsonb` string cannot hold)
//! is sent with that character removed ([`Jsonb`]), and a `text` holding it with the character
//! replaced by U+FFFD ([`text`]). Nothing else of the object is changed here (a lone UTF-16
//! surrogate was replaced when the provider's answer was read); a value Postgres refuses for
//! another reason (a number past `numeric`'s range) is refused, and its object quarantined by
//! the write path ([`super::skipped`]).

use std::borrow::Cow;
use std::error::Error;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// A value sent as `jsonb` (or `json`), U+0000 removed from its strings.
#[derive(Debug)]
pub struct Jsonb<'a, T: Serialize + ?Sized>(pub &'a T);

/// `s` as a `text` can hold it: U+0000 replaced by U+FFFD (borrowed when it has none).
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

impl<T: Serialize + ?Sized + std::fmt::Debug> ToSql for Jsonb<'_, T> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // The binary format's version.
            out.put_u8(1);
        }
        let start = out.len();
        serde_json::to_writer(out.writer(), self.0)?;
        let end = strip_nul_escapes(&mut out[start..]);
        out.truncate(start + end);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

/// Removes every `\u0000` escape from JSON text in place and answers the text's new length. Only
/// escapes are looked at (JSON cannot carry a raw NUL), and an escaped backslash followed by
/// `u0000` (the six characters `\u0000` as text) is left alone.
fn strip_nul_escapes(text: &mut [u8]) -> usize {
    const NUL: &[u8] = b"\\u0000";
    // Most objects have none: one scan, nothing moved.
    let Some(candidate) = memchr::memmem::find(text, NUL) else {
        return text.len();
    };
    // Escapes are read from the first backslash of the string the candidate is in; a backslash
    // before it belongs to an earlier escape, so start from the first backslash of the text that
    // could pair with it: the run of backslashes ending at the candidate.
    let mut read = text[..candidate]
        .iter()
        .rposition(|&b| b != b'\\')
        .map_or(0, |i| i + 1);
    let mut write = read;
    while read < text.len() {
        if text[read] != b'\\' {
            text[write] = text[read];
            read += 1;
            write += 1;
            continue;
        }
        if text[read..].starts_with(NUL) {
            read += NUL.len();
            continue;
        }
        let escape = if text.get(read + 1) == Some(&b'u') {
            6
        } else {
            2
        };
        let escape = escape.min(text.len() - read);
        text.copy_within(read..read + escape, write);
        read += escape;
        write += escape;
    }
    write
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        let n = strip_nul_escapes(&mut bytes);
        bytes.truncate(n);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn nul_escapes_are_removed_and_nothing_else_changes() {
        assert_eq!(strip(r#"{"a":"x\u0000y"}"#), r#"{"a":"xy"}"#);
        assert_eq!(strip(r#"{"a\u0000":"\u0000\u0000"}"#), r#"{"a":""}"#);
        // An escaped backslash then `u0000` is text, not a NUL.
        assert_eq!(strip(r#"{"a":"\\u0000"}"#), r#"{"a":"\\u0000"}"#);
        assert_eq!(strip(r#"{"a":"\\\u0000"}"#), r#"{"a":"\\"}"#);
        assert_eq!(
            strip(r#"{"a":"\"\u0000\n\u00e9"}"#),
            r#"{"a":"\"\n\u00e9"}"#
        );
        assert_eq!(strip(r#"{"a":"plain"}"#), r#"{"a":"plain"}"#);
    }

    #[test]
    fn a_parsed_object_with_a_nul_is_sent_without_it() {
        use supasaasy_connector::Payload;
        assert_eq!(text("a\0b"), "a\u{fffd}b");
        let payload = Payload::Parsed(serde_json::json!({"name": "a\u{0}b"}));
        let mut out = BytesMut::new();
        Jsonb(&payload).to_sql(&Type::JSONB, &mut out).unwrap();
        assert_eq!(&out[..], b"\x01{\"name\":\"ab\"}");
    }
}
