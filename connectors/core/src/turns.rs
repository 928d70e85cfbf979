//! Waiters queued by account, served alternately in turn and least served first: how the request
//! budget hands out its slots and the daemon its listed-page slots.
//!
//! Each account's waiters are served first come first. Which account is served next alternates:
//! once the account next in turn (which then goes to the back), once the account served the
//! fewest times since the counts were last forgotten (which keeps its place in the turns). So an
//! account that has already had much (a Connect account with a million objects) gets no more than
//! its turn while others wait, accounts that have had little go first for half of the slots, and
//! every waiting account still comes round at least every other round of turns.

use std::collections::{HashMap, VecDeque};

/// The waiters, by account.
#[derive(Debug)]
pub struct Turns<T> {
    queues: HashMap<String, VecDeque<T>>,
    /// Accounts with waiters, in the order they are served in turn.
    order: VecDeque<String>,
    /// Times each account was served since the counts were forgotten.
    served: HashMap<String, u64>,
    /// The next waiter is the least served account's.
    least_next: bool,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns {
            queues: HashMap::new(),
            order: VecDeque::new(),
            served: HashMap::new(),
            least_next: false,
        }
    }
}

impl<T> Turns<T> {
    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Queues a waiter of `account`.
    pub fn push(&mut self, account: &str, waiter: T) {
        let queue = self.queues.entry(account.to_owned()).or_default();
        if queue.is_empty() {
            self.order.push_back(account.to_owned());
        }
        queue.push_back(waiter);
    }

    /// The next waiter and its account; call [`Turns::served`] when it was served.
    pub fn pop(&mut self) -> Option<(String, T)> {
        let least = std::mem::take(&mut self.least_next);
        self.least_next = !least;
        let pick = if least { self.least_served() } else { 0 };
        let account = self.order.remove(pick)?;
        let queue = self.queues.get_mut(&account)?;
        let waiter = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&account);
        } else if least {
            self.order.insert(pick, account.clone());
        } else {
            self.order.push_back(account.clone());
        }
        Some((account, waiter))
    }

    /// Counts a serving of `account`.
    pub fn served(&mut self, account: String) {
        *self.served.entry(account).or_default() += 1;
    }

    /// Forgets the counts (call when nobody waits any more: a new busy time starts even).
    pub fn forget_served(&mut self) {
        self.served.clear();
    }

    /// The place in the turns of the account served the fewest times (the first of equals).
    fn least_served(&self) -> usize {
        self.order
            .iter()
            .enumerate()
            .min_by_key(|(i, a)| (self.served.get(*a).copied().unwrap_or(0), *i))
            .map_or(0, |(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(turns: &mut Turns<u32>, n: usize) -> Vec<String> {
        (0..n)
            .map_while(|_| {
                let (account, _) = turns.pop()?;
                turns.served(account.clone());
                Some(account)
            })
            .collect()
    }

    #[test]
    fn turns_alternate_with_the_least_served() {
        let mut turns = Turns::default();
        for n in 0..20 {
            turns.push("large", n);
        }
        assert_eq!(serve(&mut turns, 4), ["large"; 4]);
        for account in ["a", "b", "c"] {
            turns.push(account, 0);
            turns.push(account, 1);
        }
        // In turn: large, a, b, c...; least served: a, b, c (never yet) in between.
        let order = serve(&mut turns, 8);
        assert_eq!(order, ["large", "a", "a", "b", "b", "c", "c", "large"]);
        assert!(turns.queues.len() == 1 && turns.order.len() == 1);
        turns.forget_served();
        assert_eq!(serve(&mut turns, 20).len(), 14, "every waiter, once");
        assert!(turns.is_empty());
    }
}
