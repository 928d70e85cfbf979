//! Running one claimed sync task: page after page from the connector into the mirror.
//!
//! Each page commits with the task's next cursor in one fenced statement, so a task taken over after
//! a crash resumes at the page after the last committed one. The last page, the sweep of unseen rows
//! (full runs only), the task's end and its job's counters commit in one transaction. Retryable
//! provider errors are retried in place with backoff; when they persist the task goes back to the
//! queue (another attempt), and a fatal error fails it at once. A lost lease (job cancelled, or the
//! task taken over after our lease ran out) stops the task without another write.

use chrono::{DateTime, Utc};
use supasaasy_connector::{find_resource, Connector, EventWindow, ListOptions, Record, Resource};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{self, Action, Item};
use crate::config::{AlertKind, AppConfig, SyncMode};
use crate::context::Context;
use crate::ops::alerts::Alert;
use crate::store::entities::{self, PageWrite, Sweep};
use crate::store::jobs::{self, ClaimedTask, TaskEnd};
use crate::store::StoreError;

mod ranges;
pub(crate) mod support;

use support::{with_retries, CallError, ExclusiveRun, Heartbeat};

/// The events list is eventually consistent: a window ends this long before now.
const EVENTS_SETTLE_SECS: i64 = 60;
/// Stripe keeps events 30 days; an older cursor cannot be caught up from events.
const EVENTS_USABLE_DAYS: i64 = 29;

/// How a task run ended, for the caller and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Every page was written; the job status after it.
    Completed {
        /// The job's status after this task ended.
        job_status: String,
    },
    /// The task failed for good; the job status after it.
    Failed {
        /// Why.
        error: String,
        /// The job's status after this task ended.
        job_status: String,
    },
    /// Put back in the queue to be retried later.
    Retrying {
        /// Why.
        error: String,
    },
    /// Released at a page boundary because the daemon is stopping.
    Released,
    /// Put back in the queue unrun: another run of the same exclusive resource holds its lock.
    Deferred,
    /// Put back in the queue without spending an attempt: the app's circuit is open.
    CircuitOpen,
    /// The lease was lost (job cancelled, or taken over): nothing more was written.
    LostLease,
    /// The database failed under the task; its lease will expire and another worker resumes it.
    Interrupted {
        /// Why.
        error: String,
    },
}

/// Runs a claimed task until it ends, is released at `cancel`, or loses its lease.
pub async fn run(ctx: &Context, task: ClaimedTask, cancel: &CancellationToken) -> TaskOutcome {
    let span = tracing::info_span!("task", app = %task.app_key, resource = %task.resource_type, job = %task.job_id);
    run_logged(ctx, task, cancel).instrument(span).await
}

async fn run_logged(ctx: &Context, task: ClaimedTask, cancel: &CancellationToken) -> TaskOutcome {
    let outcome = match run_inner(ctx, &task, cancel).await {
        Ok(outcome) => outcome,
        Err(StoreError::LostLease) => TaskOutcome::LostLease,
        Err(e) => TaskOutcome::Interrupted {
            error: e.to_string(),
        },
    };
    match &outcome {
        TaskOutcome::Completed { .. } => tracing::info!("task completed"),
        TaskOutcome::Failed { error, .. } => tracing::warn!(%error, "task failed"),
        TaskOutcome::Retrying { error } => tracing::warn!(%error, "task will be retried"),
        TaskOutcome::Released => tracing::info!("task released at a page boundary"),
        TaskOutcome::Deferred => {
            tracing::info!("task deferred: another run of the resource holds its lock")
        }
        TaskOutcome::CircuitOpen => {
            tracing::info!("task waits: the app's circuit is open")
        }
        TaskOutcome::LostLease => {
            tracing::info!("task lease lost (cancelled or taken over); stopped")
        }
        TaskOutcome::Interrupted { error } => tracing::warn!(%error, "task interrupted"),
    }
    outcome
}

/// How a task walks its resource.
enum Plan {
    /// Every object of the listing, then (when `sweep`) tombstone the rows not seen.
    Listing,
    /// The provider's events in a window, applied through the webhook path.
    Events(EventWindow),
}

