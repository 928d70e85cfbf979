//! A fixed number of slots shared fairly between accounts (an app's own, or a Stripe Connect
//! app's connected accounts, each of every app): the listed pages a process holds at once
//! ([`crate::context::Context::pages`]).
//!
//! While slots are free a caller takes one at once. Otherwise it waits in its account's queue, and
//! each slot given back goes to a waiting account as the request budget's slots do
//! ([`supasaasy_connector::turns`]: alternately in turn and least served first): a Stripe Connect
//! account whose run has twenty-five walkers holds no more of the process's pages than one with a
//! single walker while both wait, so a large account does not starve small ones of the memory
//! (and, behind it, of the request budget) they need to make progress. An account alone gets
//! every slot.

use std::sync::{Arc, Mutex, MutexGuard};

use supasaasy_connector::turns::Turns;
use tokio::sync::oneshot;

/// The slots; cheap to clone.
#[derive(Clone)]
pub struct FairSlots {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
}

struct State {
    /// Slots nobody holds or waits for.
    free: usize,
    /// Callers waiting, by account.
    waiting: Turns<oneshot::Sender<Slot>>,
}

/// One slot, given back when dropped.
pub struct Slot {
    pool: Option<Arc<Inner>>,
}

impl FairSlots {
    /// `n` slots.
    pub fn new(n: usize) -> FairSlots {
        FairSlots {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    free: n,
                    waiting: Turns::default(),
                }),
            }),
        }
    }

    /// Waits for a slot for `account` (any key naming who waits: the daemon uses app and account).
    pub async fn acquire(&self, account: &str) -> Slot {
        let rx = {
            let mut state = self.inner.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Slot {
                    pool: Some(self.inner.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            state.waiting.push(account, tx);
            rx
        };
        // A slot is only ever sent, never dropped unsent while a waiter lives; if this waiter is
        // dropped, a slot sent to it is given back by its own drop.
        rx.await.expect("a waiter is always given a slot")
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a slot given back to a waiting account, or frees it.
    fn release(self: &Arc<Self>) {
        loop {
            let (account, waiter) = {
                let mut state = self.lock();
                match state.waiting.pop() {
                    Some(next) => next,
                    None => {
                        state.free += 1;
                        state.waiting.forget_served();
                        return;
                    }
                }
            };
            match waiter.send(Slot {
                pool: Some(self.clone()),
            }) {
                Ok(()) => {
                    self.lock().waiting.served(account);
                    return;
                }
                // The waiter is gone: the slot goes to the next one.
                Err(mut slot) => slot.pool = None,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn slots_go_to_the_accounts_in_turn() {
        let slots = FairSlots::new(2);
        let a1 = slots.acquire("a").await;
        let a2 = slots.acquire("a").await;
        // Three more of `a` wait, then one of `b`: `b` gets the second slot given back.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (n, account) in ["a", "a", "a", "b"].into_iter().enumerate() {
            let (slots, order) = (slots.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let slot = slots.acquire(account).await;
                order.lock().unwrap().push(format!("{account}{n}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(a1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop(a2);
        for w in waiting {
            w.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order[..2],
            ["a0".to_string(), "b3".to_string()],
            "{order:?}"
        );
        assert_eq!(order.len(), 4);
        // Every slot came back.
        let _x = slots.acquire("c").await;
        let _y = slots.acquire("c").await;
        assert_eq!(slots.inner.lock().free, 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_slot() {
        let slots = FairSlots::new(1);
        let held = slots.acquire("a").await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), slots.acquire("b")).await;
        assert!(gave_up.is_err());
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(1), slots.acquire("c")).await;
        assert!(again.is_ok(), "the slot came back");
    }
}
