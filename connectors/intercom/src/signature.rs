//! Intercom webhook signatures: checking the `X-Hub-Signature` header of a delivery, and making one.
//!
//! The header is `sha1=<hex>`: the HMAC-SHA1 of the raw body keyed by the app's client secret.
//! Intercom signs no timestamp, so a captured delivery verifies forever; the daemon's dedupe by
//! notification id is what makes a replay harmless.
//!
//! Invariants: the comparison runs in constant time; a rejection says why in a few words and
//! never echoes the secret or the signature that was expected; no input, however garbled, makes
//! the check panic.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use supasaasy_connector::WebhookError;

/// Bytes in an HMAC-SHA1.
const MAC_LEN: usize = 20;

type HmacSha1 = Hmac<Sha1>;

/// Signs `body` as Intercom would: the whole `X-Hub-Signature` header value, `sha1=<hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let tag = signer(secret, body).finalize().into_bytes();
    format!("sha1={}", hex_encode(&tag))
}

/// Checks an `X-Hub-Signature` header against the raw `body`. The `sha1=` prefix and the hex
/// digits may be in either case.
///
/// # Errors
///
/// [`WebhookError::BadSignature`] when the secret is empty, the header is missing or is not
/// `sha1=` and 40 hex digits, or the signature does not match.
pub fn verify(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(bad("no webhook secret is configured"));
    }
    let tag = read_header(header)?;
    signer(secret, body)
        .verify_slice(&tag)
        .map_err(|_| bad("the signature does not match"))
}

/// Checks what of an `X-Hub-Signature` header can be checked without the body: it is there and
/// reads as `sha1=` and 40 hex digits. A delivery that fails this cannot verify, so it is refused
/// before its body is read.
///
/// # Errors
///
/// [`WebhookError::BadSignature`], with the reason [`verify`] would give.
pub fn check_header(header: Option<&str>) -> Result<(), WebhookError> {
    read_header(header).map(|_| ())
}

/// The signature an `X-Hub-Signature` header carries.
fn read_header(header: Option<&str>) -> Result<[u8; MAC_LEN], WebhookError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("missing X-Hub-Signature header"))?;
    let hex = match header.split_once('=') {
        Some((scheme, hex)) if scheme.trim().eq_ignore_ascii_case("sha1") => hex.trim(),
        Some(_) => return Err(bad("X-Hub-Signature is not a sha1 signature")),
        None => return Err(bad("unreadable X-Hub-Signature")),
    };
    hex_decode(hex).ok_or_else(|| bad("unreadable X-Hub-Signature"))
}

/// The MAC state after the body, ready to finalize or compare.
fn signer(secret: &str, body: &[u8]) -> HmacSha1 {
    // HMAC takes a key of any length, so this cannot fail; the fallback keeps it panic-free.
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| HmacSha1::new(&Default::default()));
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
    use super::*;

    const SECRET: &str = "client_secret_123";
    const BODY: &[u8] = br#"{"type":"notification_event","id":"notif_1","topic":"ping"}"#;

    fn reason(result: Result<(), WebhookError>) -> String {
        match result {
            Err(WebhookError::BadSignature(reason)) => reason,
            other => panic!("expected BadSignature, got {other:?}"),
        }
    }

    #[test]
    fn matches_a_known_vector() {
        // RFC 2202, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn a_good_signature_verifies() {
        let header = sign(SECRET, BODY);
        assert!(header.starts_with("sha1=") && header.len() == 45);
        verify(SECRET, Some(&header), BODY).expect("verifies");
        verify(SECRET, Some(&format!("  {header} ")), BODY).expect("spaces");
    }

    #[test]
    fn uppercase_hex_and_prefix_verify() {
        let header = sign(SECRET, BODY);
        let upper = header.to_uppercase();
        assert!(upper.starts_with("SHA1="));
        verify(SECRET, Some(&upper), BODY).expect("either case");
    }

    #[test]
    fn a_wrong_secret_or_tampered_body_is_refused() {
        let header = sign(SECRET, BODY);
        let why = reason(verify("another_secret", Some(&header), BODY));
        assert_eq!(why, "the signature does not match");
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        reason(verify(SECRET, Some(&header), &tampered));
        reason(verify(SECRET, Some(&header), b""));
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        let good = sign(SECRET, BODY);
        let hex = good.trim_start_matches("sha1=");
        let cases = [
            (None, "missing"),
            (Some(""), "missing"),
            (Some("   "), "missing"),
            (Some(hex), "unreadable"),
            (Some("sha1="), "unreadable"),
            (Some("sha1=xyz"), "unreadable"),
            (Some(&good[..good.len() - 1]), "unreadable"),
            (Some("sha256=00"), "not a sha1"),
        ];
        for (header, expected) in cases {
            let why = reason(verify(SECRET, header, BODY));
            assert!(why.contains(expected), "{header:?}: {why}");
        }
        let extra = format!("{good}00");
        assert!(reason(verify(SECRET, Some(&extra), BODY)).contains("unreadable"));
        // The header alone refuses the same, and passes a readable one whatever its MAC.
        for (header, expected) in cases {
            let why = reason(check_header(header));
            assert!(why.contains(expected), "{header:?}: {why}");
        }
        check_header(Some(&good)).expect("a readable header");
        check_header(Some(&sign("another_secret", BODY))).expect("the MAC needs the body");
        let odd = format!("sha1={}é", &hex[..39]);
        reason(verify(SECRET, Some(&odd), BODY));
    }

    #[test]
    fn refusals_never_echo_the_secret_or_the_expected_signature() {
        let expected = sign(SECRET, BODY);
        let expected_hex = expected.trim_start_matches("sha1=");
        let wrong = sign("other", BODY);
        for header in [Some(wrong.as_str()), None, Some("sha1=zz")] {
            let why = reason(verify(SECRET, header, BODY));
            assert!(
                !why.contains(SECRET) && !why.contains(expected_hex),
                "{why}"
            );
        }
    }

    #[test]
    fn an_empty_secret_refuses_everything() {
        let header = sign("", BODY);
        assert!(reason(verify("", Some(&header), BODY)).contains("no webhook secret"));
    }
}
