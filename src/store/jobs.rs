//! The sync queue: `supasaasy.sync_jobs` and `supasaasy.sync_tasks`.
//!
//! A job is created with one task per resource in one transaction. Workers of any daemon sharing
//! the database claim tasks with `FOR UPDATE SKIP LOCKED`; a claim hands out a fresh lease id and
//! every later write of that worker is fenced by it (zero rows updated means the lease is lost:
//! stop). A task whose lease expired is claimable again, and resumes at its saved cursor. Job
//! counters move in the same transaction as the task that moves them, and the job ends when its
//! last task ends.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::integration_events::{self, EndedJob};
use super::StoreError;
use crate::config::SyncMode;

/// The channel workers `LISTEN` on for new or released tasks.
pub const TASKS_CHANNEL: &str = "supasaasy_tasks";

/// A new job, as the API or CLI asks for it.
pub struct NewJob<'a> {
    /// The app to sync.
    pub app_key: &'a str,
    /// Full or incremental.
    pub mode: SyncMode,
    /// One task per resource, in this order.
    pub resource_types: &'a [String],
    /// Who asked: `api`, `cli`, `schedule`.
    pub trigger: &'a str,
}

/// Creates a job and its tasks and wakes the workers. Call in a transaction: the job and its tasks
/// appear together or not at all.
///
/// # Errors
///
/// A database error.
pub async fn create_job(client: &impl GenericClient, job: &NewJob<'_>) -> Result<Uuid, StoreError> {
    let row = client
        .query_one(
            "INSERT INTO supasaasy.sync_jobs (app_key, mode, resource_types, trigger, total_tasks)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &job.app_key,
                &job.mode.as_str(),
                &job.resource_types,
                &job.trigger,
                &(job.resource_types.len() as i32),
            ],
        )
        .await?;
    let id: Uuid = row.get(0);
    client
        .execute(
            "INSERT INTO supasaasy.sync_tasks (job_id, app_key, resource_type, mode)
             SELECT $1, $2, r, $3 FROM unnest($4::text[]) AS r",
            &[&id, &job.app_key, &job.mode.as_str(), &job.resource_types],
        )
        .await?;
    client
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&TASKS_CHANNEL, &id.to_string()],
        )
        .await?;
    Ok(id)
}

/// A task this worker holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    /// The task.
    pub id: Uuid,
    /// Its job.
    pub job_id: Uuid,
    /// The app it syncs.
    pub app_key: String,
    /// The resource it syncs.
    pub resource_type: String,
    /// The connected account it syncs (Stripe Connect); `''` for the app's own.
    pub account_id: String,
    /// Full or incremental.
    pub mode: SyncMode,
    /// Where to resume; `None` starts at the first page.
    pub cursor: Option<String>,
    /// Fences every write of this claim.
    pub lease_id: Uuid,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// When the run's first page was fetched, if one was.
    pub run_started_at: Option<DateTime<Utc>>,
    /// An incremental task's events window end, fixed when it first ran.
    pub window_end: Option<DateTime<Utc>>,
    /// Set when an incremental task ran a full sync instead, saying why.
    pub note: Option<String>,
}

impl ClaimedTask {
    /// The task's resource, and its connected account if it has one (`charge@acct_...`): how
    /// errors and notes name it.
    pub fn label(&self) -> String {
        if self.account_id.is_empty() {
            self.resource_type.clone()
        } else {
            format!("{}@{}", self.resource_type, self.account_id)
        }
    }
}

