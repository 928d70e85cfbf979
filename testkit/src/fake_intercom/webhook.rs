//! Webhook notifications the way Intercom delivers them, so tests can post them to the daemon.
//!
//! Intercom signs the raw body with HMAC-SHA1 keyed by the app's client secret and sends
//! `X-Hub-Signature: sha1=<lowercase hex>`. No timestamp is signed, so receivers dedupe by the
//! notification's `id`.

use std::fmt::Write;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::fake_stripe::synth::Rng;

/// The `X-Hub-Signature` header value for `body` sent by an app with `secret`:
/// `sha1=<lowercase hex HMAC-SHA1 of the body>`.
///
/// ```
/// use supasaasy_testkit::fake_intercom::intercom_signature;
///
/// let header = intercom_signature("key", b"The quick brown fox jumps over the lazy dog");
/// assert_eq!(header, "sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
/// ```
pub fn intercom_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut header = String::with_capacity(5 + 2 * digest.len());
    header.push_str("sha1=");
    for byte in digest.iter() {
        // Writing into a String cannot fail.
        let _ = write!(header, "{byte:02x}");
    }
    header
}

/// The `n`th notification id: `notif_` and a UUID-shaped suffix, as Intercom's.
pub(crate) fn notification_id(n: u64) -> String {
    let mut rng = Rng(n ^ 0x0071_f1ed);
    let (a, b) = (rng.next(), rng.next());
    format!(
        "notif_{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// A `notification_event` for `item` on `topic`, sent at `now`.
pub(crate) fn notification(app_id: &str, id: String, topic: &str, item: Value, now: i64) -> Value {
    json!({
        "type": "notification_event",
        "app_id": app_id,
        "id": id,
        "topic": topic,
        "delivery_status": null,
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": now,
        "created_at": now,
        "data": {"type": "notification_event_data", "item": item},
        "self": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_hmac_sha1_vectors() {
        // RFC 2202, test case 2.
        assert_eq!(
            intercom_signature("Jefe", b"what do ya want for nothing?"),
            "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            intercom_signature("", b""),
            "sha1=fbdb1d1b18aa6c08324b7d64b71fb76370690e1d"
        );
    }

    #[test]
    fn notification_ids_are_unique() {
        let ids: std::collections::HashSet<_> = (0..1000).map(notification_id).collect();
        assert_eq!(ids.len(), 1000);
        assert!(notification_id(1).starts_with("notif_"));
    }
}
