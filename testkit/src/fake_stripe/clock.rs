//! The fake's clock: real Unix seconds unless a test pins it.
//!
//! It stamps recorded events, decides which events are past retention, and fills a missing
//! `created` on upsert. Pinned, it stands still, so several changes share one second: the
//! same-second orderings a sync must cope with become reproducible.

use std::sync::atomic::{AtomicI64, Ordering};

use super::store::unix_now;

/// The fake's clock: real Unix seconds, or a time a test pinned.
#[derive(Debug)]
pub(crate) struct Clock(AtomicI64);

impl Clock {
    /// Marks the clock as unpinned; no test pins it to the first second of the `i64` range.
    const REAL: i64 = i64::MIN;

    pub fn new() -> Self {
        Clock(AtomicI64::new(Self::REAL))
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        match self.0.load(Ordering::SeqCst) {
            Self::REAL => unix_now(),
            pinned => pinned,
        }
    }

    /// Pins the clock to `at`, or lets it follow real time again.
    pub fn set(&self, at: Option<i64>) {
        let value = at.map_or(Self::REAL, |t| t.max(Self::REAL + 1));
        self.0.store(value, Ordering::SeqCst);
    }

    /// Moves the clock by `secs` (back when negative), pinning it there if it was real.
    pub fn advance(&self, secs: i64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                let base = if t == Self::REAL { unix_now() } else { t };
                Some(base.saturating_add(secs).max(Self::REAL + 1))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_real_clock_is_pinned_near_now() {
        let clock = Clock::new();
        clock.advance(100);
        let pinned = clock.now();
        assert!((unix_now() + 99..=unix_now() + 101).contains(&pinned));
        clock.set(Some(5));
        clock.advance(-2);
        assert_eq!(clock.now(), 3);
        clock.set(None);
        assert!(clock.now() >= unix_now() - 1);
    }
}