/// Claims the oldest runnable task of one of `app_keys`: pending and due by `now` (the
/// process's clock), or processing with a lease expired by then (its worker died). Marks its job as
/// processing.
///
/// # Errors
///
/// A database error.
pub async fn claim_task(
    client: &impl GenericClient,
    owner: &str,
    app_keys: &[String],
    lease_secs: f64,
    now: DateTime<Utc>,
) -> Result<Option<ClaimedTask>, StoreError> {
    let row = client
        .query_opt(
            "WITH next AS (
                SELECT id FROM supasaasy.sync_tasks
                 WHERE app_key = ANY($1)
                   AND ((status = 'pending' AND run_after <= $4)
                        OR (status = 'processing' AND lease_expires_at < $4))
                 ORDER BY created_at, id
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED
             ),
             claimed AS (
                UPDATE supasaasy.sync_tasks t
                   SET status = 'processing', lease_id = gen_random_uuid(), lease_owner = $2,
                       lease_expires_at = now() + make_interval(secs => $3),
                       attempts = t.attempts + 1, started_at = COALESCE(t.started_at, now()),
                       updated_at = now()
                  FROM next WHERE t.id = next.id
             RETURNING t.id, t.job_id, t.app_key, t.resource_type, t.account_id, t.mode, t.cursor, t.lease_id,
                       t.attempts, t.run_started_at, t.window_end, t.note
             ),
             job AS (
                UPDATE supasaasy.sync_jobs SET status = 'processing', started_at = COALESCE(started_at, now())
                 WHERE id = (SELECT job_id FROM claimed) AND status = 'pending'
             RETURNING id, app_key, mode, trigger, resource_types
             ),
             started AS (
                INSERT INTO supasaasy.integration_events (app_key, service, event_type, outcome, detail)
                SELECT app_key, 'supasaasy', 'sync.started', 'started',
                       jsonb_build_object('job_id', id, 'mode', mode, 'trigger', trigger,
                                          'resource_types', resource_types)
                  FROM job
             )
             SELECT * FROM claimed",
            &[&app_keys, &owner, &lease_secs, &now],
        )
        .await?;
    Ok(row.map(|r| ClaimedTask {
        id: r.get("id"),
        job_id: r.get("job_id"),
        app_key: r.get("app_key"),
        resource_type: r.get("resource_type"),
        account_id: r.get("account_id"),
        mode: if r.get::<_, &str>("mode") == "full" {
            SyncMode::Full
        } else {
            SyncMode::Incremental
        },
        cursor: r.get("cursor"),
        lease_id: r.get("lease_id"),
        attempts: r.get("attempts"),
        run_started_at: r.get("run_started_at"),
        window_end: r.get("window_end"),
        note: r.get("note"),
    }))
}

/// Extends a task's lease.
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours.
pub async fn heartbeat(
    client: &impl GenericClient,
    task: &ClaimedTask,
    lease_secs: f64,
) -> Result<(), StoreError> {
    let n = client
        .execute(
            "UPDATE supasaasy.sync_tasks SET lease_expires_at = now() + make_interval(secs => $3)
              WHERE id = $1 AND lease_id = $2 AND status = 'processing'",
            &[&task.id, &task.lease_id, &lease_secs],
        )
        .await?;
    fenced(n)
}

fn fenced(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::LostLease)
    } else {
        Ok(())
    }
}

/// What ending a task did to its job.
#[derive(Debug, Clone)]
pub struct TaskEnd {
    /// The job's status after the task ended.
    pub job_status: String,
    /// Set when this task was the job's last: the job's end, as recorded in the events log.
    pub job_ended: Option<EndedJob>,
}

/// Ends a task as completed or failed and moves its job's counters; the job ends with its last task,
/// and its end is recorded in the integration events log. Call in a transaction.
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours; a database error.
pub async fn finish_task(
    client: &impl GenericClient,
    task: &ClaimedTask,
    error: Option<&str>,
) -> Result<TaskEnd, StoreError> {
    let status = if error.is_some() {
        "failed"
    } else {
        "completed"
    };
    end_task(client, task, status, error, None).await
}

/// Ends a task unrun, as `cancelled` with `note` (its connected account took the app's access
/// away); it counts as done for its job, which goes on. Call in a transaction.
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours; a database error.
pub async fn skip_task(
    client: &impl GenericClient,
    task: &ClaimedTask,
    note: &str,
) -> Result<TaskEnd, StoreError> {
    end_task(client, task, "cancelled", None, Some(note)).await
}

