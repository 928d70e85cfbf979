//! The operating routes: `GET /health` (per app), `GET /events`, `POST /alerts` and
//! `GET /metrics`.
//!
//! `/health` and `/metrics` need no key and show no secret; `/events` and `/alerts` are admin
//! routes (checked by the router before the body is read).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::util::{
    error, json_response, parse_limit, query_pairs, read_json, store_error, text_response,
    ApiError, Resp,
};
use crate::config::AppConfig;
use crate::context::Context;
use crate::db;
use crate::ops::breaker::CircuitState;
use crate::providers;
use crate::store::health::{self, AppActivity};
use crate::store::integration_events::{self, EventFilter};
use crate::store::rfc3339;
use crate::store::StoreError;

/// How long `/health` waits for the database before answering 503.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `/readyz` waits for the database before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /livez`: the process serves. Never touches the database, so an orchestrator does not
/// restart a daemon because its database blipped.
pub fn livez() -> Resp {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers and its schema is one this binary runs against,
/// else 503 with the reason.
pub async fn readyz(ctx: &Context) -> Resp {
    let probe = async {
        let client = ctx.pool.get().await.map_err(|e| e.to_string())?;
        db::schema_of(&**client).await.map_err(|e| e.to_string())
    };
    let not_ready = |reason: String| {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": reason}),
        )
    };
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Err(_) | Ok(Err(_)) => not_ready("the database does not answer".into()),
        Ok(Ok(schema)) => match schema.verdict() {
            db::schema::Verdict::Current | db::schema::Verdict::AheadCompatible => json_response(
                StatusCode::OK,
                &json!({"status": "ready", "schema": {"database": schema.database, "binary": schema.binary}}),
            ),
            db::schema::Verdict::Behind => not_ready(schema.behind_message().replace(
                " (migrations are off)",
                " (not migrated yet, or migrations are off)",
            )),
            db::schema::Verdict::Refused(why) => not_ready(why),
        },
    }
}

/// `GET /health`: 200 with each app's circuit and recent activity while the database answers
/// (`degraded` when a circuit is not closed), 503 when it does not, and what the webhook lanes
/// are doing. The route is public: an app's last error shows as a short category, and as the
/// whole message (URLs, OS errors) only to a caller with the admin key (`admin`).
pub async fn health(ctx: &Context, admin: bool) -> Resp {
    let app_keys: Vec<String> = ctx.config.apps.iter().map(|a| a.app_key.clone()).collect();
    let probe = async {
        let client = ctx.pool.get().await?;
        health::activity(&**client, &app_keys).await
    };
    let activity = match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
        Ok(Ok(rows)) => Some(rows),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            None
        }
        Err(_) => {
            tracing::warn!("health check: the database did not answer in time");
            None
        }
    };
    let up = activity.is_some();
    let mut activity = activity.unwrap_or_default().into_iter();
    let mut degraded = false;
    let apps: Vec<Value> = ctx
        .config
        .apps
        .iter()
        .map(|app| {
            let (body, circuit) = app_health(ctx, app, activity.next(), admin);
            degraded |= circuit != CircuitState::Closed;
            body
        })
        .collect();
    let (code, status, database) = match (up, degraded) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "down", "unavailable"),
        (true, true) => (StatusCode::OK, "degraded", "ok"),
        (true, false) => (StatusCode::OK, "ok", "ok"),
    };
    let lanes = ctx.webhooks.state();
    let webhooks = json!({
        "lanes": lanes.lanes,
        "batches": lanes.batches,
        "queued": lanes.queued,
        "panics": lanes.panics,
    });
    json_response(
        code,
        &json!({"status": status, "database": {"status": database}, "webhooks": webhooks, "apps": apps}),
    )
}

/// One app's part of `/health`; `seen` is `None` while the database does not answer.
fn app_health(
    ctx: &Context,
    app: &AppConfig,
    seen: Option<AppActivity>,
    admin: bool,
) -> (Value, CircuitState) {
    let breakers = &ctx.ops.breakers;
    let circuit = breakers.state(&app.app_key);
    let known = seen.is_some();
    let seen = seen.unwrap_or_default();
    let last_error = match (circuit, known) {
        (CircuitState::Closed, true) => seen.last_job_error,
        _ => breakers.last_error(&app.app_key).or(seen.last_job_error),
    };
    let last_error = last_error.map(|e| {
        if admin {
            e
        } else {
            error_category(&e).to_owned()
        }
    });
    let body = json!({
        "app_key": app.app_key,
        "connector": app.connector.name,
        "circuit": circuit.as_str(),
        "last_sync_at": seen.last_sync_at.map(rfc3339),
        "last_webhook_at": seen.last_webhook_at.map(rfc3339),
        "last_error": last_error,
    });
    (body, circuit)
}

