//! The integration events log (`supasaasy.integration_events`): what the daemon did and saw, for the
//! people who run it.
//!
//! Webhook outcomes, alerts and circuit changes arrive in batches from the daemon's event writer
//! ([`insert_batch`], one statement per batch); job starts and ends are written by the statement or
//! transaction that starts or ends the job, so the log never disagrees with the queue. Reads are
//! [`list`], one statement for the page, the total and the summary.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::jsonb::{text, Jsonb};
use super::{rfc3339, StoreError};

/// One event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The app it concerns; `None` for the daemon as a whole (an alert sent by hand).
    pub app_key: Option<String>,
    /// `stripe`, `intercom`, `slack`, `teams` or `supasaasy`.
    pub service: String,
    /// The provider's type (`customer.updated`) or the daemon's (`sync.failed`, `alert.sent`).
    pub event_type: String,
    /// `applied`, `ignored`, `duplicate`, `stale`, `rejected`, `sent`, `failed`, `opened`, ...
    pub outcome: String,
    /// Enough to act on (object id, job id, error); never a secret.
    pub detail: Value,
    /// When it happened (the writer may insert it a moment later).
    pub at: DateTime<Utc>,
}

/// Inserts a batch of events in one statement.
///
/// # Errors
///
/// A database error; nothing of the batch was written then.
pub async fn insert_batch(
    client: &impl GenericClient,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // Text from outside (a provider's event type, an id) may hold what Postgres cannot: one
    // such event must not lose the batch.
    let app_keys: Vec<Option<Cow<str>>> = events
        .iter()
        .map(|e| e.app_key.as_deref().map(text))
        .collect();
    let services: Vec<&str> = events.iter().map(|e| e.service.as_str()).collect();
    let types: Vec<Cow<str>> = events.iter().map(|e| text(&e.event_type)).collect();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    let details: Vec<Jsonb<Value>> = events.iter().map(|e| Jsonb(&e.detail)).collect();
    let ats: Vec<DateTime<Utc>> = events.iter().map(|e| e.at).collect();
    client
        .execute(
            "INSERT INTO supasaasy.integration_events
                 (app_key, service, event_type, outcome, detail, created_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                                  $6::timestamptz[])",
            &[&app_keys, &services, &types, &outcomes, &details, &ats],
        )
        .await?;
    Ok(())
}

/// A job that has just ended, as its end was recorded.
#[derive(Debug, Clone)]
pub struct EndedJob {
    /// The job.
    pub job_id: Uuid,
    /// Its app.
    pub app_key: String,
    /// `full` or `incremental`.
    pub mode: String,
    /// `completed`, `failed` or `cancelled`.
    pub status: String,
    /// The first error of the job, when it failed.
    pub error_message: Option<String>,
    /// From the first claim (or creation, if never claimed) to the end.
    pub duration_secs: f64,
}

/// Records the end of job `job_id` (`sync.completed`, `sync.failed` or `sync.cancelled`). Call in
/// the transaction that ended it.
///
/// # Errors
///
/// A database error.
pub async fn record_job_end(
    client: &impl GenericClient,
    job_id: Uuid,
) -> Result<Option<EndedJob>, StoreError> {
    let row = client
        .query_opt(
            "INSERT INTO supasaasy.integration_events (app_key, service, event_type, outcome, detail)
             SELECT app_key, 'supasaasy', 'sync.' || status, status,
                    jsonb_strip_nulls(jsonb_build_object(
                        'job_id', id, 'mode', mode, 'trigger', trigger,
                        'resource_types', resource_types,
                        'completed_tasks', completed_tasks, 'failed_tasks', failed_tasks,
                        'processed_entities', processed_entities,
                        'duration_s', round(extract(epoch FROM
                            completed_at - COALESCE(started_at, created_at))::numeric, 3),
                        'error', error_message))
               FROM supasaasy.sync_jobs WHERE id = $1 AND completed_at IS NOT NULL
             RETURNING app_key, detail, outcome",
            &[&job_id],
        )
        .await?;
    Ok(row.map(|r| {
        let detail: Value = r.get(1);
        EndedJob {
            job_id,
            app_key: r.get(0),
            mode: detail["mode"].as_str().unwrap_or_default().to_string(),
            status: r.get(2),
            error_message: detail["error"].as_str().map(str::to_string),
            duration_secs: detail["duration_s"].as_f64().unwrap_or(0.0),
        }
    }))
}

/// What `GET /events` asks for.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this app.
    pub app_key: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped before the page.
    pub offset: i64,
}

/// A page of events, newest first, with the total and the summary over everything that matched.
#[derive(Debug)]
pub struct EventPage {
    /// The page.
    pub events: Vec<Value>,
    /// Events matching the filter.
    pub total: i64,
    /// Matching events by service.
    pub services: Value,
    /// Matching events by event type.
    pub event_types: Value,
}

/// Lists events matching `filter`, newest first, in one statement.
///
/// # Errors
///
/// A database error.
pub async fn list(
    client: &impl GenericClient,
    filter: &EventFilter,
) -> Result<EventPage, StoreError> {
    let mut clauses = Vec::new();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&filter.limit, &filter.offset];
    let text_filters = [
        ("app_key", &filter.app_key),
        ("service", &filter.service),
        ("event_type", &filter.event_type),
    ];
    for (column, value) in &text_filters {
        if let Some(v) = value {
            params.push(v);
            clauses.push(format!("{column} = ${}", params.len()));
        }
    }
    if let Some(since) = &filter.since {
        params.push(since);
        clauses.push(format!("created_at >= ${}", params.len()));
    }
    if let Some(until) = &filter.until {
        params.push(until);
        clauses.push(format!("created_at <= ${}", params.len()));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "WITH m AS MATERIALIZED (
            SELECT id, app_key, service, event_type, outcome, detail, created_at
              FROM supasaasy.integration_events {filter_sql}
         )
         SELECT (SELECT count(*) FROM m),
                (SELECT COALESCE(jsonb_object_agg(service, n), '{{}}')
                   FROM (SELECT service, count(*) AS n FROM m GROUP BY service) s),
                (SELECT COALESCE(jsonb_object_agg(event_type, n), '{{}}')
                   FROM (SELECT event_type, count(*) AS n FROM m GROUP BY event_type) t),
                ARRAY(SELECT jsonb_build_object(
                          'id', id, 'app_key', app_key, 'service', service,
                          'event_type', event_type, 'outcome', outcome, 'detail', detail,
                          'created_at', created_at)
                        FROM m ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2)"
    );
    let row = client.query_one(&sql, &params).await?;
    let mut events: Vec<Value> = row.get(3);
    // Timestamps in the API are RFC 3339 UTC with milliseconds, as everywhere else.
    for event in &mut events {
        if let Some(at) = event["created_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        {
            event["created_at"] = json!(rfc3339(at.with_timezone(&Utc)));
        }
    }
    Ok(EventPage {
        events,
        total: row.get(0),
        services: row.get(1),
        event_types: row.get(2),
    })
}

/// Deletes events older than `days`, at most `batch` rows per statement so the table is never
/// locked long; returns how many went.
///
/// # Errors
///
/// A database error.
pub async fn prune(client: &impl GenericClient, days: u32, batch: i64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM supasaasy.integration_events WHERE id IN (
                    SELECT id FROM supasaasy.integration_events
                     WHERE created_at < now() - make_interval(days => $1)
                     LIMIT $2)",
                &[&(days as i32), &batch],
            )
            .await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}
