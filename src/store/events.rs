//! Provider events seen (`supasaasy.provider_events`), the webhook request log
//! (`supasaasy.webhook_logs`) and their retention.
//!
//! An event id is recorded in the transaction that applies the event, so a second delivery of the
//! same id (a provider retry, or the events API replaying what a webhook brought) is known as a
//! duplicate, and a second delivery racing the first waits for it.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::Value;
use tokio_postgres::GenericClient;

use super::jsonb::text;
use super::StoreError;

/// An event to record as seen, with what applying it did.
pub struct SeenEvent<'a> {
    /// The app it was delivered to.
    pub app_key: &'a str,
    /// The provider's event id.
    pub event_id: &'a str,
    /// The provider's event type.
    pub event_type: &'a str,
    /// When the provider created it (Unix seconds).
    pub created: i64,
    /// `webhook` or `events_api`.
    pub source: &'a str,
    /// `applied` or `ignored`, as expected before the event is decided.
    pub action: &'a str,
}

/// Records event ids as seen, in one statement; answers, for each event in order, true when it
/// is new and false when it was recorded before (a duplicate). Call in the transaction that
/// applies the events, with the action each is expected to come to (`applied`, or `ignored` for a
/// type the daemon does not map), then [`settle`] the ones that came to something else. Give the
/// events sorted by app and id and without repeats: two transactions recording the same ids then
/// wait for each other in one order.
///
/// # Errors
///
/// A database error.
pub async fn record_seen(
    client: &impl deadpool_postgres::GenericClient,
    events: &[SeenEvent<'_>],
) -> Result<Vec<bool>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let apps: Vec<&str> = events.iter().map(|e| e.app_key).collect();
    // A provider's text may hold what Postgres cannot (U+0000): stored with it replaced.
    let ids: Vec<Cow<str>> = events.iter().map(|e| text(e.event_id)).collect();
    let types: Vec<Cow<str>> = events.iter().map(|e| text(e.event_type)).collect();
    let created: Vec<f64> = events.iter().map(|e| e.created as f64).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source).collect();
    let actions: Vec<&str> = events.iter().map(|e| e.action).collect();
    let stmt = client
        .prepare_cached(
            "INSERT INTO supasaasy.provider_events
                 (app_key, event_id, event_type, event_created, source, action)
             SELECT e.app_key, e.event_id, e.event_type, to_timestamp(e.created), e.source, e.action
               FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[])
                    WITH ORDINALITY AS e(app_key, event_id, event_type, created, source, action, n)
              ORDER BY e.n
             ON CONFLICT (app_key, event_id) DO NOTHING
             RETURNING app_key, event_id",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&apps, &ids, &types, &created, &sources, &actions])
        .await?;
    let recorded: HashSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r.get::<_, &str>(0), r.get::<_, &str>(1)))
        .collect();
    Ok(events
        .iter()
        .zip(&ids)
        .map(|(e, id)| recorded.contains(&(e.app_key, id.as_ref())))
        .collect())
}

/// Settles events recorded by [`record_seen`] in this transaction whose outcome differs from the
/// one recorded: `changed` get their action (`stale`); `failed` could not be applied and are
/// forgotten, so their next delivery applies them. Does nothing when both are empty (the usual
/// batch).
///
/// # Errors
///
/// A database error.
pub async fn settle(
    client: &impl deadpool_postgres::GenericClient,
    changed: &[(&str, &str, &str)],
    failed: &[(&str, &str)],
) -> Result<(), StoreError> {
    if !changed.is_empty() {
        let apps: Vec<&str> = changed.iter().map(|d| d.0).collect();
        let ids: Vec<&str> = changed.iter().map(|d| d.1).collect();
        let actions: Vec<&str> = changed.iter().map(|d| d.2).collect();
        let stmt = client
            .prepare_cached(
                "UPDATE supasaasy.provider_events p SET action = d.action
                   FROM unnest($1::text[], $2::text[], $3::text[]) AS d(app_key, event_id, action)
                  WHERE p.app_key = d.app_key AND p.event_id = d.event_id",
            )
            .await?;
        client.execute(&stmt, &[&apps, &ids, &actions]).await?;
    }
    if !failed.is_empty() {
        let apps: Vec<&str> = failed.iter().map(|d| d.0).collect();
        let ids: Vec<&str> = failed.iter().map(|d| d.1).collect();
        let stmt = client
            .prepare_cached(
                "DELETE FROM supasaasy.provider_events p
                  USING unnest($1::text[], $2::text[]) AS f(app_key, event_id)
                  WHERE p.app_key = f.app_key AND p.event_id = f.event_id",
            )
            .await?;
        client.execute(&stmt, &[&apps, &ids]).await?;
    }
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