/// What kind of error `message` is, in a few words that carry no URL, host or OS detail.
fn error_category(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if any(&["answered 429", "(429)", "rate limit"]) {
        "rate limited by the provider"
    } else if any(&[
        "answered 5",
        "(500)",
        "(502)",
        "(503)",
        "(504)",
        "server error",
    ]) {
        "provider server error"
    } else if any(&[
        "timed out",
        "timeout",
        "connect",
        "unreachable",
        "dns",
        "resolve",
    ]) {
        "provider unreachable"
    } else if any(&[
        "answered 401",
        "answered 403",
        "(401)",
        "(403)",
        "refused",
        "rejected",
    ]) {
        "refused by the provider"
    } else if any(&["database", "postgres"]) {
        "database error"
    } else {
        "sync error"
    }
}

/// `GET /events`: the integration events log, newest first, with the total and the summary over
/// everything that matches.
pub async fn list_events(ctx: &Context, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let mut filter = EventFilter {
        limit: 50,
        ..EventFilter::default()
    };
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    for (k, v) in query_pairs(req.uri().query())? {
        match k.as_str() {
            "app_key" => filter.app_key = Some(v),
            "service" if providers::services().contains(&v.as_str()) => filter.service = Some(v),
            "service" => {
                return Err(bad(format!(
                    "unknown service {v:?}; known: {}",
                    providers::services().join(", ")
                )))
            }
            "event_type" => filter.event_type = Some(v),
            "since" => filter.since = Some(parse_time("since", &v)?),
            "until" => filter.until = Some(parse_time("until", &v)?),
            "limit" => filter.limit = parse_limit(&v)?,
            "offset" => {
                filter.offset = v
                    .parse()
                    .ok()
                    .filter(|n: &i64| *n >= 0)
                    .ok_or_else(|| bad("offset must be a whole number, 0 or more".into()))?
            }
            other => return Err(bad(format!("unknown filter {other:?}"))),
        }
    }
    // Whatever this process recorded before the request is in the answer.
    ctx.ops.events.flush(Duration::from_secs(2)).await;
    let client = ctx.pool.get().await.map_err(|e| store_error(e.into()))?;
    let page = integration_events::list(&**client, &filter)
        .await
        .map_err(store_error)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "events": page.events,
            "pagination": {"total": page.total, "limit": filter.limit, "offset": filter.offset},
            "filters": {
                "app_key": filter.app_key,
                "service": filter.service,
                "event_type": filter.event_type,
                "since": filter.since.map(rfc3339),
                "until": filter.until.map(rfc3339),
            },
            "summary": {"services": page.services, "event_types": page.event_types},
        }),
    ))
}

fn parse_time(key: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                format!("{key} must be an RFC 3339 time like 2026-01-31T00:00:00Z"),
            )
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRequest {
    title: String,
    message: String,
    #[serde(default)]
    channels: Option<Vec<String>>,
}

/// `POST /alerts`: sends an alert now and answers each channel's result.
pub async fn send_alert(ctx: &Context, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let request: AlertRequest = read_json(ctx, req).await?;
    if request.title.trim().is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "title must not be empty"));
    }
    let results = ctx
        .ops
        .alerts
        .send_now(
            &request.title,
            &request.message,
            request.channels.as_deref(),
        )
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    let results: Vec<Value> = results
        .iter()
        .map(|r| json!({"service": r.service, "success": r.success, "error": r.error}))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "results": results }),
    ))
}

/// `GET /metrics`: Prometheus text; the queue depth is read from the database at scrape time and
/// left out when it does not answer.
pub async fn metrics(ctx: &Context) -> Resp {
    let app_keys: Vec<String> = ctx.config.apps.iter().map(|a| a.app_key.clone()).collect();
    let read = async {
        let client = ctx.pool.get().await?;
        let queue = health::queue_depth(&**client).await?;
        let freshness = health::freshness(&**client, &app_keys).await?;
        Ok::<_, StoreError>((queue, freshness))
    };
    let (queue, freshness) = match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
        Ok(Ok((queue, freshness))) => (Some(queue), Some(freshness)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "metrics: the database's figures are unavailable");
            (None, None)
        }
        Err(_) => (None, None),
    };
    let circuits: Vec<(String, CircuitState)> = ctx
        .config
        .apps
        .iter()
        .map(|a| (a.app_key.clone(), ctx.ops.breakers.state(&a.app_key)))
        .collect();
    text_response(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ctx.ops.metrics.render(
            queue.as_deref(),
            &circuits,
            (ctx.webhooks.queued(), ctx.ops.events.dropped()),
            freshness.as_ref(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::error_category;

    #[test]
    fn errors_show_publicly_as_categories_without_urls() {
        for (message, category) in [
            ("Stripe answered 503 for app a on GET /v1/customers?limit=100 [req_1]", "provider server error"),
            ("Stripe answered 429 for app a on GET /v1/customers and asked for a retry", "rate limited by the provider"),
            ("error sending request for url (http://127.0.0.1:9/v1/customers?limit=100): tcp connect error: Connection refused (os error 111)", "provider unreachable"),
            ("Stripe refused GET /v1/customers to the API key of app a (401)", "refused by the provider"),
            ("gave up after 3 attempts", "sync error"),
        ] {
            let shown = error_category(message);
            assert_eq!(shown, category, "{message}");
            assert!(!shown.contains("http") && !shown.contains("127.0.0.1"));
        }
    }
}
