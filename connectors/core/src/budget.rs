//! A per-app request budget: at most `requests_per_second` requests start per second, spaced
//! evenly, whichever task or webhook sends them, shared fairly between the accounts the requests
//! are for.
//!
//! A caller names the account its request is for (`""` for the app's own). While the budget has
//! room the request goes at once. Otherwise it waits in its account's queue, and the slots go to
//! the accounts that have a request waiting, alternately: one to the next account in turn, the
//! next to the account that has been given the fewest slots since requests began to wait. So a
//! connected account with a million objects and twenty walkers gets no more than its turn, and
//! once it has had more slots than the small accounts beside it, they go first for half of the
//! slots: fifty small accounts complete before a large one has used most of the budget. Every
//! account waiting still gets a slot at least every other round of turns (a webhook's fetch is
//! never stuck behind a backfill), and an account alone gets every slot. One dispatcher task per
//! budget hands out the slots, and only while requests wait; the budget is never exceeded. Used
//! by connectors at their one HTTP choke point, before the request is sent.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::turns::Turns;

/// Spaces the requests of one app.
#[derive(Debug)]
pub struct RequestBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The time between two request starts.
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the next request may start.
    next: Instant,
    /// The requests waiting, by account ([`Turns`]).
    waiting: Turns<oneshot::Sender<()>>,
    /// A dispatcher is handing out slots.
    dispatching: bool,
}