async fn run_inner(
    ctx: &Context,
    task: &ClaimedTask,
    cancel: &CancellationToken,
) -> Result<TaskOutcome, StoreError> {
    let max_attempts = ctx.config.worker.max_attempts;
    let Some((app, connector)) = ctx.app(&task.app_key) else {
        return fail(ctx, task, format!("app {} is not configured", task.app_key)).await;
    };
    let Some(resource) = find_resource(connector.as_ref(), &task.resource_type) else {
        return fail(
            ctx,
            task,
            format!("{} has no resource {}", app.connector, task.resource_type),
        )
        .await;
    };
    if task.attempts > max_attempts {
        return fail(ctx, task, format!("gave up after {max_attempts} attempts")).await;
    }
    let heartbeat = Heartbeat::start(ctx, task, ctx.config.worker.lease);
    let run = Run {
        ctx,
        task,
        app,
        connector: connector.as_ref(),
        resource,
        cancel,
        lost: &heartbeat.lost,
    };
    // A resource the provider lets one client walk at a time (one open scroll per account) runs
    // under a lock held for the whole run, across every daemon sharing the database.
    let exclusive = if resource.exclusive {
        match ExclusiveRun::try_take(ctx, task).await? {
            Some(lock) => Some(lock),
            None => {
                let client = ctx.pool.get().await?;
                let delay = ctx.config.worker.retry_base.as_secs_f64() * 20.0;
                jobs::release_task(&**client, task, delay, None, false).await?;
                return Ok(TaskOutcome::Deferred);
            }
        }
    } else {
        None
    };
    let outcome = match plan(ctx, task, resource).await {
        Ok(Plan::Listing) => run.listing().await,
        Ok(Plan::Events(window)) => run.events(window).await,
        Err(e) => Err(e),
    };
    if let Some(lock) = exclusive {
        lock.release().await;
    }
    outcome
}

/// Decides, at an incremental task's first claim, whether it reads events or must run a full sync
/// (no cursor yet, or one older than the provider keeps events), and records the decision.
async fn plan(ctx: &Context, task: &ClaimedTask, resource: Resource) -> Result<Plan, StoreError> {
    // Resources without incremental sync take a full pass (with its sweep) every time.
    if task.mode == SyncMode::Full || task.note.is_some() || !resource.incremental {
        return Ok(Plan::Listing);
    }
    let client = ctx.pool.get().await?;
    let start = jobs::incremental_cursor(&**client, &task.app_key, &task.resource_type).await?;
    if let Some(end) = task.window_end {
        let start = start.map(|s| s.timestamp()).unwrap_or(0);
        return Ok(Plan::Events(EventWindow {
            created_gt: start.min(end.timestamp()),
            created_lte: end.timestamp(),
        }));
    }
    let now = Utc::now();
    let note = match start {
        None => Some("no incremental cursor yet: ran a full sync"),
        Some(t) if now - t > chrono::Duration::days(EVENTS_USABLE_DAYS) => {
            Some("incremental cursor older than 29 days (events are kept 30): ran a full sync")
        }
        Some(_) => None,
    };
    // The events list is eventually consistent: read only up to a minute ago.
    let end = now - chrono::Duration::seconds(EVENTS_SETTLE_SECS);
    let window_end = note.is_none().then_some(end);
    jobs::plan_incremental(&**client, task, window_end, note).await?;
    Ok(match (note, start) {
        (None, Some(start)) => {
            tracing::info!(from = %start, to = %end, "incremental sync from events");
            Plan::Events(EventWindow {
                created_gt: start.timestamp().min(end.timestamp()),
                created_lte: end.timestamp(),
            })
        }
        _ => {
            tracing::info!(
                note = note.unwrap_or_default(),
                "incremental sync runs as a full sync"
            );
            Plan::Listing
        }
    })
}

/// One run of a claimed task.
struct Run<'a> {
    ctx: &'a Context,
    task: &'a ClaimedTask,
    app: &'a AppConfig,
    connector: &'a dyn Connector,
    resource: Resource,
    cancel: &'a CancellationToken,
    /// Fires when the heartbeat finds the lease lost.
    lost: &'a CancellationToken,
}

