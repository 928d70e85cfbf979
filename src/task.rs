//! Running one claimed sync task: page after page from the connector into the mirror.
//!
//! Each page commits with the task's next cursor in one fenced statement, so a task taken over after
//! a crash resumes at the page after the last committed one. The last page, the sweep of unseen rows
//! (full runs only), the task's end and its job's counters commit in one transaction. Retryable
//! provider errors are retried in place with backoff; when they persist the task goes back to the
//! queue (another attempt), and a fatal error fails it at once. A lost lease (job cancelled, or the
//! task taken over after our lease ran out) stops the task without another write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use supasaasy_connector::{find_resource, Connector, ConnectorError, ListOptions, Page};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{AppConfig, SyncMode};
use crate::context::Context;
use crate::store::entities::{self, PageWrite, Sweep};
use crate::store::jobs::{self, ClaimedTask};
use crate::store::StoreError;

/// Provider calls retried in place before the task is handed back to the queue.
const IN_PLACE_RETRIES: u32 = 4;

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
        TaskOutcome::LostLease => {
            tracing::info!("task lease lost (cancelled or taken over); stopped")
        }
        TaskOutcome::Interrupted { error } => tracing::warn!(%error, "task interrupted"),
    }
    outcome
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
    let options = ListOptions {
        created_gte: app.sync_from.map(|t| t.timestamp()),
    };
    let lease = ctx.config.worker.lease;
    let heartbeat = Heartbeat::start(ctx, task, lease);
    let mut cursor = task.cursor.clone();
    let mut run_started_at = task.run_started_at;
    loop {
        if heartbeat.lost.is_cancelled() {
            return Err(StoreError::LostLease);
        }
        if cancel.is_cancelled() {
            let client = ctx.pool.get().await?;
            jobs::release_task(&**client, task, 0.0, None, false).await?;
            return Ok(TaskOutcome::Released);
        }
        let fetched_at = Utc::now();
        let page = match fetch(
            connector.as_ref(),
            &task.resource_type,
            cursor.as_deref(),
            &options,
            cancel,
        )
        .await
        {
            Ok(page) => page,
            Err(e) if e.is_retryable() && task.attempts < max_attempts => {
                let error = e.to_string();
                let delay = 2f64.powi(task.attempts) * 5.0;
                let client = ctx.pool.get().await?;
                jobs::release_task(&**client, task, delay, Some(&error), true).await?;
                return Ok(TaskOutcome::Retrying { error });
            }
            Err(e) => return fail(ctx, task, e.to_string()).await,
        };
        let started = *run_started_at.get_or_insert(fetched_at);
        let write = PageWrite {
            task_id: task.id,
            lease_id: task.lease_id,
            job_id: task.job_id,
            app_key: &task.app_key,
            api_version: connector.api_version(),
            records: &page.records,
            next_cursor: page.next_cursor.as_deref(),
            fetched_at,
            requests: page.requests,
            lease_secs: lease.as_secs_f64(),
        };
        let mut client = ctx.pool.get().await?;
        if page.next_cursor.is_some() {
            entities::commit_page(&**client, &write).await?;
            cursor = page.next_cursor;
            continue;
        }
        // The last page: write it, sweep, and end the task in one transaction.
        let tx = client.transaction().await?;
        entities::commit_page(&*tx, &write).await?;
        if task.mode == SyncMode::Full {
            let keys: Vec<&str> = resource.collection_keys().collect();
            let swept = entities::sweep_unseen(&*tx, &sweep_of(app, task, &keys, started)).await?;
            if swept > 0 {
                tracing::info!(swept, "tombstoned rows the full run did not see");
            }
        }
        jobs::record_complete_run(&*tx, task, started, connector.api_version()).await?;
        let job_status = jobs::finish_task(&*tx, task, None).await?;
        tx.commit().await?;
        return Ok(TaskOutcome::Completed { job_status });
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
    let client = ctx.pool.get().await?;
    let job_status = jobs::finish_task(&**client, task, Some(&error)).await?;
    Ok(TaskOutcome::Failed { error, job_status })
}

/// Fetches a page, retrying retryable errors in place with exponential backoff and jitter, and
/// honouring a rate limit's delay.
async fn fetch(
    connector: &dyn Connector,
    resource: &str,
    cursor: Option<&str>,
    options: &ListOptions,
    cancel: &CancellationToken,
) -> Result<Page, ConnectorError> {
    let mut attempt = 0;
    loop {
        match connector.list_page(resource, cursor, options).await {
            Ok(page) => return Ok(page),
            Err(e) if e.is_retryable() && attempt < IN_PLACE_RETRIES && !cancel.is_cancelled() => {
                let base = Duration::from_millis(250 * 2u64.pow(attempt));
                let delay = match &e {
                    ConnectorError::RateLimited {
                        retry_after: Some(d),
                        ..
                    } => (*d).max(base),
                    _ => base,
                } + jitter(base / 2);
                tracing::debug!(error = %e, ?delay, "provider call failed; retrying");
                attempt += 1;
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn jitter(max: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    max * r / 1000
}

/// Renews a task's lease in the background while the task runs; `lost` fires when it cannot.
struct Heartbeat {
    lost: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    fn start(ctx: &Context, task: &ClaimedTask, lease: Duration) -> Heartbeat {
        let lost = CancellationToken::new();
        let (ctx, task, flag) = (ctx.clone(), task.clone(), lost.clone());
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let Ok(client) = ctx.pool.get().await else {
                    continue;
                };
                match jobs::heartbeat(&**client, &task, lease.as_secs_f64()).await {
                    Ok(()) => {}
                    Err(StoreError::LostLease) => {
                        flag.cancel();
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "lease heartbeat failed"),
                }
            }
        });
        Heartbeat { lost, handle }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
