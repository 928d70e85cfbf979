//! How many refused webhook requests an app's rows record: the first [`PER_WINDOW`] of each
//! minute are each an integration event (and a request log row, when logging is on); past them a
//! refusal is only counted, and at the end of the minute one integration event sums up how many
//! were not recorded. Whoever sends unsigned requests then writes at most about a hundred rows a
//! minute per app, however fast they send.
//!
//! A window starts at an app's first refusal and lasts [`WINDOW`]; a window that had to leave
//! refusals unrecorded ends when its summary is written, so none is lost between windows. The
//! table holds configured apps only (the caller never asks for another), so it stays small.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Refusals of one app recorded one by one per window.
pub(super) const PER_WINDOW: u32 = 100;
/// The window refusals are counted in.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// Writes the summary of a window: the app, how many refusals were not recorded, the reason of
/// the last.
pub(super) type Summarize = dyn Fn(&str, u64, &str) + Send + Sync;

/// The windows of every app that had a refusal lately.
pub(super) struct Rejections {
    windows: Mutex<HashMap<String, Window>>,
    summarize: Box<Summarize>,
}

/// One app's current window.
struct Window {
    started: Instant,
    /// Refusals recorded one by one.
    recorded: u32,
    /// Refusals past [`PER_WINDOW`], waiting for the summary.
    unrecorded: u64,
    /// The reason of the last unrecorded refusal.
    last_reason: String,
}

impl Window {
    fn new(started: Instant) -> Window {
        Window {
            started,
            recorded: 0,
            unrecorded: 0,
            last_reason: String::new(),
        }
    }
}

impl Rejections {
    /// Windows whose summaries go to `summarize`.
    pub(super) fn new(summarize: Box<Summarize>) -> Arc<Rejections> {
        Arc::new(Rejections {
            windows: Mutex::new(HashMap::new()),
            summarize,
        })
    }

    /// Counts a refusal of `app_key`: true when it is to be recorded, false when it is only
    /// counted (the window's summary will include it). Must be called inside a Tokio runtime.
    pub(super) fn admit(self: &Arc<Self>, app_key: &str, reason: &str) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window = windows
            .entry(app_key.to_owned())
            .or_insert_with(|| Window::new(now));
        // A window with refusals unrecorded is ended by its summary, not here.
        if window.unrecorded == 0 && now.duration_since(window.started) >= WINDOW {
            *window = Window::new(now);
        }
        if window.recorded < PER_WINDOW {
            window.recorded += 1;
            return true;
        }
        window.unrecorded += 1;
        reason.clone_into(&mut window.last_reason);
        if window.unrecorded == 1 {
            let (this, app_key, ends) = (
                Arc::clone(self),
                app_key.to_owned(),
                window.started + WINDOW,
            );
            tokio::spawn(async move {
                tokio::time::sleep_until(ends).await;
                this.summarize_window(&app_key);
            });
        }
        false
    }

    /// Ends `app_key`'s window and writes its summary.
    fn summarize_window(&self, app_key: &str) {
        let ended = {
            let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            windows.remove(app_key)
        };
        if let Some(w) = ended.filter(|w| w.unrecorded > 0) {
            (self.summarize)(app_key, w.unrecorded, &w.last_reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Written = Arc<Mutex<Vec<(String, u64, String)>>>;

    fn rejections() -> (Arc<Rejections>, Written) {
        let written: Written = Arc::default();
        let sink = Arc::clone(&written);
        let r = Rejections::new(Box::new(move |app, n, reason| {
            sink.lock()
                .unwrap()
                .push((app.to_owned(), n, reason.to_owned()));
        }));
        (r, written)
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_rate_refusals_are_counted_and_summed_up_once_a_window() {
        let (r, written) = rejections();
        let recorded = (0..250).filter(|i| r.admit("a", &format!("r{i}"))).count();
        assert_eq!(recorded, 100);
        assert!(r.admit("b", "other app"), "each app has its own window");
        tokio::time::sleep(WINDOW - Duration::from_millis(1)).await;
        assert!(
            written.lock().unwrap().is_empty(),
            "not before the minute ends"
        );
        assert!(!r.admit("a", "late"), "still the same window");
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            *written.lock().unwrap(),
            vec![("a".to_owned(), 151, "late".to_owned())]
        );
        // The next window records again, and one with nothing unrecorded writes no summary.
        assert!(r.admit("a", "again"));
        tokio::time::sleep(WINDOW * 2).await;
        assert!(r.admit("a", "again"));
        assert_eq!(written.lock().unwrap().len(), 1);
    }
}
