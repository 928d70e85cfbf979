//! What decides whether an alert goes out: the repeat window (the same kind for the same app at
//! most once per `alerts.repeat_after_s`, across every daemon sharing the database) and the count
//! of refused webhooks that makes a burst.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;

use crate::config::AlertKind;
use crate::store::alert_windows;

/// Refused webhooks of one app, within [`REJECTION_WINDOW`], that raise an alert.
pub const REJECTION_BURST: usize = 10;
/// The sliding window refused webhooks are counted in.
pub const REJECTION_WINDOW: Duration = Duration::from_secs(60);
/// How long the shared repeat window may take to answer before this daemon's memory decides.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(2);

/// The repeat window: shared through `supasaasy.alert_windows`, kept in memory too for when the
/// database does not answer.
pub(super) struct RepeatWindow {
    pool: Pool,
    repeat_after: Duration,
    /// What this daemon sent: the fallback.
    local: LocalWindow,
}

impl RepeatWindow {
    pub(super) fn new(pool: Pool, repeat_after: Duration) -> RepeatWindow {
        RepeatWindow {
            pool,
            repeat_after,
            local: LocalWindow {
                repeat_after,
                sent: HashMap::new(),
            },
        }
    }

    /// Takes the window of `kind` for `app_key`: true when the alert should go out now.
    pub(super) async fn take(&mut self, kind: AlertKind, app_key: &str) -> bool {
        let claim = async {
            let client = self.pool.get().await?;
            alert_windows::claim(&**client, kind.as_str(), app_key, self.repeat_after).await
        };
        let now = Instant::now();
        match tokio::time::timeout(CLAIM_TIMEOUT, claim).await {
            Ok(Ok(true)) => {
                self.local.sent.insert((kind, app_key.to_string()), now);
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "alert repeat window unavailable; using this daemon's memory");
                self.local.take(kind, app_key, now)
            }
            Err(_) => {
                tracing::warn!(
                    "alert repeat window did not answer in time; using this daemon's memory"
                );
                self.local.take(kind, app_key, now)
            }
        }
    }
}

/// The repeat window as this daemon alone knows it.
struct LocalWindow {
    repeat_after: Duration,
    /// When this daemon last sent each (kind, app).
    sent: HashMap<(AlertKind, String), Instant>,
}

impl LocalWindow {
    fn take(&mut self, kind: AlertKind, app_key: &str, now: Instant) -> bool {
        let key = (kind, app_key.to_string());
        if let Some(last) = self.sent.get(&key) {
            if now.saturating_duration_since(*last) < self.repeat_after {
                return false;
            }
        }
        self.sent.insert(key, now);
        true
    }
}

/// Refused webhooks per app, in a sliding window.
#[derive(Default)]
pub(super) struct RejectionBursts {
    by_app: HashMap<String, VecDeque<Instant>>,
}

impl RejectionBursts {
    /// Counts one refusal of `app_key` at `now`. When it completes a burst, answers how many were
    /// counted and starts that app's count again.
    pub(super) fn count(&mut self, app_key: &str, now: Instant) -> Option<usize> {
        if !self.by_app.contains_key(app_key) {
            self.by_app.insert(app_key.to_string(), VecDeque::new());
        }
        let times = self.by_app.get_mut(app_key)?;
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= REJECTION_WINDOW)
        {
            times.pop_front();
        }
        times.push_back(now);
        if times.len() < REJECTION_BURST {
            return None;
        }
        let n = times.len();
        times.clear();
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_window_lets_one_alert_per_kind_and_app_through() {
        let t0 = Instant::now();
        let mut w = LocalWindow {
            repeat_after: Duration::from_secs(900),
            sent: HashMap::new(),
        };
        assert!(w.take(AlertKind::JobFailed, "a", t0));
        assert!(!w.take(AlertKind::JobFailed, "a", t0 + Duration::from_secs(899)));
        assert!(w.take(AlertKind::JobFailed, "b", t0));
        assert!(w.take(AlertKind::CircuitOpen, "a", t0));
        assert!(w.take(AlertKind::JobFailed, "a", t0 + Duration::from_secs(900)));
        let mut always = LocalWindow {
            repeat_after: Duration::ZERO,
            sent: HashMap::new(),
        };
        assert!(always.take(AlertKind::JobFailed, "a", t0));
        assert!(always.take(AlertKind::JobFailed, "a", t0));
    }

    #[test]
    fn a_burst_is_ten_refusals_within_a_minute_then_the_count_restarts() {
        let mut bursts = RejectionBursts::default();
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(bursts.count("a", t0 + Duration::from_secs(i)), None);
        }
        // Another app's refusals are counted apart.
        assert_eq!(bursts.count("b", t0), None);
        assert_eq!(bursts.count("a", t0 + Duration::from_secs(9)), Some(10));
        for i in 0..9 {
            assert_eq!(bursts.count("a", t0 + Duration::from_secs(10 + i)), None);
        }
    }

    #[test]
    fn refusals_older_than_the_window_do_not_count() {
        let mut bursts = RejectionBursts::default();
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(bursts.count("a", t0 + Duration::from_secs(i)), None);
        }
        // A minute after the first, the first no longer counts: 9 in the window, not 10.
        assert_eq!(bursts.count("a", t0 + REJECTION_WINDOW), None);
        assert_eq!(
            bursts.count("a", t0 + REJECTION_WINDOW + Duration::from_millis(500)),
            Some(10)
        );
    }
}
