//! Building blocks for generated data: a seeded PRNG, Stripe-shaped ids, and [`Template`], which
//! serialises many objects of one kind quickly.
//!
//! Nothing here knows Stripe's resources; [`super::generate`] does.

use bytes::Bytes;
use serde_json::Value;

/// splitmix64: small, fast, and good enough to make test data look varied.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A bijection on u64 (splitmix64's finaliser); 0 maps to 0.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` and `len` (>= 11) base62 characters. The first 11 encode a bijection of `n`, so ids
/// with the same prefix and salt never collide.
pub(crate) fn stripe_id(prefix: &str, len: usize, salt: u64, n: u64) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    let mut x = mix(n ^ salt);
    let mut filler = mix(x ^ 0x5eed_5afe_cafe_f00d);
    for i in 0..len {
        let digit = if i < 11 {
            let d = x % 62;
            x /= 62;
            d
        } else {
            let d = filler % 62;
            filler = mix(filler);
            d
        };
        id.push(BASE62[digit as usize] as char);
    }
    id
}

/// A field an object has of its own.
pub(crate) enum Field<'a> {
    Str(&'a str),
    Int(i64),
    /// Already serialised JSON (an embedded object, `null`).
    Raw(&'a [u8]),
}

pub(crate) fn int_or_null(v: Option<i64>) -> Field<'static> {
    v.map_or(Field::Raw(b"null"), Field::Int)
}

/// Objects of one kind that share most of their fields: the shared ones are serialised once and
/// each object writes only its own in front of them.
pub(crate) struct Template {
    /// The names of the fields each object sets.
    own: &'static [&'static str],
    /// The shared fields, serialised without the enclosing braces.
    shared: Vec<u8>,
}

impl Template {
    pub fn new(mut base: Value, own: &'static [&'static str]) -> Template {
        if let Some(map) = base.as_object_mut() {
            for key in own {
                map.remove(*key);
            }
        }
        let json = serde_json::to_vec(&base).unwrap_or_default();
        let shared = json
            .get(1..json.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        Template { own, shared }
    }

    pub fn render(&self, values: &[Field]) -> Bytes {
        debug_assert_eq!(values.len(), self.own.len());
        let mut out = Vec::with_capacity(self.shared.len() + 64 * values.len());
        out.push(b'{');
        for (i, (key, value)) in self.own.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, key);
            out.push(b':');
            match value {
                Field::Str(s) => write_str(&mut out, s),
                Field::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
                Field::Raw(raw) => out.extend_from_slice(raw),
            }
        }
        if !self.shared.is_empty() {
            if !values.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&self.shared);
        }
        out.push(b'}');
        Bytes::from(out)
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_shaped_like_stripes() {
        let ids: HashSet<_> = (0..100_000)
            .map(|n| stripe_id("cus_", 14, 0xc0, n))
            .collect();
        assert_eq!(ids.len(), 100_000);
        let id = stripe_id("price_", 24, 0x9e, 7);
        assert_eq!(id.len(), "price_".len() + 24);
        assert!(id[6..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn templates_render_valid_json_with_own_fields_first() {
        let base = serde_json::json!({"id": "x", "a": [1, {"b": null}], "c": "d\"e"});
        let t = Template::new(base, &["id", "n", "raw"]);
        let json = t.render(&[Field::Str("cus_\"1"), Field::Int(-5), Field::Raw(b"{}")]);
        let v: Value = serde_json::from_slice(&json).unwrap();
        let want = serde_json::json!({"id": "cus_\"1", "n": -5, "raw": {}, "a": [1, {"b": null}], "c": "d\"e"});
        assert_eq!(v, want);
        let empty = Template::new(serde_json::json!({"k": 1}), &["k"]);
        assert_eq!(&empty.render(&[Field::Int(2)])[..], br#"{"k":2}"#);
    }
}
