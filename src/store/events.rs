//! Provider events seen (`supasaasy.provider_events`), the webhook request log
//! (`supasaasy.webhook_logs`) and their retention.
//!
//! An event id is recorded in the transaction that applies the event, so a second delivery of the
//! same id (a provider retry, or the events API replaying what a webhook brought) changes nothing.

use serde_json::Value;
use tokio_postgres::GenericClient;

use super::StoreError;

/// Records an event id as seen. Returns false when it was seen before (a duplicate). Call in the
/// transaction that applies the event, then [`set_action`].
///
/// # Errors
///
/// A database error.
pub async fn record_event(
    client: &impl GenericClient,
    app_key: &str,
    event_id: &str,
    event_type: &str,
    created: i64,
    source: &str,
) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "INSERT INTO supasaasy.provider_events
                 (app_key, event_id, event_type, event_created, source, action)
             VALUES ($1, $2, $3, to_timestamp($4), $5, 'pending')
             ON CONFLICT (app_key, event_id) DO NOTHING",
            &[&app_key, &event_id, &event_type, &(created as f64), &source],
        )
        .await?;
    Ok(n == 1)
}

/// Records what applying an event did (`applied`, `stale`, `ignored`).
///
/// # Errors
///
/// A database error.
pub async fn set_action(
    client: &impl GenericClient,
    app_key: &str,
    event_id: &str,
    action: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE supasaasy.provider_events SET action = $3 WHERE app_key = $1 AND event_id = $2",
            &[&app_key, &event_id, &action],
        )
        .await?;
    Ok(())
}

/// One webhook request, for the request log.
pub struct WebhookLog<'a> {
    /// The app of the URL, when it names one.
    pub app_key: Option<&'a str>,
    /// HTTP method.
    pub method: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Headers, secrets already redacted.
    pub headers: Value,
    /// The body, as text (lossy for non-UTF-8).
    pub body: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The error answered, if any.
    pub error: Option<String>,
    /// Time spent answering.
    pub duration_ms: f64,
}

/// Writes one row of the webhook request log.
///
/// # Errors
///
/// A database error.
pub async fn log_webhook(
    client: &impl GenericClient,
    log: &WebhookLog<'_>,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO supasaasy.webhook_logs
                 (app_key, method, path, headers, body, status, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &log.app_key,
                &log.method,
                &log.path,
                &log.headers,
                &log.body,
                &(log.status as i32),
                &log.error,
                &log.duration_ms,
            ],
        )
        .await?;
    Ok(())
}

/// Deletes webhook log rows older than `log_days` and seen-event rows older than `event_days`.
/// Returns the rows deleted from each.
///
/// # Errors
///
/// A database error.
pub async fn prune(
    client: &impl GenericClient,
    log_days: u32,
    event_days: u32,
) -> Result<(u64, u64), StoreError> {
    let logs = client
        .execute(
            "DELETE FROM supasaasy.webhook_logs WHERE created_at < now() - make_interval(days => $1)",
            &[&(log_days as i32)],
        )
        .await?;
    let events = client
        .execute(
            "DELETE FROM supasaasy.provider_events WHERE received_at < now() - make_interval(days => $1)",
            &[&(event_days as i32)],
        )
        .await?;
    Ok((logs, events))
}
