//! What `/health` and `/metrics` read from the database: per app, the last sync, the last accepted
//! webhook and the latest job's error; and the queue's depth.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::StoreError;

/// One app's recent activity (nothing known: all `None`).
#[derive(Debug, Clone, Default)]
pub struct AppActivity {
    /// When a sync of one of its resources last completed.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// When it last accepted a webhook (applied, ignored, duplicate or stale).
    pub last_webhook_at: Option<DateTime<Utc>>,
    /// The error of its latest job, when that job failed.
    pub last_job_error: Option<String>,
}

/// The recent activity of `app_keys`, in that order, in one statement.
///
/// # Errors
///
/// A database error.
pub async fn activity(
    client: &impl GenericClient,
    app_keys: &[String],
) -> Result<Vec<AppActivity>, StoreError> {
    let rows = client
        .query(
            "SELECT (SELECT max(last_sync_at) FROM supasaasy.sync_state s WHERE s.app_key = a.app_key),
                    (SELECT created_at FROM supasaasy.integration_events e
                      WHERE e.app_key = a.app_key
                        AND e.outcome IN ('applied', 'ignored', 'duplicate', 'stale')
                      ORDER BY created_at DESC LIMIT 1),
                    (SELECT CASE WHEN status = 'failed' THEN error_message END
                       FROM supasaasy.sync_jobs j WHERE j.app_key = a.app_key
                      ORDER BY created_at DESC LIMIT 1)
               FROM unnest($1::text[]) WITH ORDINALITY AS a(app_key, n)
              ORDER BY a.n",
            &[&app_keys],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| AppActivity {
            last_sync_at: r.get(0),
            last_webhook_at: r.get(1),
            last_job_error: r.get(2),
        })
        .collect())
}

/// When each app's resources last completed a sync, and when each app last accepted a webhook,
/// as the database holds them (so every daemon sharing it answers the same).
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    /// App, resource, when a sync of it last completed.
    pub syncs: Vec<(String, String, DateTime<Utc>)>,
    /// App, when it last accepted a webhook.
    pub webhooks: Vec<(String, DateTime<Utc>)>,
}

/// The [`Freshness`] of `app_keys`.
///
/// # Errors
///
/// A database error.
pub async fn freshness(
    client: &impl GenericClient,
    app_keys: &[String],
) -> Result<Freshness, StoreError> {
    let syncs = client
        .query(
            "SELECT app_key, resource_type, last_sync_at FROM supasaasy.sync_state
              WHERE app_key = ANY($1) AND account_id = '' AND last_sync_at IS NOT NULL
              ORDER BY 1, 2",
            &[&app_keys],
        )
        .await?;
    let activity = activity(client, app_keys).await?;
    Ok(Freshness {
        syncs: syncs
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
        webhooks: app_keys
            .iter()
            .zip(activity)
            .filter_map(|(app, a)| a.last_webhook_at.map(|t| (app.clone(), t)))
            .collect(),
    })
}

/// Unfinished tasks by app and status (`pending`, `processing`).
///
/// # Errors
///
/// A database error.
pub async fn queue_depth(
    client: &impl GenericClient,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows = client
        .query(
            "SELECT app_key, status, count(*) FROM supasaasy.sync_tasks
              WHERE status IN ('pending', 'processing') GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
