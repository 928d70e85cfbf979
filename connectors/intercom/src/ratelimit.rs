//! Intercom's rate limit as one app's connector sees it: the `X-RateLimit-*` headers of every
//! answer, the wait before the next request when the budget is spent, and the delay a 429 asks for.
//!
//! Intercom counts requests per app in short windows and says, on every answer, how many requests
//! the window still allows (`X-RateLimit-Remaining`) and when it resets (`X-RateLimit-Reset`, Unix
//! seconds). The connector keeps the latest of these in one [`Gate`] shared by every request of the
//! app, concurrent ones included, and holds requests back until the reset once the budget is down
//! to [`LOW_WATER`]: asking anyway would only earn a 429. An answer reports the budget as of its own
//! request, not of the requests still in flight beside it, so the requests in flight are taken off
//! the last count before a request is let through: a burst of concurrent requests does not all
//! pass on one stale count.
//!
//! Invariants: a wait never exceeds [`MAX_WAIT`], whatever a header claims; headers that cannot be
//! read are ignored, never trusted; the lock is never held across an await; every request let
//! through holds a [`Permit`] until its answer is in (or it failed, or was dropped).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// A remaining budget at or below this holds requests until the window resets.
pub(crate) const LOW_WATER: u64 = 1;

/// The longest the connector waits for a reset, and the longest delay a 429 asks for: a reset
/// further away than this is a clock or header fault, not Intercom's ten-second windows.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);

/// The delay of a 429 that says nothing of when the window resets: Intercom's windows are ten
/// seconds long.
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_secs(10);

/// What one answer said of the rate limit; each header may be missing or unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: requests per window.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in the current window.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`: when the window resets (Unix seconds).
    pub reset: Option<i64>,
}

/// Reads the `X-RateLimit-*` headers of an answer.
pub(crate) fn parse_headers(headers: &HeaderMap) -> RateLimitHeaders {
    fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
        headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }
    RateLimitHeaders {
        limit: number(headers, "x-ratelimit-limit"),
        remaining: number(headers, "x-ratelimit-remaining"),
        reset: number(headers, "x-ratelimit-reset"),
    }
}

/// The delay a 429 asks for, at Unix time `now_ms` (milliseconds): until the window resets, at
/// least a second and at most [`MAX_WAIT`]; else a `Retry-After` in seconds; else
/// [`DEFAULT_RETRY`].
pub(crate) fn retry_after(seen: RateLimitHeaders, headers: &HeaderMap, now_ms: i64) -> Duration {
    if let Some(reset) = seen.reset {
        let until = reset.saturating_mul(1000).saturating_sub(now_ms);
        let until = Duration::from_millis(u64::try_from(until).unwrap_or(0));
        return until.clamp(Duration::from_secs(1), MAX_WAIT);
    }
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY, |seconds| {
            Duration::from_secs(seconds).clamp(Duration::from_secs(1), MAX_WAIT)
        })
}

/// The budget of the current window, as far as the connector knows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Requests left in the window after the answers seen so far; `None` when unknown (no answer
    /// yet, or the window reset).
    remaining: Option<u64>,
    /// When the window resets (Unix seconds).
    reset: Option<i64>,
    /// Requests sent and not answered yet: each may already have spent one of `remaining`.
    in_flight: u64,
}

impl Budget {
    /// Takes in the headers of an answer. Answers to concurrent requests arrive in any order, so
    /// within one window the smaller count wins, and an answer from an older window is ignored.
    pub fn observe(&mut self, seen: RateLimitHeaders) {
        let (Some(remaining), Some(reset)) = (seen.remaining, seen.reset) else {
            return;
        };
        match self.reset {
            Some(current) if current > reset => {}
            Some(current) if current == reset => {
                self.remaining = Some(self.remaining.map_or(remaining, |r| r.min(remaining)));
            }
            _ => {
                self.remaining = Some(remaining);
                self.reset = Some(reset);
            }
        }
    }

    /// Marks the budget spent until `reset` (a 429 said so, perhaps without headers).
    pub fn exhaust(&mut self, reset: i64) {
        self.remaining = Some(0);
        self.reset = Some(self.reset.map_or(reset, |r| r.max(reset)));
    }

    /// How long to wait at Unix time `now_ms` (milliseconds) before the next request: until the
    /// reset when the budget, less the requests in flight, is at or below [`LOW_WATER`], capped
    /// at [`MAX_WAIT`]. A window that has reset is forgotten.
    pub fn wait(&mut self, now_ms: i64) -> Option<Duration> {
        let reset = self.reset?;
        let until = reset.saturating_mul(1000).saturating_sub(now_ms);
        if until <= 0 {
            self.remaining = None;
            self.reset = None;
            return None;
        }
        if self.remaining?.saturating_sub(self.in_flight) > LOW_WATER {
            return None;
        }
        let until = Duration::from_millis(u64::try_from(until).unwrap_or(0));
        Some(until.min(MAX_WAIT))
    }

