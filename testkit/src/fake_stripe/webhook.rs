//! Signing webhook deliveries the way Stripe does, so tests can post events to the daemon.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 keyed by the whole endpoint secret
//! (`whsec_...`, prefix included) and sends `Stripe-Signature: t=<t>,v1=<hex>`.

use std::fmt::Write;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The `Stripe-Signature` header value for `body` sent at Unix time `t` to an endpoint with
/// `secret`: `t=<t>,v1=<hex HMAC-SHA256 of "{t}.{body}">`.
///
/// ```
/// use supasaasy_testkit::fake_stripe::stripe_signature;
///
/// let header = stripe_signature("whsec_test", 1_700_000_000, br#"{"id":"evt_1"}"#);
/// assert!(header.starts_with("t=1700000000,v1="));
/// ```
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut header = format!("t={t},v1=");
    for byte in digest.iter() {
        // Writing into a String cannot fail.
        let _ = write!(header, "{byte:02x}");
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_golden_vector() {
        let body = br#"{"id":"evt_test_1","object":"event","type":"customer.created","data":{"object":{"id":"cus_123","object":"customer"}}}"#;
        assert_eq!(
            stripe_signature("whsec_test_secret", 1_700_000_000, body),
            "t=1700000000,v1=969ed486311f01fe741ae24da3ba6be8b34d97722fca107d40ca42b25d7a1ed6"
        );
    }
}
