//! The webhook body budget: how many bytes of webhook bodies this process holds at once, across
//! requests (`server.webhook_body_budget_bytes`). A delivery reserves its `Content-Length` (or
//! `server.max_body_bytes` when it sends none) before a byte of its body is read, and keeps the
//! reservation while it holds the body; one that cannot reserve within [`WAIT`] is answered 503
//! with `Retry-After`, so a thousand slow bodies cost at most the budget, not a gigabyte.
//!
//! Counted in KiB, so any budget fits the semaphore's permits.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a delivery waits for its share before it is answered 503.
pub(super) const WAIT: Duration = Duration::from_secs(1);

/// The budget of one process.
pub(super) struct BodyBudget {
    /// KiB not reserved.
    kib: Arc<Semaphore>,
}

/// Bytes reserved for one body; dropping it returns them.
pub(super) struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub(super) fn new(bytes: usize) -> BodyBudget {
        BodyBudget {
            kib: Arc::new(Semaphore::new(kib(bytes) as usize)),
        }
    }

    /// Reserves `bytes`, waiting up to [`WAIT`] for them to be free; `None` when they are not.
    pub(super) async fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let wanted = self.kib.clone().acquire_many_owned(kib(bytes));
        match tokio::time::timeout(WAIT, wanted).await {
            Ok(Ok(permit)) => Some(Reservation { _permit: permit }),
            // Never closed; either way nothing is reserved.
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

/// Bytes in KiB, rounded up.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_waits_for_its_share_then_is_refused_and_a_release_lets_it_in() {
        let budget = BodyBudget::new(64 * 1024);
        let first = budget.reserve(40 * 1024).await.expect("free");
        let second = budget.reserve(24 * 1024).await.expect("exactly the rest");
        assert!(
            budget.reserve(1).await.is_none(),
            "nothing left after the wait"
        );
        drop(first);
        let third = budget.reserve(40 * 1024).await.expect("released");
        drop((second, third));
        assert!(budget.reserve(64 * 1024).await.is_some(), "all of it");
        assert!(
            budget.reserve(64 * 1024 + 1).await.is_none(),
            "more than all"
        );
    }
}
