//! Stripe webhook signatures: checking the `Stripe-Signature` header of a delivery, and making one.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`; other schemes (`v0`) are ignored. Each
//! `v1` is the hex HMAC-SHA256, keyed by the whole endpoint secret (`whsec_` prefix included), of
//! `"{t}."` followed by the raw body. A delivery is genuine when any `v1` matches (during a secret
//! rotation Stripe signs with both secrets) and `t` lies within [`SIGNATURE_TOLERANCE_SECS`] of the
//! verifier's clock, in either direction, so a captured delivery cannot be replayed later.
//!
//! Invariants: the comparison of signatures runs in constant time; a rejection says why in a few
//! words and never echoes the secret or the signature that was expected; no input, however
//! garbled, makes the check panic.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use supasaasy_connector::WebhookError;

/// How far (seconds) a signature's timestamp may lie from the verifier's clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Bytes in an HMAC-SHA256.
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Signs `body` as Stripe would at Unix time `t`: the whole `Stripe-Signature` header value,
/// `t=...,v1=...`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let tag = signer(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex_encode(&tag))
}

/// Checks a `Stripe-Signature` header against the raw `body` at Unix time `now`.
///
/// # Errors
///
/// [`WebhookError::BadSignature`] when the secret is empty, the header is missing or unreadable,
/// no `v1` signature matches, or the timestamp is more than [`SIGNATURE_TOLERANCE_SECS`] away
/// from `now`.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(bad("no webhook secret is configured"));
    }
    let header = header.ok_or_else(|| bad("missing Stripe-Signature header"))?;
    let parsed = parse_header(header)?;

    let mac = signer(secret, parsed.t, body);
    // Every candidate is compared, so the time taken does not tell which one matched.
    let matched = parsed.v1.iter().fold(false, |found, tag| {
        mac.clone().verify_slice(tag).is_ok() | found
    });
    if !matched {
        return Err(bad("no v1 signature matches"));
    }
    within_tolerance(parsed.t, now)
}

/// Checks what of a `Stripe-Signature` header can be checked without the body: it is there,
/// reads as `t=...,v1=...` with a readable `v1`, and `t` lies within [`SIGNATURE_TOLERANCE_SECS`]
/// of `now`. A delivery that fails this cannot verify, so it is refused before its body is read.
///
/// # Errors
///
/// [`WebhookError::BadSignature`], with the reason [`verify`] would give.
pub fn check_header(header: Option<&str>, now: i64) -> Result<(), WebhookError> {
    let header = header.ok_or_else(|| bad("missing Stripe-Signature header"))?;
    let parsed = parse_header(header)?;
    within_tolerance(parsed.t, now)
}

fn within_tolerance(t: i64, now: i64) -> Result<(), WebhookError> {
    if now.abs_diff(t) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
        return Err(if t < now {
            bad("signature timestamp is too old")
        } else {
            bad("signature timestamp is in the future")
        });
    }
    Ok(())
}

/// The parts of a `Stripe-Signature` header that matter.
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader {
    /// When Stripe signed (Unix seconds).
    t: i64,
    /// The decoded `v1` signatures; at least one.
    v1: Vec<[u8; MAC_LEN]>,
}

/// Reads `t=...,v1=...`, tolerating spaces around parts, keys and values, and ignoring unknown
/// schemes and parts without `=`. A `v1` that is not 64 hex digits cannot match and is skipped.
fn parse_header(header: &str) -> Result<SignatureHeader, WebhookError> {
    let mut t: Option<i64> = None;
    let mut v1 = Vec::new();
    let mut saw_v1 = false;
    for part in header.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => {
                if t.is_some() {
                    return Err(bad("more than one timestamp in Stripe-Signature"));
                }
                t = Some(parse_timestamp(value.trim())?);
            }
            "v1" => {
                saw_v1 = true;
                if let Some(tag) = hex_decode(value.trim()) {
                    v1.push(tag);
                }
            }
            _ => {}
        }
    }
    let t = t.ok_or_else(|| bad("no timestamp in Stripe-Signature"))?;
    if !saw_v1 {
        return Err(bad("no v1 signature in Stripe-Signature"));
    }
    if v1.is_empty() {
        return Err(bad("no readable v1 signature in Stripe-Signature"));
    }
    Ok(SignatureHeader { t, v1 })
}