async fn end_task(
    client: &impl GenericClient,
    task: &ClaimedTask,
    status: &str,
    error: Option<&str>,
    note: Option<&str>,
) -> Result<TaskEnd, StoreError> {
    let n = client
        .execute(
            "UPDATE supasaasy.sync_tasks
                SET status = $3, error_message = $4, completed_at = now(), updated_at = now(),
                    lease_id = NULL, lease_expires_at = NULL, note = COALESCE($5, note)
              WHERE id = $1 AND lease_id = $2 AND status = 'processing'",
            &[&task.id, &task.lease_id, &status, &error, &note],
        )
        .await?;
    fenced(n)?;
    let (done, failed) = if error.is_some() { (0, 1) } else { (1, 0) };
    let job_error = error.map(|e| format!("{}: {e}", task.label()));
    let row = client
        .query_one(
            "UPDATE supasaasy.sync_jobs
                SET completed_tasks = completed_tasks + $2,
                    failed_tasks = failed_tasks + $3,
                    error_message = COALESCE(error_message, $4),
                    status = CASE
                        WHEN status IN ('completed', 'failed', 'cancelled') THEN status
                        WHEN completed_tasks + $2 + failed_tasks + $3 >= total_tasks
                            THEN CASE WHEN failed_tasks + $3 > 0 THEN 'failed' ELSE 'completed' END
                        ELSE status END,
                    completed_at = CASE
                        WHEN status NOT IN ('completed', 'failed', 'cancelled')
                             AND completed_tasks + $2 + failed_tasks + $3 >= total_tasks THEN now()
                        ELSE completed_at END
              WHERE id = $1
          RETURNING status, completed_at IS NOT NULL AND completed_at = now()",
            &[&task.job_id, &done, &failed, &job_error],
        )
        .await?;
    let job_status: String = row.get(0);
    // `completed_at = now()` only when this statement ended the job: `now()` is the time of this
    // transaction, and a job ended by an earlier one carries that one's time.
    let ended_now: bool = row.get(1);
    let job_ended = if ended_now {
        integration_events::record_job_end(client, task.job_id).await?
    } else {
        None
    };
    Ok(TaskEnd {
        job_status,
        job_ended,
    })
}

/// Adds to `task`'s job one task per resource of the job (but those of `exclude`) and account of
/// `accounts` (a Connect app's job, once its connected accounts are listed), and wakes the
/// workers; tasks the job already has are kept. The number added. Call in the transaction that
/// ends `task`, before it ends.
///
/// # Errors
///
/// A database error.
pub async fn add_account_tasks(
    client: &impl GenericClient,
    task: &ClaimedTask,
    exclude: &[&str],
    accounts: &[String],
) -> Result<u64, StoreError> {
    if accounts.is_empty() {
        return Ok(0);
    }
    let row = client
        .query_one(
            "WITH added AS (
                INSERT INTO supasaasy.sync_tasks (job_id, app_key, resource_type, mode, account_id)
                SELECT $1, $2, r, $3, a
                  FROM unnest((SELECT resource_types FROM supasaasy.sync_jobs WHERE id = $1)) AS r
                 CROSS JOIN unnest($5::text[]) AS a
                 WHERE r <> ALL($4::text[])
                ON CONFLICT (job_id, resource_type, account_id) DO NOTHING
                RETURNING 1
             ),
             job AS (
                UPDATE supasaasy.sync_jobs SET total_tasks = total_tasks + (SELECT count(*) FROM added)
                 WHERE id = $1
             )
             SELECT count(*) FROM added",
            &[
                &task.job_id,
                &task.app_key,
                &task.mode.as_str(),
                &exclude,
                &accounts,
            ],
        )
        .await?;
    let added: i64 = row.get(0);
    if added > 0 {
        client
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&TASKS_CHANNEL, &task.job_id.to_string()],
            )
            .await?;
    }
    Ok(u64::try_from(added).unwrap_or_default())
}

