//! Job status documents, in SupaSaaSy's JSON shape: what `GET /jobs/{id}`, `GET /jobs` and the
//! CLI show.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::{rfc3339, StoreError};

const JOB_COLUMNS: &str =
    "(SELECT array_agg(t.resource_type || CASE WHEN t.account_id = '' THEN '' ELSE '@' || t.account_id END
                       || ': ' || t.note ORDER BY t.account_id, t.resource_type)
        FROM supasaasy.sync_tasks t WHERE t.job_id = sync_jobs.id AND t.note IS NOT NULL) AS notes,
    id, app_key, mode, status, resource_types, trigger, total_tasks, completed_tasks,
    failed_tasks, processed_entities, skipped_entities, error_message, created_at, started_at, completed_at";

/// A job's status document, in SupaSaaSy's JSON shape; with `include_tasks` also its tasks.
///
/// # Errors
///
/// A database error.
pub async fn job_document(
    client: &impl GenericClient,
    job_id: Uuid,
    include_tasks: bool,
) -> Result<Option<Value>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM supasaasy.sync_jobs WHERE id = $1");
    let Some(row) = client.query_opt(&sql, &[&job_id]).await? else {
        return Ok(None);
    };
    let mut doc = job_json(&row);
    // A Connect app's job: its progress per connected account.
    let accounts = client
        .query(
            "SELECT account_id, count(*) AS tasks,
                    count(*) FILTER (WHERE status = 'completed') AS completed,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                    sum(entity_count)::int8 AS entity_count,
                    min(error_message) FILTER (WHERE status = 'failed') AS error_message
               FROM supasaasy.sync_tasks WHERE job_id = $1 AND account_id <> ''
              GROUP BY account_id ORDER BY account_id",
            &[&job_id],
        )
        .await?;
    if !accounts.is_empty() {
        doc["accounts"] = accounts
            .iter()
            .map(|a| {
                json!({
                    "account_id": a.get::<_, String>("account_id"),
                    "tasks": a.get::<_, i64>("tasks"),
                    "completed": a.get::<_, i64>("completed"),
                    "failed": a.get::<_, i64>("failed"),
                    "cancelled": a.get::<_, i64>("cancelled"),
                    "entity_count": a.get::<_, i64>("entity_count"),
                    "error_message": a.get::<_, Option<String>>("error_message"),
                })
            })
            .collect();
    }
    if include_tasks {
        let tasks = client
            .query(
                "SELECT id, resource_type, account_id, status, entity_count, skipped_entities, pages, requests, attempts, cursor,
                        error_message, note, created_at, started_at, completed_at
                   FROM supasaasy.sync_tasks WHERE job_id = $1
                  ORDER BY created_at, account_id, resource_type",
                &[&job_id],
            )
            .await?;
        doc["tasks"] = tasks
            .iter()
            .map(|t| {
                json!({
                    "task_id": t.get::<_, Uuid>("id").to_string(),
                    "resource_type": t.get::<_, String>("resource_type"),
                    "account_id": Some(t.get::<_, String>("account_id")).filter(|a| !a.is_empty()),
                    "status": t.get::<_, String>("status"),
                    "entity_count": t.get::<_, i64>("entity_count"),
                    "skipped_entities": t.get::<_, i64>("skipped_entities"),
                    "pages": t.get::<_, i32>("pages"),
                    "requests": t.get::<_, i64>("requests"),
                    "attempts": t.get::<_, i32>("attempts"),
                    "error_message": t.get::<_, Option<String>>("error_message"),
                    "note": t.get::<_, Option<String>>("note"),
                    "created_at": ts(t, "created_at"),
                    "started_at": ts(t, "started_at"),
                    "completed_at": ts(t, "completed_at"),
                })
            })
            .collect();
    }
    Ok(Some(doc))
}

/// Filters of a job listing.
#[derive(Debug, Default)]
pub struct JobFilter {
    /// Only this app's jobs.
    pub app_key: Option<String>,
    /// Only jobs in this status.
    pub status: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// Recent jobs, newest first.
///
/// # Errors
///
/// A database error.
pub async fn list_jobs(
    client: &impl GenericClient,
    filter: &JobFilter,
) -> Result<Vec<Value>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM supasaasy.sync_jobs
          WHERE ($1::text IS NULL OR app_key = $1) AND ($2::text IS NULL OR status = $2)
          ORDER BY created_at DESC, id LIMIT $3"
    );
    let rows = client
        .query(&sql, &[&filter.app_key, &filter.status, &filter.limit])
        .await?;
    Ok(rows.iter().map(job_json).collect())
}

fn ts(row: &Row, column: &str) -> Option<String> {
    row.get::<_, Option<DateTime<Utc>>>(column).map(rfc3339)
}

fn job_json(row: &Row) -> Value {
    let total: i32 = row.get("total_tasks");
    let completed: i32 = row.get("completed_tasks");
    let failed: i32 = row.get("failed_tasks");
    let status: String = row.get("status");
    let progress = if status == "completed" {
        100
    } else if total > 0 {
        (completed + failed) * 100 / total
    } else {
        0
    };
    json!({
        "job_id": row.get::<_, Uuid>("id").to_string(),
        "app_key": row.get::<_, String>("app_key"),
        "mode": row.get::<_, String>("mode"),
        "status": status,
        "resource_types": row.get::<_, Vec<String>>("resource_types"),
        "trigger": row.get::<_, String>("trigger"),
        "progress_percentage": progress,
        "total_tasks": total,
        "completed_tasks": completed,
        "failed_tasks": failed,
        "processed_entities": row.get::<_, i64>("processed_entities"),
        "skipped_entities": row.get::<_, i64>("skipped_entities"),
        "created_at": ts(row, "created_at"),
        "started_at": ts(row, "started_at"),
        "completed_at": ts(row, "completed_at"),
        "error_message": row.get::<_, Option<String>>("error_message"),
        "notes": row.get::<_, Option<Vec<String>>>("notes").unwrap_or_default(),
    })
}
