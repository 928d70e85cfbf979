//! What one webhook request leaves behind: its count in the metrics, an integration event, and
//! with `[webhook_logging]` on a row of the request log.
//!
//! Rows cost whoever sends, so strangers get few of them: a request to an app that is not
//! configured is only counted (`supasaasy_webhooks_total{app_key="unknown"}`); a request refused
//! before its signature verified gets rows only while its app is within [`super::rejections`]'s
//! rate, and its log row never holds the body (only a verified body is stored). A verified
//! request always gets its rows.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde_json::{json, Map, Value};

use super::rejections::Rejections;
use super::util::{ApiError, Resp};
use crate::context::Context;
use crate::providers;
use crate::store::events::{self, WebhookLog};

/// Header names whose values the request log keeps; every other header is logged as
/// `[redacted]` (an allow-list: a header a proxy adds to carry credentials, whatever its name,
/// never reaches the log).
const SHOWN: [&str; 13] = [
    "accept",
    "accept-encoding",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "host",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
];

/// What the events log and the metrics record of one webhook request.
#[derive(Default)]
pub(super) struct Seen {
    /// The signature checked out: the request came from the provider.
    pub(super) verified: bool,
    /// The provider's event id, once parsed.
    pub(super) event_id: Option<String>,
    /// The provider's event type, once parsed.
    pub(super) event_type: Option<String>,
    /// The objects the event concerns.
    pub(super) object_ids: Vec<String>,
    /// What applying it did.
    pub(super) action: Option<&'static str>,
    /// Why a mapped event was ignored (its object is not what its type promises).
    pub(super) ignored_reason: Option<String>,
}

/// Records a webhook's outcome: `applied`, `ignored`, `duplicate` or `stale` when it was
/// answered 200, `rejected` with the reason when it was refused, `failed` when it must be
/// delivered again. A refused signature also counts towards the rejection alert. Answers whether
/// the request gets rows (and so a request log row): false for an unknown app, and for a refusal
/// past its app's rate.
pub(super) fn record(
    ctx: &Context,
    rejections: &Arc<Rejections>,
    app_key: &str,
    seen: &Seen,
    err: Option<&ApiError>,
) -> bool {
    let ops = &ctx.ops;
    let event_type = seen.event_type.as_deref().unwrap_or("webhook.rejected");
    let (outcome, reason) = match (err, seen.action) {
        (None, Some(action)) => (action, seen.ignored_reason.as_deref()),
        (None, None) => ("applied", None),
        (Some(e), _) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
            ("failed", Some(e.message()))
        }
        (Some(e), _) => ("rejected", Some(e.message())),
    };
    let Some((app, _)) = ctx.app(app_key) else {
        // An unknown app in the URL is the caller's text: counted, never stored.
        ops.metrics.webhook("unknown", event_type, outcome);
        return false;
    };
    let app_key = app.app_key.as_str();
    ops.metrics.webhook(app_key, event_type, outcome);
    if err.is_some_and(|e| e.status() == StatusCode::UNAUTHORIZED) {
        ops.alerts
            .webhook_rejected(app_key, reason.unwrap_or_default());
    }
    if !seen.verified && !rejections.admit(app_key, reason.unwrap_or_default()) {
        ops.metrics.webhook_unrecorded(app_key);
        return false;
    }
    let mut detail = Map::new();
    if let Some(id) = &seen.event_id {
        detail.insert("event_id".into(), json!(id));
    }
    match seen.object_ids.as_slice() {
        [] => {}
        [one] => {
            detail.insert("object_id".into(), json!(one));
        }
        many => {
            detail.insert("object_ids".into(), json!(many));
        }
    }
    if let Some(reason) = reason {
        detail.insert("reason".into(), json!(reason));
    }
    if let Some(e) = err {
        detail.insert("status".into(), json!(e.status().as_u16()));
    }
    ops.events.record(
        Some(app_key),
        app.connector.service,
        event_type,
        outcome,
        Value::Object(detail),
    );
    true
}

/// What the request log keeps of a request, taken before its body is read.
pub(super) struct Logged {
    started: Instant,
    method: String,
    path: String,
    headers: HeaderMap,
}

impl Logged {
    /// The request as the log will show it.
    pub(super) fn of(req: &Request<Incoming>) -> Logged {
        Logged {
            started: Instant::now(),
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            headers: req.headers().clone(),
        }
    }

    /// Writes the request's row: its answer, and the body when it verified (`None` otherwise).
    pub(super) async fn write(
        self,
        ctx: &Context,
        app_key: &str,
        body: Option<Bytes>,
        resp: &Resp,
        error: Option<String>,
    ) {
        let log = WebhookLog {
            app_key: ctx.config.app(app_key).map(|a| a.app_key.as_str()),
            method: &self.method,
            path: &self.path,
            headers: redacted_headers(&self.headers),
            body: body.map(|b| String::from_utf8_lossy(&b).into_owned()),
            status: resp.status().as_u16(),
            error,
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
        };
        match ctx.pool.get().await {
            Ok(client) => {
                if let Err(e) = events::log_webhook(&**client, &log).await {
                    tracing::warn!(error = %e, "could not write the webhook log");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not write the webhook log"),
        }
    }
}

fn redacted_headers(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        let signature = providers::signature_headers().any(|h| h == name);
        let shown = if SHOWN.contains(&name) && !signature {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        } else {
            "[redacted]".to_string()
        };
        map.insert(name.to_string(), Value::String(shown));
    }
    Value::Object(map)
}