impl RequestBudget {
    /// A budget of `per_second` requests per second; `None` when it is not a positive number (no
    /// budget).
    pub fn per_second(per_second: f64) -> Option<RequestBudget> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        Some(RequestBudget {
            inner: Arc::new(Inner {
                interval: Duration::from_secs_f64(1.0 / per_second),
                state: Mutex::new(State {
                    next: Instant::now(),
                    waiting: Turns::default(),
                    dispatching: false,
                }),
            }),
        })
    }

    /// Waits for a slot for a request of the app's own account; see [`Self::acquire_for`].
    pub async fn acquire(&self) -> Duration {
        self.acquire_for("").await
    }

    /// Waits for a slot for a request of `account` and returns how long that took (zero when the
    /// budget had room). Must be called inside a Tokio runtime.
    pub async fn acquire_for(&self, account: &str) -> Duration {
        let asked = Instant::now();
        let waiting = {
            let mut state = self.inner.lock();
            if state.waiting.is_empty() && state.next <= asked {
                state.next = asked + self.inner.interval;
                return Duration::ZERO;
            }
            let (tx, rx) = oneshot::channel();
            state.waiting.push(account, tx);
            if !state.dispatching {
                state.dispatching = true;
                tokio::spawn(dispatch(self.inner.clone()));
            }
            rx
        };
        // The dispatcher never drops a waiter unanswered while the budget lives.
        let _ = waiting.await;
        asked.elapsed()
    }

    /// [`acquire`](Self::acquire), telling `observer` of any wait as a rate-limit wait.
    pub async fn acquire_observed(&self, observer: &dyn crate::RequestObserver) {
        self.acquire_observed_for("", observer).await;
    }

    /// [`acquire_for`](Self::acquire_for), telling `observer` of any wait as a rate-limit wait.
    pub async fn acquire_observed_for(&self, account: &str, observer: &dyn crate::RequestObserver) {
        let waited = self.acquire_for(account).await;
        if !waited.is_zero() {
            observer.rate_limited(waited);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hands out slots, one per interval, until no request waits ([`Turns`] says to whom).
async fn dispatch(inner: Arc<Inner>) {
    loop {
        let slot = {
            let mut state = inner.lock();
            if state.waiting.is_empty() {
                state.dispatching = false;
                state.waiting.forget_served();
                return;
            }
            let slot = state.next.max(Instant::now());
            state.next = slot + inner.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        let mut state = inner.lock();
        // A waiter whose task was dropped gives the slot to the next one.
        while let Some((account, waiter)) = state.waiting.pop() {
            if waiter.send(()).is_ok() {
                state.waiting.served(account);
                break;
            }
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

    /// Starts `n` requests of `account` at once; their start times after `start`.
    fn burst(
        budget: &Arc<RequestBudget>,
        account: &'static str,
        n: usize,
        start: Instant,
    ) -> Vec<tokio::task::JoinHandle<(&'static str, Duration)>> {
        (0..n)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    budget.acquire_for(account).await;
                    (account, Instant::now() - start)
                })
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_budget() {
        let budget = Arc::new(RequestBudget::per_second(25.0).unwrap());
        let start = Instant::now();
        let mut starts = Vec::new();
        for h in burst(&budget, "", 50, start) {
            starts.push(h.await.unwrap().1);
        }
        starts.sort();
        assert_eq!(starts[0], Duration::ZERO, "the first goes at once");
        // 50 requests at 25/s: the last starts 49 intervals (1.96 s) after the first.
        assert_eq!(starts[49], Duration::from_millis(1960));
        for pair in starts.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(40));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn accounts_take_turns_and_one_alone_gets_every_slot() {
        let budget = Arc::new(RequestBudget::per_second(10.0).unwrap());
        let start = Instant::now();
        // A large account asks for 30 slots, then two small ones for 3 each.
        let mut handles = burst(&budget, "acct_large", 30, start);
        tokio::task::yield_now().await;
        handles.extend(burst(&budget, "acct_a", 3, start));
        handles.extend(burst(&budget, "acct_b", 3, start));
        let mut grants = Vec::new();
        for h in handles {
            grants.push(h.await.unwrap());
        }
        grants.sort_by_key(|(_, at)| *at);
        let small_done = grants
            .iter()
            .filter(|(a, _)| *a != "acct_large")
            .map(|(_, at)| *at)
            .max()
            .unwrap();
        // Six small requests in turns with the large one: all done by the eleventh slot or so,
        // not after the large account's thirty.
        assert!(small_done <= Duration::from_millis(1300), "{small_done:?}");
        // Never more than the budget: 36 requests, the last 35 intervals after the first.
        assert_eq!(grants.last().unwrap().1, Duration::from_millis(3500));
        for pair in grants.windows(2) {
            assert!(pair[1].1 - pair[0].1 >= Duration::from_millis(100));
        }
        // Once the small ones are done the large one has every slot.
        let tail: Vec<&str> = grants[12..].iter().map(|(a, _)| *a).collect();
        assert!(tail.iter().all(|a| *a == "acct_large"), "{tail:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn small_accounts_go_first_and_the_large_one_still_gets_its_turns() {
        let budget = Arc::new(RequestBudget::per_second(10.0).unwrap());
        let start = Instant::now();
        // A large account has had the budget to itself for two seconds when five small ones
        // ask for four slots each.
        let mut handles = burst(&budget, "acct_large", 60, start);
        tokio::time::sleep(Duration::from_millis(2050)).await;
        let arrived = Instant::now() - start;
        for small in ["acct_a", "acct_b", "acct_c", "acct_d", "acct_e"] {
            handles.extend(burst(&budget, small, 4, start));
        }
        let mut grants = Vec::new();
        for h in handles {
            grants.push(h.await.unwrap());
        }
        grants.sort_by_key(|(_, at)| *at);
        let during: Vec<&str> = grants
            .iter()
            .filter(|(_, at)| *at > arrived)
            .map(|(a, _)| *a)
            .collect();
        let last_small = during.iter().rposition(|a| *a != "acct_large").unwrap();
        let large: Vec<usize> = (0..last_small)
            .filter(|i| during[*i] == "acct_large")
            .collect();
        // Turns alone would give the large account a sixth of the slots while the small ones
        // wait; with every other slot going to the least served, it gets a twelfth.
        assert!(last_small <= 22, "{during:?}");
        assert!(large.len() <= 2, "{during:?}");
        // Yet it is never left out for more than two rounds of turns.
        assert!(large.first().is_some_and(|i| *i <= 12), "{during:?}");
        // Never more than the budget: 80 requests, the last 79 intervals after the first.
        assert_eq!(grants.last().unwrap().1, Duration::from_millis(7900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_waiter_gives_its_turn_away() {
        let budget = Arc::new(RequestBudget::per_second(10.0).unwrap());
        let start = Instant::now();
        budget.acquire_for("x").await;
        let dropped = burst(&budget, "gone", 1, start);
        let kept = burst(&budget, "kept", 1, start);
        tokio::task::yield_now().await;
        dropped[0].abort();
        let (_, at) = kept.into_iter().next().unwrap().await.unwrap();
        assert_eq!(
            at,
            Duration::from_millis(100),
            "the next slot, not the one after"
        );
    }
}