impl Run<'_> {
    /// Between pages: stop when the lease is lost; release the task when the daemon is stopping.
    async fn checkpoint(&self) -> Result<Option<TaskOutcome>, StoreError> {
        if self.lost.is_cancelled() {
            return Err(StoreError::LostLease);
        }
        if self.cancel.is_cancelled() {
            let client = self.ctx.pool.get().await?;
            jobs::release_task(&**client, self.task, 0.0, None, false).await?;
            return Ok(Some(TaskOutcome::Released));
        }
        Ok(None)
    }

    /// A provider call that did not succeed. An open circuit puts the task back without spending
    /// an attempt; an error that in-place retries did not cure puts it back while attempts remain
    /// and the error may pass, else the task fails.
    async fn provider_failed(&self, e: CallError) -> Result<TaskOutcome, StoreError> {
        let e = match e {
            CallError::Provider(e) => e,
            CallError::CircuitOpen(wait) => {
                let client = self.ctx.pool.get().await?;
                let note = "waiting: the app's circuit is open";
                jobs::release_task(&**client, self.task, wait.as_secs_f64(), Some(note), false)
                    .await?;
                return Ok(TaskOutcome::CircuitOpen);
            }
        };
        let error = e.to_string();
        if e.is_retryable() && self.task.attempts < self.ctx.config.worker.max_attempts {
            let base = self.ctx.config.worker.retry_base.as_secs_f64() * 20.0;
            let delay = base * 2f64.powi(self.task.attempts - 1);
            let client = self.ctx.pool.get().await?;
            jobs::release_task(&**client, self.task, delay, Some(&error), true).await?;
            return Ok(TaskOutcome::Retrying { error });
        }
        fail(self.ctx, self.task, error).await
    }

    fn page_write<'b>(
        &'b self,
        records: &'b [Record],
        count: usize,
        next: Option<&'b str>,
        fetched_at: DateTime<Utc>,
        requests: u32,
    ) -> PageWrite<'b> {
        PageWrite {
            task_id: self.task.id,
            lease_id: self.task.lease_id,
            job_id: self.task.job_id,
            app_key: &self.task.app_key,
            api_version: self.connector.api_version(),
            records,
            count,
            next_cursor: next,
            fetched_at,
            requests,
            lease_secs: self.ctx.config.worker.lease.as_secs_f64(),
        }
    }

    /// Walks the resource's listing; the last page sweeps the rows not seen. A splittable
    /// resource walks `created` ranges at once (see [`ranges`]), unless the task resumes a
    /// sequential run's provider cursor.
    async fn listing(&self) -> Result<TaskOutcome, StoreError> {
        if self.resource.splittable {
            let resume = match self.task.cursor.as_deref().map(ranges::decode) {
                None => Some(None),
                Some(Some(Ok(state))) if state.iter().any(|r| !r.done) => Some(Some(state)),
                Some(Some(Ok(_))) => Some(None),
                Some(Some(Err(e))) => {
                    tracing::warn!(error = %e, "unreadable range state: the listing starts over");
                    Some(None)
                }
                Some(None) => None,
            };
            if let Some(resume) = resume {
                if let Some(outcome) = self.checkpoint().await? {
                    return Ok(outcome);
                }
                return self.ranged_listing(resume).await;
            }
        }
        let options = &ListOptions {
            created_gte: self.app.sync_from.map(|t| t.timestamp()),
            created_lt: None,
        };
        let fetch = |cursor: Option<String>| async move {
            let fetched_at = Utc::now();
            let call = || {
                self.connector
                    .list_page(&self.task.resource_type, cursor.as_deref(), options)
            };
            let page = with_retries(self.ctx, &self.task.app_key, self.cancel, call).await;
            page.map(|p| (p, fetched_at))
        };
        let mut run_started_at = self.task.run_started_at;
        if let Some(outcome) = self.checkpoint().await? {
            return Ok(outcome);
        }
        let mut next = fetch(self.task.cursor.clone()).await;
        loop {
            let (page, fetched_at) = match next {
                Ok(fetched) => fetched,
                Err(e) => return self.provider_failed(e).await,
            };
            let started = *run_started_at.get_or_insert(fetched_at);
            let write = self.page_write(
                &page.records,
                page.records.len(),
                page.next_cursor.as_deref(),
                fetched_at,
                page.requests,
            );
            let Some(cursor) = page.next_cursor.clone() else {
                // Events from a minute before the listing began on are what an incremental run
                // reads next.
                let events_from = started - chrono::Duration::seconds(EVENTS_SETTLE_SECS);
                return self.finish(&write, true, started, events_from).await;
            };
            // The next page is fetched while this one is written; if the run stops here, the
            // next owner fetches it again (with the page in hand, at most two pages twice).
            let commit = async {
                let client = self.ctx.pool.get().await?;
                entities::commit_page(&client, &write).await?;
                self.written(page.records.len());
                Ok::<_, StoreError>(())
            };
            let (committed, fetched) = tokio::join!(commit, fetch(Some(cursor)));
            committed?;
            next = fetched;
            if let Some(outcome) = self.checkpoint().await? {
                return Ok(outcome);
            }
        }
    }

    /// Reads the events of the window page by page and applies them through the webhook path;
    /// the incremental cursor moves to the window's end only when the whole window is applied.
    async fn events(&self, window: EventWindow) -> Result<TaskOutcome, StoreError> {
        let mut cursor = self.task.cursor.clone();
        let mut run_started_at = self.task.run_started_at;
        loop {
            if let Some(outcome) = self.checkpoint().await? {
                return Ok(outcome);
            }
            let fetched_at = Utc::now();
            let fetch = || {
                self.connector
                    .list_events(&self.task.resource_type, cursor.as_deref(), &window)
            };
            let page = match with_retries(self.ctx, &self.task.app_key, self.cancel, fetch).await {
                Ok(page) => page,
                Err(e) => return self.provider_failed(e).await,
            };
            let started = *run_started_at.get_or_insert(fetched_at);
            // The page's events are applied together, in one transaction.
            let items: Vec<Item> = page
                .events
                .iter()
                .map(|event| Item {
                    app_key: &self.task.app_key,
                    connector: self.connector,
                    event,
                    source: "events_api",
                })
                .collect();
            let outcomes = apply::apply_in_transaction(&self.ctx.pool, &items).await?;
            let mut applied = 0;
            for outcome in outcomes {
                match outcome {
                    Ok(Action::Applied) => applied += 1,
                    Ok(_) => {}
                    Err(e) => return self.provider_failed(CallError::Provider(e)).await,
                }
            }
            let write = self.page_write(
                &[],
                applied,
                page.next_cursor.as_deref(),
                fetched_at,
                page.requests,
            );
            if page.next_cursor.is_some() {
                let client = self.ctx.pool.get().await?;
                entities::commit_page(&client, &write).await?;
                cursor = page.next_cursor;
                continue;
            }
            let until = DateTime::from_timestamp(window.created_lte, 0).unwrap_or(started);
            return self.finish(&write, false, started, until).await;
        }
    }

    /// Commits the run's last page and, in the same transaction, sweeps what a full run did not
    /// see, records the run, moves the incremental cursor to `events_until`, and ends the task.
    async fn finish(
        &self,
        write: &PageWrite<'_>,
        full: bool,
        started: DateTime<Utc>,
        events_until: DateTime<Utc>,
    ) -> Result<TaskOutcome, StoreError> {
        let mut client = self.ctx.pool.get().await?;
        let tx = client.transaction().await?;
        entities::commit_page(&tx, write).await?;
        if full {
            let keys: Vec<&str> = self.resource.collection_keys().collect();
            let sweep = sweep_of(self.app, self.task, &keys, started);
            let swept = entities::sweep_unseen(&*tx, &sweep).await?;
            if swept > 0 {
                tracing::info!(swept, "tombstoned rows the full run did not see");
            }
        }
        let version = self.connector.api_version();
        jobs::record_complete_run(&*tx, self.task, full, started, events_until, version).await?;
        let end = jobs::finish_task(&*tx, self.task, None).await?;
        tx.commit().await?;
        self.written(write.records.len());
        job_ended(self.ctx, &end);
        Ok(TaskOutcome::Completed {
            job_status: end.job_status,
        })
    }

    fn written(&self, n: usize) {
        if n > 0 {
            let metrics = &self.ctx.ops.metrics;
            metrics.objects_written(&self.task.app_key, &self.task.resource_type, n as u64);
        }
    }
}

