//! Group commit of webhook deliveries: concurrent deliveries are applied together, a batch per
//! transaction, so a burst costs the database a few statements per batch instead of several per
//! event.
//!
//! A delivery is handed to a channel. A few lanes take turns at the database: when one is free,
//! the first delivery waiting and every other one already queued (never waiting for more: an idle
//! daemon applies a lone delivery at once) make a batch, applied with
//! [`super::apply_taking_turns`] in one transaction; each delivery is answered only after the
//! commit, so nothing is acknowledged before it is durably written. While one lane commits, the
//! next gathers the deliveries that arrive meanwhile. A batch that must ask the provider for an
//! object (a same-second conflict, a truncated item list) gives its lane up while it waits, so a
//! slow provider holds up no other app's deliveries.
//!
//! A batch that fails as a whole is not allowed to sink its neighbours: after a deadlock or
//! serialization failure it is tried again, and after any other database error each delivery is
//! tried alone, so a delivery the database refuses fails only itself (a value it refuses
//! quarantines the delivery's objects: [`super::apply_alone`]). A batch that panics answers its
//! own deliveries 503 and the lanes go on.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;
use futures_util::FutureExt;
use supasaasy_connector::{Connector, Event};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{apply_alone, apply_taking_turns, Action, ApplyError, Item, Outcome, Scope, Turn};
use crate::ops::breaker::Breakers;
use crate::ops::Stopping;
use crate::store::StoreError;

/// Deliveries waiting for a lane before submitters wait for room.
const QUEUE: usize = 4_096;
/// Deliveries applied in one transaction at most.
const MAX_BATCH: usize = 256;
/// Times a batch is tried again after a deadlock or serialization failure.
const CONFLICT_RETRIES: usize = 3;

/// One delivery waiting to be applied.
struct Delivery {
    app_key: String,
    own: String,
    connected: Option<String>,
    connector: Arc<dyn Connector>,
    event: Event,
    /// Taken when the delivery is answered.
    reply: Option<oneshot::Sender<Result<Action, ApplyError>>>,
}

/// A handle on the lanes; cheap to clone. The lanes end when every handle is dropped, after
/// applying what is queued.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Delivery>,
    total: usize,
    counts: Arc<Counts>,
}

/// What the lanes count, shared with the batches.
#[derive(Default)]
struct Counts {
    /// Batches begun and not ended.
    batches: AtomicUsize,
    /// Batches that panicked.
    panics: AtomicU64,
}

/// A batch in progress, counted until it ends (or unwinds).
struct InProgress(Arc<Counts>);