fn parse_timestamp(value: &str) -> Result<i64, WebhookError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("unreadable timestamp in Stripe-Signature"));
    }
    value
        .parse()
        .map_err(|_| bad("unreadable timestamp in Stripe-Signature"))
}

/// The MAC state after `"{t}."` and the body, ready to finalize or compare.
fn signer(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length, so this cannot fail; the fallback keeps it panic-free.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac
}

fn bad(reason: &str) -> WebhookError {
    WebhookError::BadSignature(reason.to_owned())
}

fn hex_encode(bytes: &[u8]) -> String {
    supasaasy_connector::hex::encode(bytes)
}

fn hex_decode(text: &str) -> Option<[u8; MAC_LEN]> {
    supasaasy_connector::hex::decode(text)
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    /// The golden vector of `shared/fixtures/README.md`, as Stripe's own libraries compute it.
    const GOLDEN_BODY: &str = r#"{"id":"evt_test_1","object":"event","type":"customer.created","data":{"object":{"id":"cus_123","object":"customer"}}}"#;
    const GOLDEN_SECRET: &str = "whsec_test_secret";
    const GOLDEN_T: i64 = 1_700_000_000;
    const GOLDEN_V1: &str = "969ed486311f01fe741ae24da3ba6be8b34d97722fca107d40ca42b25d7a1ed6";

    fn golden_header() -> String {
        format!("t={GOLDEN_T},v1={GOLDEN_V1}")
    }

    fn reason(result: Result<(), WebhookError>) -> String {
        match result {
            Err(WebhookError::BadSignature(reason)) => reason,
            other => panic!("expected BadSignature, got {other:?}"),
        }
    }

    fn today() -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        i64::try_from(since.as_secs()).expect("seconds fit")
    }

    #[test]
    fn golden_vector_verifies_with_a_pinned_clock() {
        let header = golden_header();
        let body = GOLDEN_BODY.as_bytes();
        assert_eq!(sign(GOLDEN_SECRET, GOLDEN_T, body), header);
        verify(GOLDEN_SECRET, Some(&header), body, GOLDEN_T).expect("golden vector");
        verify(GOLDEN_SECRET, Some(&header), body, GOLDEN_T + 300).expect("at the edge");
        verify(GOLDEN_SECRET, Some(&header), body, GOLDEN_T - 300).expect("at the edge");
    }

    #[test]
    fn golden_vector_is_stale_today() {
        let why = reason(verify(
            GOLDEN_SECRET,
            Some(&golden_header()),
            GOLDEN_BODY.as_bytes(),
            today(),
        ));
        assert_eq!(why, "signature timestamp is too old");
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected() {
        let body = GOLDEN_BODY.as_bytes();
        let header = golden_header();
        let stale = reason(verify(GOLDEN_SECRET, Some(&header), body, GOLDEN_T + 301));
        assert_eq!(stale, "signature timestamp is too old");
        let future = reason(verify(GOLDEN_SECRET, Some(&header), body, GOLDEN_T - 301));
        assert_eq!(future, "signature timestamp is in the future");
    }

    #[test]
    fn any_v1_may_match_during_a_rotation() {
        let body = br#"{"id":"evt_2"}"#;
        let t = 1_800_000_000;
        let old = sign("whsec_old", t, body);
        let new = sign("whsec_new", t, body);
        let v1 = |header: &str| header.split_once(",v1=").expect("v1").1.to_owned();
        let both = format!("t={t},v1={},v1={}", v1(&old), v1(&new));
        verify("whsec_old", Some(&both), body, t).expect("old secret");
        verify("whsec_new", Some(&both), body, t).expect("new secret");
        let why = reason(verify("whsec_other", Some(&both), body, t));
        assert_eq!(why, "no v1 signature matches");
    }

    #[test]
    fn wrong_secret_and_tampered_body_are_rejected() {
        let header = golden_header();
        let body = GOLDEN_BODY.as_bytes();
        for secret in ["whsec_wrong", "test_secret", "whsec_test_secreT"] {
            let why = reason(verify(secret, Some(&header), body, GOLDEN_T));
            assert_eq!(why, "no v1 signature matches", "{secret}");
        }
        let tampered = GOLDEN_BODY.replace("cus_123", "cus_124");
        let why = reason(verify(
            GOLDEN_SECRET,
            Some(&header),
            tampered.as_bytes(),
            GOLDEN_T,
        ));
        assert_eq!(why, "no v1 signature matches");
        let with_newline = format!("{GOLDEN_BODY}\n");
        assert!(verify(
            GOLDEN_SECRET,
            Some(&header),
            with_newline.as_bytes(),
            GOLDEN_T
        )
        .is_err());
        // The timestamp is signed too.
        let moved = format!("t={},v1={GOLDEN_V1}", GOLDEN_T + 1);
        assert!(verify(GOLDEN_SECRET, Some(&moved), body, GOLDEN_T).is_err());
    }

    #[test]
    fn header_is_read_tolerantly() {
        let body = GOLDEN_BODY.as_bytes();
        let upper = GOLDEN_V1.to_ascii_uppercase();
        for header in [
            format!(" t = {GOLDEN_T} , v1 = {GOLDEN_V1} "),
            format!("v1={GOLDEN_V1},t={GOLDEN_T}"),
            format!("t={GOLDEN_T},v0=deadbeef,v1={GOLDEN_V1},scheme=x"),
            format!("t={GOLDEN_T},v1=not-hex,v1={GOLDEN_V1},"),
            format!("t={GOLDEN_T},junk,v1={upper}"),
        ] {
            verify(GOLDEN_SECRET, Some(&header), body, GOLDEN_T)
                .unwrap_or_else(|err| panic!("{header:?}: {err}"));
        }
    }

    #[test]
    fn missing_and_garbled_headers_are_rejected() {
        let body = GOLDEN_BODY.as_bytes();
        let cases = [
            (None, "missing Stripe-Signature header"),
            (Some(""), "no timestamp in Stripe-Signature"),
            (Some("garbage"), "no timestamp in Stripe-Signature"),
            (Some("v1=abc"), "no timestamp in Stripe-Signature"),
            (Some("t=,v1=00"), "unreadable timestamp in Stripe-Signature"),
            (Some("t=abc,v1=00"), "unreadable timestamp in Stripe-Signature"),
            (Some("t=-5,v1=00"), "unreadable timestamp in Stripe-Signature"),
            (Some("t=1.5,v1=00"), "unreadable timestamp in Stripe-Signature"),
            (
                Some("t=99999999999999999999999,v1=00"),
                "unreadable timestamp in Stripe-Signature",
            ),
            (Some("t=1700000000"), "no v1 signature in Stripe-Signature"),
            (
                Some("t=1700000000,v0=969ed486311f01fe741ae24da3ba6be8b34d97722fca107d40ca42b25d7a1ed6"),
                "no v1 signature in Stripe-Signature",
            ),
            (
                Some("t=1700000000,v1=xyz"),
                "no readable v1 signature in Stripe-Signature",
            ),
            (
                Some("t=1700000000,t=1700000000,v1=00"),
                "more than one timestamp in Stripe-Signature",
            ),
        ];
        for (header, expected) in cases {
            let why = reason(verify(GOLDEN_SECRET, header, body, GOLDEN_T));
            assert_eq!(why, expected, "{header:?}");
        }
        let why = reason(verify("", Some(&golden_header()), body, GOLDEN_T));
        assert_eq!(why, "no webhook secret is configured");
    }

    #[test]
    fn the_header_alone_is_checked_as_verify_checks_it() {
        // What needs no body: present, readable, timely. A wrong MAC passes (the body decides).
        let wrong_mac = format!("t={GOLDEN_T},v1={}", "0".repeat(64));
        check_header(Some(&golden_header()), GOLDEN_T).expect("the golden header");
        check_header(Some(&wrong_mac), GOLDEN_T + 300).expect("a MAC is not checked");
        let cases = [
            (None, GOLDEN_T, "missing Stripe-Signature header"),
            (
                Some("garbage"),
                GOLDEN_T,
                "no timestamp in Stripe-Signature",
            ),
            (
                Some("t=1700000000"),
                GOLDEN_T,
                "no v1 signature in Stripe-Signature",
            ),
            (
                Some("t=1700000000,v1=xyz"),
                GOLDEN_T,
                "no readable v1 signature in Stripe-Signature",
            ),
            (
                Some(wrong_mac.as_str()),
                GOLDEN_T + 301,
                "signature timestamp is too old",
            ),
            (
                Some(wrong_mac.as_str()),
                GOLDEN_T - 301,
                "signature timestamp is in the future",
            ),
        ];
        for (header, now, expected) in cases {
            assert_eq!(reason(check_header(header, now)), expected, "{header:?}");
        }
    }

    #[test]
    fn rejections_never_echo_the_secret_or_the_expected_signature() {
        let body = GOLDEN_BODY.as_bytes();
        let headers = [
            "t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000000",
            "t=1,v1=zz",
            "",
        ];
        for header in headers {
            let why = reason(verify(GOLDEN_SECRET, Some(header), body, GOLDEN_T));
            assert!(
                !why.contains("whsec") && !why.contains("test_secret"),
                "{why}"
            );
            assert!(!why.contains(GOLDEN_V1), "{why}");
        }
    }

    #[test]
    fn random_headers_never_panic_and_never_verify() {
        const PIECES: &[&str] = &[
            "t",
            "v1",
            "v0",
            "=",
            ",",
            " ",
            "\t",
            "1700000000",
            "-",
            "9",
            "99999999999999999999",
            "0",
            "a",
            "f",
            "é",
            "\u{0}",
            "==",
            ",,",
            GOLDEN_V1,
            "whsec_",
            ".",
            "t=",
            "v1=",
        ];
        // xorshift64: deterministic, so a failure reproduces.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let body = GOLDEN_BODY.as_bytes();
        for _ in 0..5_000 {
            let len = next() % 12;
            let mut header = String::new();
            for _ in 0..len {
                let index = usize::try_from(next() % PIECES.len() as u64).expect("index fits");
                header.push_str(PIECES[index]);
            }
            let now = i64::from_ne_bytes(next().to_ne_bytes());
            let result = verify("whsec_other", Some(&header), body, now);
            assert!(result.is_err(), "{header:?} verified");
        }
        // Extreme clocks do not overflow.
        for now in [i64::MIN, i64::MAX, 0] {
            assert!(verify(GOLDEN_SECRET, Some(&golden_header()), body, now).is_err());
        }
        assert!(verify(
            GOLDEN_SECRET,
            Some(&format!("t={},v1=00", i64::MAX)),
            body,
            i64::MIN
        )
        .is_err());
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(37)).collect();
        let text = hex_encode(&bytes);
        assert_eq!(text.len(), 64);
        assert_eq!(hex_decode(&text).map(|b| b.to_vec()), Some(bytes));
        assert_eq!(hex_decode(&text[..62]), None);
        assert_eq!(hex_decode(&format!("{}g", &text[..63])), None);
        assert_eq!(hex_decode("é".repeat(32).as_str()), None);
    }
}
