//! The writer of the integration events log: events recorded anywhere in the daemon go through a
//! channel to one background task that inserts them in batches (gathered for up to 50 ms), one statement per batch, so
//! recording an event costs a webhook answer nothing but a channel send.
//!
//! An event is recorded after the work it describes; the webhook answer does not wait for it. A
//! batch that cannot be written (the database is down) is kept and retried with backoff, up to
//! [`MAX_PENDING`] events, beyond which the oldest are dropped with a warning. An event recorded
//! while the channel is full (the writer is behind, or waiting out an outage) is dropped and
//! counted ([`EventLog::dropped`], `supasaasy_integration_events_dropped_total`): memory stays
//! bounded whatever strangers send. [`EventLog::flush`]
//! returns once everything recorded before it is written (the events API calls it, and so does a
//! stopping daemon).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::store::integration_events::{self, NewEvent};

/// Events waiting in the channel; past it `record` drops them.
const CHANNEL: usize = 16_384;
/// Events inserted per statement at most.
const BATCH: usize = 1_000;
/// How long the writer lets a batch gather after its first event.
const LINGER: Duration = Duration::from_millis(50);
/// Events kept while the database is unreachable.
const MAX_PENDING: usize = 100_000;

enum Msg {
    Event(NewEvent),
    Flush(oneshot::Sender<()>),
}

/// A handle on the writer; cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::Sender<Msg>,
    /// `[events] enabled`: when false, `record` does nothing.
    enabled: bool,
    /// Events dropped because the channel was full.
    dropped: Arc<AtomicU64>,
}

impl EventLog {
    /// Starts the writer on `pool`. Must be called inside a Tokio runtime; the writer ends when
    /// every handle is dropped, after writing what it holds.
    pub fn start(pool: Pool, enabled: bool) -> EventLog {
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::spawn(write_loop(pool, rx));
        EventLog {
            tx,
            enabled,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records an event; never waits.
    pub fn record(
        &self,
        app_key: Option<&str>,
        service: &str,
        event_type: &str,
        outcome: &str,
        detail: Value,
    ) {
        if !self.enabled {
            return;
        }
        let event = NewEvent {
            app_key: app_key.map(str::to_string),
            service: service.to_string(),
            event_type: event_type.to_string(),
            outcome: outcome.to_string(),
            detail,
            at: Utc::now(),
        };
        match self.tx.try_send(Msg::Event(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The writer is behind: the event is dropped rather than held or waited for. A
                // warning at the first drop and at every power of two after it.
                let before = self.dropped.fetch_add(1, Ordering::Relaxed);
                if (before + 1).is_power_of_two() {
                    tracing::warn!(
                        dropped = before + 1,
                        "integration events dropped: the writer is behind (is the database down?)"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("event log closed; event not recorded");
            }
        }
    }

    /// Waits until every event recorded before this call is written, or `timeout` passes (the
    /// database may be down).
    pub async fn flush(&self, timeout: Duration) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = tokio::time::timeout(timeout, done).await;
        }
    }
}

async fn write_loop(pool: Pool, mut rx: mpsc::Receiver<Msg>) {
    let mut pending: VecDeque<NewEvent> = VecDeque::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    let mut open = true;
    while open || !pending.is_empty() {
        if pending.is_empty() && waiting.is_empty() {
            match rx.recv().await {
                Some(msg) => take(msg, &mut pending, &mut waiting),
                None => open = false,
            }
            // Let a batch gather: one statement for many events costs the database far less
            // than one per event. A flush does not wait for it.
            let deadline = tokio::time::Instant::now() + LINGER;
            while open && waiting.is_empty() && pending.len() < BATCH {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    msg = rx.recv() => match msg {
                        Some(msg) => take(msg, &mut pending, &mut waiting),
                        None => open = false,
                    },
                }
            }
        }
        // Take whatever else is already queued, up to a batch.
        while pending.len() < BATCH {
            match rx.try_recv() {
                Ok(msg) => take(msg, &mut pending, &mut waiting),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if pending.is_empty() {
            ack_all(&mut waiting);
            continue;
        }
        let n = pending.len().min(BATCH);
        match write(&pool, &pending.make_contiguous()[..n]).await {
            Ok(()) => {
                pending.drain(..n);
                backoff = Duration::from_millis(100);
                if pending.is_empty() {
                    ack_all(&mut waiting);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = pending.len(), "integration events not written yet; retrying in {backoff:?}");
                if pending.len() > MAX_PENDING {
                    let dropped = pending.len() - MAX_PENDING;
                    pending.drain(..dropped);
                    tracing::warn!(
                        dropped,
                        "integration events dropped: the database has been unreachable too long"
                    );
                }
                // Flush callers are not held up by an outage: they have their own timeout.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                if !open && backoff >= Duration::from_secs(10) {
                    tracing::warn!(lost = pending.len(), "integration events lost at shutdown");
                    return;
                }
            }
        }
    }
    ack_all(&mut waiting);
}

/// Tells every flush caller that what it waited for is written.
fn ack_all(waiting: &mut Vec<oneshot::Sender<()>>) {
    for ack in waiting.drain(..) {
        let _ = ack.send(());
    }
}

fn take(msg: Msg, pending: &mut VecDeque<NewEvent>, waiting: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Event(e) => pending.push_back(e),
        Msg::Flush(ack) => waiting.push(ack),
    }
}

async fn write(pool: &Pool, batch: &[NewEvent]) -> Result<(), crate::store::StoreError> {
    let client = pool.get().await?;
    integration_events::insert_batch(&**client, batch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_past_the_channel_are_dropped_and_counted_not_held() {
        // A database that never answers: the writer keeps its first batch and waits.
        let target = crate::db::Target::parse("postgres://nobody@127.0.0.1:1/none").unwrap();
        let pool = crate::db::pool(&target, 1).unwrap();
        let log = EventLog::start(pool, true);
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let extra = 50_000;
        for n in 0..CHANNEL + BATCH + extra {
            log.record(
                Some("app"),
                "stripe",
                "webhook.rejected",
                "rejected",
                serde_json::json!({"n": n}),
            );
        }
        // Nothing was handed to a task of its own, and what the channel could not take is counted.
        let now = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert!(now <= tasks + 1, "{tasks} tasks before, {now} after");
        assert!(log.dropped() >= extra as u64, "{}", log.dropped());
    }
}