/// Puts a task back in the queue to be retried after `delay`, keeping its cursor.
/// With `spend_attempt == false` the claim does not count (a clean stop of the daemon).
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours; a database error.
pub async fn release_task(
    client: &impl GenericClient,
    task: &ClaimedTask,
    delay_secs: f64,
    error: Option<&str>,
    spend_attempt: bool,
) -> Result<(), StoreError> {
    let n = client
        .execute(
            "UPDATE supasaasy.sync_tasks
                SET status = 'pending', lease_id = NULL, lease_expires_at = NULL, lease_owner = NULL,
                    run_after = now() + make_interval(secs => $3),
                    error_message = COALESCE($4, error_message),
                    attempts = CASE WHEN $5 THEN attempts ELSE attempts - 1 END,
                    updated_at = now()
              WHERE id = $1 AND lease_id = $2 AND status = 'processing'",
            &[&task.id, &task.lease_id, &delay_secs, &error, &spend_attempt],
        )
        .await?;
    fenced(n)?;
    client
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&TASKS_CHANNEL, &task.job_id.to_string()],
        )
        .await?;
    Ok(())
}

/// Records a complete run of a resource in `sync_state` and moves its incremental cursor to
/// `events_until` (never backwards): events after it are what the next incremental run reads.
///
/// # Errors
///
/// A database error.
pub async fn record_complete_run(
    client: &impl GenericClient,
    task: &ClaimedTask,
    full: bool,
    run_started_at: DateTime<Utc>,
    events_until: DateTime<Utc>,
    api_version: &str,
) -> Result<(), StoreError> {
    let cursor = events_until.timestamp().to_string();
    client
        .execute(
            "INSERT INTO supasaasy.sync_state AS s
                 (app_key, resource_type, last_full_sync_at, last_full_sync_job, last_sync_at,
                  incremental_cursor, api_version, account_id)
             VALUES ($1, $2, CASE WHEN $3 THEN $4::timestamptz END, CASE WHEN $3 THEN $5::uuid END,
                     $4, $6, $7, $8)
             ON CONFLICT (app_key, resource_type, account_id) DO UPDATE SET
                 last_full_sync_at = COALESCE(excluded.last_full_sync_at, s.last_full_sync_at),
                 last_full_sync_job = COALESCE(excluded.last_full_sync_job, s.last_full_sync_job),
                 last_sync_at = excluded.last_sync_at,
                 incremental_cursor = CASE
                     WHEN s.incremental_cursor IS NULL
                          OR s.incremental_cursor::bigint < excluded.incremental_cursor::bigint
                     THEN excluded.incremental_cursor ELSE s.incremental_cursor END,
                 api_version = excluded.api_version,
                 updated_at = now()",
            &[
                &task.app_key,
                &task.resource_type,
                &full,
                &run_started_at,
                &task.job_id,
                &cursor,
                &api_version,
                &task.account_id,
            ],
        )
        .await?;
    Ok(())
}

/// The incremental cursor of the task's resource in its account: events created after it are
/// not applied yet.
///
/// # Errors
///
/// A database error.
pub async fn incremental_cursor(
    client: &impl GenericClient,
    task: &ClaimedTask,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = client
        .query_opt(
            "SELECT incremental_cursor FROM supasaasy.sync_state
              WHERE app_key = $1 AND resource_type = $2 AND account_id = $3",
            &[&task.app_key, &task.resource_type, &task.account_id],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<String>>(0))
        .and_then(|c| c.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0)))
}

/// Fixes how an incremental task runs, once, at its first claim: an events window ending at
/// `window_end`, or (with `note`) a full sync instead.
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours; a database error.
pub async fn plan_incremental(
    client: &impl GenericClient,
    task: &ClaimedTask,
    window_end: Option<DateTime<Utc>>,
    note: Option<&str>,
) -> Result<(), StoreError> {
    let n = client
        .execute(
            "UPDATE supasaasy.sync_tasks SET window_end = $3, note = $4, updated_at = now()
              WHERE id = $1 AND lease_id = $2 AND status = 'processing'",
            &[&task.id, &task.lease_id, &window_end, &note],
        )
        .await?;
    fenced(n)
}

/// Whether the job's task of `resource_type` in `task`'s account has yet to end (pending or
/// running).
///
/// # Errors
///
/// A database error.
pub async fn task_unfinished(
    client: &impl GenericClient,
    task: &ClaimedTask,
    resource_type: &str,
) -> Result<bool, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM supasaasy.sync_tasks
                             WHERE job_id = $1 AND resource_type = $2 AND account_id = $3
                               AND status IN ('pending', 'processing'))",
            &[&task.job_id, &resource_type, &task.account_id],
        )
        .await?;
    Ok(row.get(0))
}