impl InProgress {
    fn begin(counts: &Arc<Counts>) -> InProgress {
        counts.batches.fetch_add(1, Ordering::Relaxed);
        InProgress(counts.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.batches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the lanes are doing, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanesState {
    /// Lanes in all.
    pub lanes: usize,
    /// Batches being applied now, those waiting for the provider (which have given their lane
    /// up meanwhile) included.
    pub batches: usize,
    /// Deliveries waiting for a lane.
    pub queued: usize,
    /// Batches that panicked since the daemon started (their deliveries answered 503; the lanes
    /// went on).
    pub panics: u64,
}

impl GroupCommit {
    /// Starts `lanes` lanes (at least one) applying deliveries on `pool`. Must be called inside a
    /// Tokio runtime.
    pub fn start(pool: Pool, lanes: usize, breakers: Breakers, stopping: Stopping) -> GroupCommit {
        let (tx, rx) = mpsc::channel(QUEUE);
        let total = lanes.max(1);
        let lanes = Arc::new(Semaphore::new(total));
        let counts = Arc::new(Counts::default());
        let gathering = gather(pool, rx, lanes, breakers, counts.clone(), stopping.clone());
        stopping.spawn(gathering);
        GroupCommit { tx, total, counts }
    }

    /// What the lanes are doing now.
    pub fn state(&self) -> LanesState {
        LanesState {
            lanes: self.total,
            batches: self.counts.batches.load(Ordering::Relaxed),
            queued: self.queued(),
            panics: self.counts.panics.load(Ordering::Relaxed),
        }
    }

    /// Deliveries waiting for a lane.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Applies a webhook's event of `app_key` together with whatever else is being delivered, and
    /// answers once its batch is committed. `scope` says whose rows its changes are.
    ///
    /// # Errors
    ///
    /// An [`ApplyError`]: nothing of the event was written then.
    pub async fn apply(
        &self,
        app_key: &str,
        scope: Scope<'_>,
        connector: Arc<dyn Connector>,
        event: Event,
    ) -> Result<Action, ApplyError> {
        let (reply, answer) = oneshot::channel();
        let delivery = Delivery {
            app_key: app_key.to_string(),
            own: scope.own.to_owned(),
            connected: scope.connected.map(str::to_owned),
            connector,
            event,
            reply: Some(reply),
        };
        if self.tx.send(delivery).await.is_err() {
            return Err(ApplyError::Unavailable("the daemon is stopping".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApplyError::Unavailable("the daemon is stopping".into())))
    }
}

/// Takes turns at the lanes: once a lane is free, the first delivery waiting and every other
/// one already queued make a batch, applied in a task of its own holding the lane's turn.
async fn gather(
    pool: Pool,
    mut rx: mpsc::Receiver<Delivery>,
    lanes: Arc<Semaphore>,
    breakers: Breakers,
    counts: Arc<Counts>,
    stopping: Stopping,
) {
    let mut stop = false;
    loop {
        let permit = lanes.clone().acquire_owned().await;
        let permit = permit.expect("the lanes are never closed");
        // Once the daemon stops (its listener has answered everything) what is queued is
        // applied, and the lanes end.
        let first = if stop {
            rx.try_recv().ok()
        } else {
            tokio::select! {
                first = rx.recv() => first,
                () = stopping.requested() => {
                    stop = true;
                    rx.try_recv().ok()
                }
            }
        };
        let Some(first) = first else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let turn = Turn::new(lanes.clone(), permit);
        let (pool, breakers, counts) = (pool.clone(), breakers.clone(), counts.clone());
        let in_progress = InProgress::begin(&counts);
        stopping.spawn(async move {
            let _in_progress = in_progress;
            // A batch that panics fails its own deliveries (their answers are dropped: 503) and
            // never takes the lanes with it.
            let applied = AssertUnwindSafe(apply_batch(&pool, batch, &breakers, turn))
                .catch_unwind()
                .await;
            if let Err(panic) = applied {
                counts.panics.fetch_add(1, Ordering::Relaxed);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "a webhook batch panicked; its deliveries answer 503 and the lanes go on");
            }
        });
    }
}

/// Applies a batch and answers every delivery in it, each as soon as its transaction commits
/// (an event waiting for the provider does not hold up the others).
async fn apply_batch(pool: &Pool, mut batch: Vec<Delivery>, breakers: &Breakers, mut turn: Turn) {
    type Reply = oneshot::Sender<Result<Action, ApplyError>>;
    let mut replies: Vec<Option<Reply>> = batch.iter_mut().map(|d| d.reply.take()).collect();
    let items: Vec<Item> = batch.iter().map(|d| item(d, breakers)).collect();
    let mut tries = 0;
    let result = loop {
        let answer = |i: usize, outcome: &Outcome| {
            if let Some(reply) = replies[i].take() {
                let _ = reply.send(to_reply(Some(outcome.clone())));
            }
        };
        match apply_taking_turns(pool, &items, Some(&mut turn), answer).await {
            Err(e) if is_conflict(&e) && tries < CONFLICT_RETRIES => tries += 1,
            other => break other,
        }
    };
    drop(items);
    // Every delivery not answered yet failed with the batch.
    let unanswered: Vec<(Delivery, Reply)> = batch
        .into_iter()
        .zip(replies)
        .filter_map(|(d, r)| r.map(|r| (d, r)))
        .collect();
    match result {
        Ok(()) => {}
        Err(e)
            if (unanswered.len() > 1 || e.is_refused_value())
                && !matches!(e, StoreError::Pool(_)) =>
        {
            tracing::warn!(error = %e, deliveries = unanswered.len(), "a webhook batch failed; applying its deliveries one by one");
            for (delivery, reply) in unanswered {
                let answer = match apply_alone(pool, &item(&delivery, breakers)).await {
                    Ok(outcome) => to_reply(Some(outcome)),
                    Err(e) => Err(ApplyError::Store(e)),
                };
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            let message = e.to_string();
            for (_, reply) in unanswered {
                let _ = reply.send(Err(ApplyError::Unavailable(message.clone())));
            }
        }
    }
}

fn item<'a>(d: &'a Delivery, breakers: &'a Breakers) -> Item<'a> {
    Item {
        app_key: &d.app_key,
        scope: Scope {
            own: &d.own,
            connected: d.connected.as_deref(),
        },
        connector: d.connector.as_ref(),
        event: &d.event,
        source: "webhook",
        run: None,
        breakers: Some(breakers),
    }
}

fn to_reply(outcome: Option<Outcome>) -> Result<Action, ApplyError> {
    match outcome {
        Some(outcome) => Ok(outcome?),
        None => Err(ApplyError::Unavailable("no outcome for the event".into())),
    }
}

/// A deadlock or serialization failure: the same batch may well succeed when tried again.
fn is_conflict(e: &StoreError) -> bool {
    let StoreError::Db(e) = e else {
        return false;
    };
    e.code().is_some_and(|c| {
        *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
    })
}