    /// Counts one request leaving.
    pub fn send(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// Counts one request answered (or failed, or abandoned).
    pub fn settle(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

/// The budget shared by every request of one app's connector.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    budget: Mutex<Budget>,
}

/// One request let through the [`Gate`]; it counts as in flight until dropped, so drop it once
/// the answer's headers are observed.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    gate: &'a Gate,
    /// How long the request waited for a window to reset.
    pub waited: Option<Duration>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.lock().settle();
    }
}

impl Gate {
    /// Waits until the budget allows a request, then counts it as in flight.
    pub async fn acquire(&self) -> Permit<'_> {
        let mut waited: Option<Duration> = None;
        loop {
            let wait = {
                let mut budget = self.lock();
                match budget.wait(unix_now_ms()) {
                    Some(wait) => wait,
                    None => {
                        budget.send();
                        return Permit { gate: self, waited };
                    }
                }
            };
            // A cap reached means the header lied; going ahead beats waiting again.
            let capped = wait >= MAX_WAIT;
            tokio::time::sleep(wait).await;
            waited = Some(waited.unwrap_or_default() + wait);
            if capped {
                let mut budget = self.lock();
                budget.remaining = None;
                budget.reset = None;
            }
        }
    }

    /// Takes in an answer's rate-limit headers.
    pub fn observe(&self, seen: RateLimitHeaders) {
        self.lock().observe(seen);
    }

    /// Holds every request of the app for `delay` from now (a 429).
    pub fn exhaust_for(&self, delay: Duration) {
        let now_ms = unix_now_ms();
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        // Round up: a reset is a whole second.
        let reset = now_ms.saturating_add(delay_ms).saturating_add(999) / 1000;
        self.lock().exhaust(reset);
    }

    /// The wait the next request would have now.
    #[cfg(test)]
    pub fn pending_wait(&self) -> Option<Duration> {
        self.lock().wait(unix_now_ms())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Budget> {
        // A panic while holding the lock leaves a plain value behind; it is still usable.
        self.budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The current Unix time in milliseconds.
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn seen(remaining: u64, reset: i64) -> RateLimitHeaders {
        RateLimitHeaders {
            limit: Some(1000),
            remaining: Some(remaining),
            reset: Some(reset),
        }
    }

    #[test]
    fn reads_the_three_headers_in_any_case() {
        let map = headers(&[
            ("X-RateLimit-Limit", "10000"),
            ("x-ratelimit-remaining", " 9998 "),
            ("X-RateLimit-Reset", "1700000010"),
        ]);
        assert_eq!(
            parse_headers(&map),
            RateLimitHeaders {
                limit: Some(10_000),
                remaining: Some(9_998),
                reset: Some(1_700_000_010),
            }
        );
        let garbled = headers(&[
            ("x-ratelimit-limit", "lots"),
            ("x-ratelimit-remaining", "-1"),
            ("x-ratelimit-reset", "soon"),
        ]);
        assert_eq!(parse_headers(&garbled), RateLimitHeaders::default());
        assert_eq!(
            parse_headers(&HeaderMap::new()),
            RateLimitHeaders::default()
        );
    }

    #[test]
    fn waits_until_reset_only_when_the_budget_is_spent() {
        let now_ms = 1_700_000_000_250;
        let mut budget = Budget::default();
        assert_eq!(budget.wait(now_ms), None, "nothing known yet");

        budget.observe(seen(500, 1_700_000_010));
        assert_eq!(budget.wait(now_ms), None);

        let mut spent = Budget::default();
        spent.observe(seen(0, 1_700_000_010));
        assert_eq!(spent.wait(now_ms), Some(Duration::from_millis(9_750)));
        let mut low = Budget::default();
        low.observe(seen(LOW_WATER, 1_700_000_003));
        assert_eq!(low.wait(now_ms), Some(Duration::from_millis(2_750)));
        let mut enough = Budget::default();
        enough.observe(seen(LOW_WATER + 1, 1_700_000_003));
        assert_eq!(enough.wait(now_ms), None);
    }

    #[test]
    fn a_reset_in_the_past_forgets_the_window() {
        let mut budget = Budget::default();
        budget.observe(seen(0, 1_700_000_000));
        assert_eq!(budget.wait(1_700_000_000_000), None);
        assert_eq!(budget, Budget::default());
        budget.observe(seen(0, 1_699_999_990));
        assert_eq!(budget.wait(1_700_000_000_000), None);
    }

    #[test]
    fn a_far_reset_is_capped() {
        let mut budget = Budget::default();
        budget.observe(seen(0, 1_700_086_400));
        assert_eq!(budget.wait(1_700_000_000_000), Some(MAX_WAIT));
    }

    #[test]
    fn requests_in_flight_are_taken_off_the_last_count() {
        let now_ms = 1_700_000_000_000;
        let mut budget = Budget::default();
        budget.send();
        budget.send();
        budget.send();
        assert_eq!(budget.wait(now_ms), None, "nothing known: go");
        // The first answer says 4 left, but two requests are still out.
        budget.observe(seen(4, 1_700_000_005));
        budget.settle();
        assert_eq!(budget.wait(now_ms), None, "4 - 2 = 2 left");
        budget.send();
        assert_eq!(
            budget.wait(now_ms),
            Some(Duration::from_secs(5)),
            "4 - 3 = 1 left"
        );
        // Answers that count those requests come in: the count falls as the flight lands.
        budget.observe(seen(3, 1_700_000_005));
        budget.settle();
        budget.observe(seen(2, 1_700_000_005));
        budget.settle();
        assert_eq!(
            budget.wait(now_ms),
            Some(Duration::from_secs(5)),
            "2 - 1 = 1 left"
        );
        budget.observe(seen(1, 1_700_000_005));
        budget.settle();
        assert_eq!(budget.in_flight, 0);
        assert_eq!(budget.wait(now_ms), Some(Duration::from_secs(5)));
        budget.settle();
        assert_eq!(budget.in_flight, 0, "never below zero");
    }

    #[test]
    fn out_of_order_answers_keep_the_smaller_count_of_the_newest_window() {
        let mut budget = Budget::default();
        budget.observe(seen(10, 1_700_000_010));
        budget.observe(seen(40, 1_700_000_010));
        assert_eq!(budget.remaining, Some(10));
        budget.observe(seen(0, 1_700_000_000));
        assert_eq!(
            (budget.remaining, budget.reset),
            (Some(10), Some(1_700_000_010))
        );
        budget.observe(seen(900, 1_700_000_020));
        assert_eq!(
            (budget.remaining, budget.reset),
            (Some(900), Some(1_700_000_020))
        );
        budget.observe(RateLimitHeaders {
            limit: None,
            remaining: Some(0),
            reset: None,
        });
        assert_eq!(
            budget.remaining,
            Some(900),
            "a count without its window says nothing"
        );
    }

    #[test]
    fn a_429_asks_for_the_time_to_reset() {
        let now_ms = 1_700_000_000_400;
        let none = HeaderMap::new();
        assert_eq!(
            retry_after(seen(0, 1_700_000_007), &none, now_ms),
            Duration::from_millis(6_600)
        );
        assert_eq!(
            retry_after(seen(0, 1_700_000_000), &none, now_ms),
            Duration::from_secs(1),
            "at least a second"
        );
        assert_eq!(
            retry_after(seen(0, 1_600_000_000), &none, now_ms),
            Duration::from_secs(1)
        );
        assert_eq!(retry_after(seen(0, 1_800_000_000), &none, now_ms), MAX_WAIT);
        let no_reset = RateLimitHeaders::default();
        assert_eq!(
            retry_after(no_reset, &headers(&[("retry-after", "4")]), now_ms),
            Duration::from_secs(4)
        );
        assert_eq!(retry_after(no_reset, &none, now_ms), DEFAULT_RETRY);
        assert_eq!(
            retry_after(no_reset, &headers(&[("retry-after", "soon")]), now_ms),
            DEFAULT_RETRY
        );
    }

    #[test]
    fn exhausting_holds_until_the_later_reset() {
        let mut budget = Budget::default();
        budget.observe(seen(50, 1_700_000_010));
        budget.exhaust(1_700_000_004);
        assert_eq!(budget.remaining, Some(0));
        assert_eq!(budget.reset, Some(1_700_000_010));
        assert_eq!(
            budget.wait(1_700_000_000_000),
            Some(Duration::from_secs(10))
        );
    }

    #[tokio::test]
    async fn the_gate_sleeps_through_a_spent_window() {
        let gate = Gate::default();
        let permit = gate.acquire().await;
        assert_eq!(permit.waited, None);
        let reset = unix_now_ms() / 1000 + 1;
        gate.observe(seen(0, reset));
        drop(permit);
        let started = std::time::Instant::now();
        let permit = gate.acquire().await;
        let waited = permit.waited.expect("waited");
        assert!(waited > Duration::ZERO && waited <= Duration::from_secs(1));
        assert!(started.elapsed() >= waited);
        assert!(unix_now_ms() >= reset * 1000);
        drop(permit);
        assert_eq!(gate.acquire().await.waited, None, "the new window is open");
    }

    #[tokio::test]
    async fn a_dropped_request_leaves_the_flight() {
        let gate = Gate::default();
        gate.observe(seen(3, unix_now_ms() / 1000 + 30));
        let first = gate.acquire().await;
        assert_eq!(gate.lock().in_flight, 1);
        drop(first);
        assert_eq!(gate.lock().in_flight, 0);
        assert_eq!(gate.pending_wait(), None);
    }
}
