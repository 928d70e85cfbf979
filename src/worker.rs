//! The worker pool of one daemon: claims sync tasks from Postgres and runs them, at most
//! `worker.concurrency` at once.
//!
//! Idle workers wake on `LISTEN supasaasy_tasks` (sent when a job is created or a task released) and
//! poll every `worker.poll_interval_ms` as a fallback, which also picks up tasks whose lease expired
//! because their daemon died. On shutdown the pool stops claiming, lets each running task checkpoint
//! the page in hand and release itself, and returns when all have.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::Context;
use crate::store::jobs::{self, TASKS_CHANNEL};
use crate::store::StoreError;
use crate::task::{self, TaskOutcome};

/// The workers of one process.
#[derive(Clone)]
pub struct Worker {
    ctx: Context,
    /// This process's name in `sync_tasks.lease_owner`.
    owner: Arc<str>,
    /// Woken when a task may be waiting.
    wake: Arc<Notify>,
    /// The apps this process serves: it claims only their tasks.
    app_keys: Arc<[String]>,
}

impl Worker {
    /// A worker pool for `ctx`'s apps.
    pub fn new(ctx: Context) -> Worker {
        let owner = format!(
            "{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let app_keys = ctx.config.apps.iter().map(|a| a.app_key.clone()).collect();
        Worker {
            ctx,
            app_keys,
            owner: owner.into(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Claims one task and runs it to its end (or until `cancel`, when it checkpoints and releases
    /// the task). Returns `None` when no task was waiting. Tests drive the queue with this.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached to claim.
    pub async fn try_execute_task(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<TaskOutcome>, StoreError> {
        let Some(task) = self.claim().await? else {
            return Ok(None);
        };
        Ok(Some(task::run(&self.ctx, task, cancel).await))
    }

    /// Claims a task of an app whose circuit lets requests through.
    async fn claim(&self) -> Result<Option<jobs::ClaimedTask>, StoreError> {
        let breakers = &self.ctx.ops.breakers;
        let app_keys: Vec<String> = self
            .app_keys
            .iter()
            .filter(|a| !breakers.is_blocked(a))
            .cloned()
            .collect();
        if app_keys.is_empty() {
            return Ok(None);
        }
        let client = self.ctx.pool.get().await?;
        jobs::claim_task(
            &**client,
            &self.owner,
            &app_keys,
            self.ctx.config.worker.lease.as_secs_f64(),
            self.ctx.ops.clock.now(),
        )
        .await
    }

    /// Runs the pool until `cancel`, then waits for running tasks to checkpoint and release.
    pub async fn run(self, cancel: CancellationToken) {
        let listener = tokio::spawn(listen(self.ctx.clone(), self.wake.clone(), cancel.clone()));
        let slots = Arc::new(Semaphore::new(self.ctx.config.worker.concurrency));
        let mut running = JoinSet::new();
        let poll = self.ctx.config.worker.poll_interval;
        let mut backoff = Duration::from_millis(250);
        loop {
            while running.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = cancel.cancelled() => break,
            };
            match self.claim().await {
                Ok(Some(task)) => {
                    backoff = Duration::from_millis(250);
                    let (ctx, cancel) = (self.ctx.clone(), cancel.clone());
                    running.spawn(async move {
                        task::run(&ctx, task, &cancel).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "cannot claim tasks; retrying in {backoff:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        while running.join_next().await.is_some() {}
        listener.abort();
    }
}

/// Keeps a `LISTEN` connection open and turns notifications into wake-ups; reconnects with backoff.
async fn listen(ctx: Context, wake: Arc<Notify>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    while !cancel.is_cancelled() {
        match listen_once(&ctx, &wake, &cancel).await {
            Ok(()) => backoff = Duration::from_millis(500),
            Err(e) => {
                tracing::debug!(error = %e, "task notifications unavailable; polling meanwhile")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn listen_once(
    ctx: &Context,
    wake: &Notify,
    cancel: &CancellationToken,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = ctx.config.database.target.connect_raw().await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {TASKS_CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            r = &mut listen, if !listening => { r?; listening = true; wake.notify_one(); }
            m = messages.next() => match m {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = cancel.cancelled() => return Ok(()),
        }
    }
}
