//! A per-app request budget: at most `requests_per_second` requests start per second, spaced
//! evenly, whichever task or webhook sends them.
//!
//! Each caller reserves the next free slot and sleeps until it, so waiting callers go in the order
//! they asked and the budget is never exceeded, however many tasks share it. Used by connectors at
//! their one HTTP choke point, before the request is sent.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces the requests of one app.
#[derive(Debug)]
pub struct RequestBudget {
    /// The time between two request starts.
    interval: Duration,
    /// When the next request may start.
    next: Mutex<Instant>,
}

impl RequestBudget {
    /// A budget of `per_second` requests per second; `None` when it is not a positive number (no
    /// budget).
    pub fn per_second(per_second: f64) -> Option<RequestBudget> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        Some(RequestBudget {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        })
    }

    /// Waits for this request's slot and returns how long that took (zero when the budget had
    /// room).
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        slot - now
    }

    /// [`acquire`](Self::acquire), telling `observer` of any wait as a rate-limit wait.
    pub async fn acquire_observed(&self, observer: &dyn crate::RequestObserver) {
        let waited = self.acquire().await;
        if !waited.is_zero() {
            observer.rate_limited(waited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_budget_without_a_positive_rate() {
        assert!(RequestBudget::per_second(0.0).is_none());
        assert!(RequestBudget::per_second(-1.0).is_none());
        assert!(RequestBudget::per_second(f64::NAN).is_none());
        assert!(RequestBudget::per_second(25.0).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_budget() {
        let budget = std::sync::Arc::new(RequestBudget::per_second(25.0).unwrap());
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..50 {
            let budget = budget.clone();
            handles.push(tokio::spawn(async move {
                budget.acquire().await;
                Instant::now()
            }));
        }
        let mut starts = Vec::new();
        for h in handles {
            starts.push(h.await.unwrap() - start);
        }
        starts.sort();
        assert_eq!(starts[0], Duration::ZERO, "the first goes at once");
        // 50 requests at 25/s: the last starts 49 intervals (1.96 s) after the first.
        assert_eq!(starts[49], Duration::from_millis(1960));
        for pair in starts.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(40));
        }
    }
}
