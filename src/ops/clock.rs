//! The process's clock for what is due: circuit breakers' open periods and the tasks a worker may
//! claim. It is the system clock, moved ahead by [`Clock::advance`] in tests, so that a test of an
//! open period or a retry delay takes no time instead of sleeping through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The system clock, plus however far it was moved ahead; cheap to clone (clones share it).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead_micros: Arc<AtomicU64>,
}

impl Clock {
    fn ahead(&self) -> Duration {
        Duration::from_micros(self.ahead_micros.load(Ordering::Relaxed))
    }

    /// Now, as a monotonic instant.
    pub fn instant(&self) -> Instant {
        Instant::now() + self.ahead()
    }

    /// Now, as a wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        let ahead = chrono::Duration::from_std(self.ahead()).unwrap_or_default();
        Utc::now() + ahead
    }

    /// Moves the clock ahead by `by` (for tests: what was due after `by` is due now).
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.ahead_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_both_clocks_and_clones_share_it() {
        let clock = Clock::default();
        let copy = clock.clone();
        let (before, wall) = (Instant::now(), Utc::now());
        clock.advance(Duration::from_secs(3600));
        assert!(copy.instant() >= before + Duration::from_secs(3600));
        assert!(copy.now() >= wall + chrono::Duration::seconds(3600));
    }
}
