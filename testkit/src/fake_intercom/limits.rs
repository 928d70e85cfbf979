//! The rate limiter and the faults tests queue.
//!
//! Intercom counts requests per app in fixed windows and reports the window on every answer:
//! `X-RateLimit-Limit` (requests per window), `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix
//! seconds when the window ends, rounded up). A window starts with the first request after the
//! previous one ended. Once `Remaining` is 0, requests are answered 429 `rate_limit_exceeded`
//! until the window ends. Windows follow real time, not the fake's pinnable clock, so a client
//! that sleeps until `Reset` gets through.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Requests per window unless a test sets another limit: more than any test sends.
pub const DEFAULT_RATE_LIMIT: u64 = 10_000;
/// The window unless a test sets another.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);

/// What the rate-limit headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds when the window ends.
    pub reset: i64,
}

/// Fixed-window request counting.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: u64,
    window: Duration,
    /// The current window's end (monotonic, and as Unix seconds rounded up); `None` before the
    /// first request or after a reconfiguration.
    ends: Option<(Instant, i64)>,
    used: u64,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            limit: DEFAULT_RATE_LIMIT,
            window: DEFAULT_RATE_WINDOW,
            ends: None,
            used: 0,
        }
    }
}

fn unix_ceil(at: SystemTime) -> i64 {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0)
}

impl RateLimiter {
    /// Sets the limit and the window, and starts afresh.
    pub fn configure(&mut self, limit: u64, window: Duration) {
        self.limit = limit;
        self.window = window;
        self.ends = None;
        self.used = 0;
    }

    /// Ends the current window now: the next request starts a new one.
    pub fn reset(&mut self) {
        self.ends = None;
        self.used = 0;
    }

    fn window_at(&mut self, now: Instant) -> i64 {
        match self.ends {
            Some((end, reset)) if now < end => reset,
            _ => {
                let reset = unix_ceil(SystemTime::now() + self.window);
                self.ends = Some((now + self.window, reset));
                self.used = 0;
                reset
            }
        }
    }

    /// Counts one request; `Err` carries the headers of a refusal.
    pub fn take(&mut self, now: Instant) -> Result<Quota, Quota> {
        let reset = self.window_at(now);
        let mut quota = Quota {
            limit: self.limit,
            remaining: 0,
            reset,
        };
        if self.used >= self.limit {
            return Err(quota);
        }
        self.used += 1;
        quota.remaining = self.limit - self.used;
        Ok(quota)
    }

    /// The headers for an answer that did not count (a refused token, an injected fault).
    pub fn peek(&mut self, now: Instant) -> Quota {
        let reset = self.window_at(now);
        Quota {
            limit: self.limit,
            remaining: self.limit.saturating_sub(self.used),
            reset,
        }
    }
}

/// Faults queued by `fail_next`.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub remaining: u64,
    pub status: u16,
}

impl Faults {
    /// The status to answer with instead of serving, if a fault is queued.
    pub fn take(&mut self) -> Option<u16> {
        (self.remaining > 0).then(|| {
            self.remaining -= 1;
            self.status
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_once_spent_until_the_window_ends() {
        let mut limiter = RateLimiter::default();
        limiter.configure(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limiter.take(t0).unwrap().remaining, 1);
        let q = limiter.take(t0).unwrap();
        assert_eq!((q.limit, q.remaining), (2, 0));
        assert!(q.reset >= unix_ceil(SystemTime::now()) + 9);
        let refused = limiter.take(t0 + Duration::from_secs(9)).unwrap_err();
        assert_eq!((refused.remaining, refused.reset), (0, q.reset));
        assert_eq!(limiter.peek(t0).remaining, 0);
        assert_eq!(
            limiter
                .take(t0 + Duration::from_secs(10))
                .unwrap()
                .remaining,
            1
        );
        limiter.reset();
        assert_eq!(limiter.peek(t0).remaining, 2);
    }
}
