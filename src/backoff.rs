//! Spreading retries: a random share of a delay, so many callers retrying the same failure do not
//! line up. Used by provider calls and alert deliveries alike.

use std::time::Duration;

/// A random delay up to `max`.
pub fn jitter(max: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    max * r / 1000
}