/// Deletes up to `batch` ended jobs (their tasks go with them) created more than `days` ago,
/// oldest first, keeping each app's latest job per mode, then up to `batch` schedule ticks as
/// old; the rows deleted from each. Call it again while it deletes a whole batch.
///
/// # Errors
///
/// A database error.
pub async fn prune_jobs(
    client: &impl GenericClient,
    days: u32,
    batch: i64,
) -> Result<(u64, u64), StoreError> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let jobs = client
        .execute(
            "WITH latest AS (
                SELECT DISTINCT ON (app_key, mode) id FROM supasaasy.sync_jobs
                 ORDER BY app_key, mode, created_at DESC
             ),
             old AS (
                SELECT id FROM supasaasy.sync_jobs
                 WHERE created_at < now() - make_interval(days => $1)
                   AND status IN ('completed', 'failed', 'cancelled')
                   AND id NOT IN (SELECT id FROM latest)
                 ORDER BY created_at
                 LIMIT $2
             )
             DELETE FROM supasaasy.sync_jobs WHERE id IN (SELECT id FROM old)",
            &[&days, &batch],
        )
        .await?;
    let ticks = client
        .execute(
            "DELETE FROM supasaasy.schedule_ticks WHERE ctid IN (
                SELECT ctid FROM supasaasy.schedule_ticks
                 WHERE created_at < now() - make_interval(days => $1)
                 LIMIT $2)",
            &[&days, &batch],
        )
        .await?;
    Ok((jobs, ticks))
}

/// What cancelling a job did.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was pending or running and is now cancelled.
    Cancelled,
    /// The job had already ended with this status.
    AlreadyEnded(String),
    /// No such job.
    NotFound,
}

/// Cancels a pending or running job and its unfinished tasks, in one transaction. A worker running
/// one of them loses its lease and stops at its next write; nothing of a cancelled run is swept.
///
/// Every other writer (a claim, a page, a task's end) locks a task's row before its job's, so the
/// job's tasks are locked first here too: locking the job first deadlocks with a worker claiming or
/// ending one of its tasks at the same moment.
///
/// # Errors
///
/// A database error.
pub async fn cancel_job(
    client: &mut deadpool_postgres::Client,
    job_id: Uuid,
) -> Result<CancelOutcome, StoreError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT 1 FROM supasaasy.sync_tasks WHERE job_id = $1 ORDER BY id FOR UPDATE",
        &[&job_id],
    )
    .await?;
    let row = tx
        .query_one(
            "WITH job AS (
                UPDATE supasaasy.sync_jobs
                   SET status = 'cancelled', completed_at = now(),
                       error_message = COALESCE(error_message, 'cancelled')
                 WHERE id = $1 AND status IN ('pending', 'processing')
             RETURNING id, app_key, mode, trigger
             ),
             event AS (
                INSERT INTO supasaasy.integration_events (app_key, service, event_type, outcome, detail)
                SELECT app_key, 'supasaasy', 'sync.cancelled', 'cancelled',
                       jsonb_build_object('job_id', id, 'mode', mode, 'trigger', trigger)
                  FROM job
             ),
             tasks AS (
                UPDATE supasaasy.sync_tasks
                   SET status = 'cancelled', completed_at = now(), updated_at = now(),
                       lease_id = NULL, lease_expires_at = NULL
                 WHERE job_id IN (SELECT id FROM job) AND status IN ('pending', 'processing')
             )
             SELECT (SELECT count(*) FROM job),
                    (SELECT status FROM supasaasy.sync_jobs WHERE id = $1)",
            &[&job_id],
        )
        .await?;
    tx.commit().await?;
    let cancelled: i64 = row.get(0);
    let status: Option<String> = row.get(1);
    Ok(match (cancelled, status) {
        (1, _) => CancelOutcome::Cancelled,
        (_, Some(s)) => CancelOutcome::AlreadyEnded(s),
        (_, None) => CancelOutcome::NotFound,
    })
}