fn sweep_of<'a>(
    app: &'a AppConfig,
    task: &ClaimedTask,
    keys: &'a [&'a str],
    run_started_at: DateTime<Utc>,
) -> Sweep<'a> {
    Sweep {
        app_key: &app.app_key,
        collection_keys: keys,
        job_id: task.job_id,
        run_started_at,
        created_from: app.sync_from,
    }
}

async fn fail(ctx: &Context, task: &ClaimedTask, error: String) -> Result<TaskOutcome, StoreError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let end = jobs::finish_task(&*tx, task, Some(&error)).await?;
    tx.commit().await?;
    job_ended(ctx, &end);
    Ok(TaskOutcome::Failed {
        error,
        job_status: end.job_status,
    })
}

/// When `task` ended its job: the job's duration metric, and an alert when it failed.
fn job_ended(ctx: &Context, end: &TaskEnd) {
    let Some(job) = &end.job_ended else { return };
    let ops = &ctx.ops;
    ops.metrics
        .job_ended(&job.app_key, &job.mode, &job.status, job.duration_secs);
    if job.status == "failed" {
        let error = job.error_message.as_deref().unwrap_or("unknown error");
        ops.alerts.raise(Alert {
            kind: AlertKind::JobFailed,
            app_key: job.app_key.clone(),
            title: format!("supasaasy: sync failed for {}", job.app_key),
            message: format!(
                "The {} sync job {} of app {} failed (resource: error): {error}",
                job.mode, job.job_id, job.app_key
            ),
        });
    }
}
