//! Schedule ticks (`supasaasy.schedule_ticks`): with several daemons on one database, the first to
//! record a tick enqueues its job; the others find it recorded and do nothing. A tick is skipped,
//! not doubled, while a job of the same app is still pending or running.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::jobs::{self, NewJob};
use super::StoreError;

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// This daemon enqueued the job.
    Enqueued(Uuid),
    /// A job of the app was still pending or running.
    Skipped(Uuid),
    /// Another daemon already handled this tick.
    AlreadyFired,
}

/// Handles one tick of a schedule in one transaction.
///
/// # Errors
///
/// A database error; nothing is recorded then.
pub async fn fire(
    client: &mut deadpool_postgres::Client,
    schedule_key: &str,
    fire_at: DateTime<Utc>,
    job: &NewJob<'_>,
) -> Result<TickOutcome, StoreError> {
    let tx = client.transaction().await?;
    // Serialises the ticks of one app across schedules and daemons.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('supasaasy.schedule:' || $1, 0))",
        &[&job.app_key],
    )
    .await?;
    let inserted = tx
        .execute(
            "INSERT INTO supasaasy.schedule_ticks (schedule_key, fire_at) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&schedule_key, &fire_at],
        )
        .await?;
    if inserted == 0 {
        tx.commit().await?;
        return Ok(TickOutcome::AlreadyFired);
    }
    let running = tx
        .query_opt(
            "SELECT id FROM supasaasy.sync_jobs
              WHERE app_key = $1 AND status IN ('pending', 'processing')
              ORDER BY created_at LIMIT 1",
            &[&job.app_key],
        )
        .await?;
    let outcome = match running {
        Some(row) => {
            let busy: Uuid = row.get(0);
            tx.execute(
                "UPDATE supasaasy.schedule_ticks SET skipped_reason = $3
                  WHERE schedule_key = $1 AND fire_at = $2",
                &[
                    &schedule_key,
                    &fire_at,
                    &format!("job {busy} still running"),
                ],
            )
            .await?;
            TickOutcome::Skipped(busy)
        }
        None => {
            let id = jobs::create_job(&*tx, job).await?;
            tx.execute(
                "UPDATE supasaasy.schedule_ticks SET job_id = $3 WHERE schedule_key = $1 AND fire_at = $2",
                &[&schedule_key, &fire_at, &id],
            )
            .await?;
            TickOutcome::Enqueued(id)
        }
    };
    tx.commit().await?;
    Ok(outcome)
}
