//! `POST /webhook/{app_key}` and `POST /webhook/{app_key}/connect` (a Stripe Connect platform's
//! endpoint for its connected accounts' events, with its own secret): verify the provider's
//! signature on the raw bytes, then apply the event in the account it names.
//!
//! Nothing is parsed or written before the signature checks out, and nothing of the body is read
//! before what can be checked without it is: the app exists, it has a secret for this route, the
//! signature header is there, readable and (Stripe) timely, the `Content-Length` is within
//! `server.max_body_bytes`, and the body's bytes fit the process's webhook body budget
//! ([`super::budget`]). The answer is 200 only once the event is durably applied (or known to be
//! a duplicate, or of a type the daemon does not map); a database or provider failure answers 503
//! so the provider delivers it again later.

use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{HeaderMap, Request, StatusCode};
use serde_json::{json, Map, Value};
use supasaasy_connector::{find_resource, Connector, WebhookError};

use super::budget::{BodyBudget, Reservation};
use super::util::{error, json_response, read_body, retry_later, ApiError, Resp};
use crate::apply::{ApplyError, Scope};
use crate::config::AppConfig;
use crate::config::ServerConfig;
use crate::connect;
use crate::context::Context;
use crate::providers;
use crate::store::events::{self, WebhookLog};

/// An event created at or after this (2100-01-01, Unix seconds) is refused as malformed: no
/// provider sends one, and times near the end of `chrono`'s range overflow.
const LATEST_CREATED: i64 = 4_102_444_800;

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

/// What the webhook route keeps between requests.
pub struct Intake {
    /// Bytes of webhook bodies held at once.
    bodies: BodyBudget,
}

impl Intake {
    /// The route's state for a listener configured by `server`.
    pub fn new(server: &ServerConfig) -> Intake {
        Intake {
            bodies: BodyBudget::new(server.webhook_body_budget_bytes),
        }
    }
}

/// A verified body, kept for the request log, and its share of the budget, returned when both
/// are dropped.
struct Held {
    body: Bytes,
    _reservation: Reservation,
}

/// What the events log and the metrics record of one webhook request.
#[derive(Default)]
struct Seen {
    /// The provider's event id, once parsed.
    event_id: Option<String>,
    /// The provider's event type, once parsed.
    event_type: Option<String>,
    /// The objects the event concerns.
    object_ids: Vec<String>,
    /// What applying it did.
    action: Option<&'static str>,
    /// Why a mapped event was ignored (its object is not what its type promises).
    ignored_reason: Option<String>,
}

/// Handles one webhook request for `app_key`: records its outcome in the integration events log
/// and the metrics, and logs the request when `[webhook_logging]` is enabled (the body, kept for
/// the log, is a reference-counted buffer: no copy).
pub async fn handle(
    ctx: &Context,
    intake: &Intake,
    app_key: &str,
    connect: bool,
    req: Request<Incoming>,
) -> Resp {
    let mut seen = Seen::default();
    if !ctx.config.webhook_logging.enabled {
        let mut body = None;
        let result = receive(ctx, intake, (app_key, connect), req, &mut body, &mut seen).await;
        record(ctx, app_key, &seen, result.as_ref().err());
        return result.unwrap_or_else(Resp::from);
    }
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let headers = req.headers().clone();
    let mut body = None;
    let result = receive(ctx, intake, (app_key, connect), req, &mut body, &mut seen).await;
    record(ctx, app_key, &seen, result.as_ref().err());
    let (resp, err) = match result {
        Ok(resp) => (resp, None),
        Err(e) => {
            let message = e.message().to_string();
            (Resp::from(e), Some(message))
        }
    };
    let log = WebhookLog {
        app_key: ctx.config.app(app_key).map(|a| a.app_key.as_str()),
        method: &method,
        path: &path,
        headers: redacted_headers(&headers),
        body: body.map(|held: Held| String::from_utf8_lossy(&held.body).into_owned()),
        status: resp.status().as_u16(),
        error: err,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    match ctx.pool.get().await {
        Ok(client) => {
            if let Err(e) = events::log_webhook(&**client, &log).await {
                tracing::warn!(error = %e, "could not write the webhook log");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not write the webhook log"),
    }
    resp
}

/// Records a webhook's outcome: `applied`, `ignored`, `duplicate` or `stale` when it was
/// answered 200, `rejected` with the reason when it was refused, `failed` when it must be
/// delivered again. A refused signature also counts towards the rejection alert.
fn record(ctx: &Context, app_key: &str, seen: &Seen, err: Option<&ApiError>) {
    let ops = &ctx.ops;
    let app = ctx.app(app_key);
    let service = app.map_or("supasaasy", |(a, _)| a.connector.service);
    let event_type = seen.event_type.as_deref().unwrap_or("webhook.rejected");
    let (outcome, reason) = match (err, seen.action) {
        (None, Some(action)) => (action, seen.ignored_reason.as_deref()),
        (None, None) => ("applied", None),
        (Some(e), _) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
            ("failed", Some(e.message()))
        }
        (Some(e), _) => ("rejected", Some(e.message())),
    };
    let Some((app, _)) = app else {
        // An unknown app in the URL: logged without naming it as an app (it is the caller's text).
        let shown: String = app_key.chars().take(64).collect();
        ops.events.record(
            None,
            service,
            event_type,
            outcome,
            json!({"reason": reason, "path_app_key": shown}),
        );
        ops.metrics.webhook("unknown", event_type, outcome);
        return;
    };
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
        Some(&app.app_key),
        service,
        event_type,
        outcome,
        Value::Object(detail),
    );
    ops.metrics.webhook(&app.app_key, event_type, outcome);
    if err.is_some_and(|e| e.status() == StatusCode::UNAUTHORIZED) {
        ops.alerts
            .webhook_rejected(&app.app_key, reason.unwrap_or_default());
    }
}

async fn receive(
    ctx: &Context,
    intake: &Intake,
    (app_key, connect): (&str, bool),
    req: Request<Incoming>,
    raw_body: &mut Option<Held>,
    seen: &mut Seen,
) -> Result<Resp, ApiError> {
    let Some((app, connector)) = ctx.app(app_key) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown app {app_key:?}"),
        ));
    };
    let secret = if connect {
        let Some(settings) = &app.connect else {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("app {app_key:?} has no Stripe Connect ([apps.connect] enabled = true)"),
            ));
        };
        settings.webhook_secret.as_ref()
    } else {
        app.webhook_secret.as_ref()
    };
    let Some(secret) = secret else {
        let key = if connect {
            "connect.webhook_secret_env"
        } else {
            "webhook_secret_env"
        };
        tracing::warn!(app = app_key, "webhook refused: the app has no {key}");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            format!("no webhook secret is configured for this route ({key})"),
        ));
    };
    let signature = req
        .headers()
        .get(connector.signature_header())
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let now = chrono::Utc::now().timestamp();
    connector
        .check_signature_header(signature.as_deref(), now)
        .map_err(|e| webhook_error(app_key, e))?;
    let reservation = reserve_body(ctx, intake, app_key, req.headers()).await?;
    let server = &ctx.config.server;
    let body = read_body(req, server.max_body_bytes, server.read_timeout).await?;
    connector
        .verify_webhook(secret, signature.as_deref(), &body, now)
        .map_err(|e| webhook_error(app_key, e))?;
    *raw_body = Some(Held {
        body: body.clone(),
        _reservation: reservation,
    });
    let event = connector
        .parse_webhook(&body)
        .map_err(|e| webhook_error(app_key, e))?;
    if !(0..LATEST_CREATED).contains(&event.created) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "malformed event: created {} is not a time this daemon accepts (1970 to 2100)",
                event.created
            ),
        ));
    }
    seen.event_id = Some(event.id.clone());
    seen.event_type = Some(event.event_type.clone());
    seen.ignored_reason = event.ignored_reason.clone();
    seen.object_ids = event
        .changes
        .iter()
        .map(|c| c.record.external_id.clone())
        .collect();
    let own = connect::own_account(ctx, app_key).await.map_err(|e| {
        tracing::warn!(app = app_key, error = %e, "webhook not applied");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the app's own account is not known yet; deliver again later",
        )
    })?;
    let connected = match not_the_apps(app, connector.as_ref(), &event, &own) {
        Ok(connected) => connected,
        Err(reason) => {
            tracing::info!(app = app_key, event = %event.id, %reason, "webhook ignored");
            seen.action = Some("ignored");
            seen.ignored_reason = Some(reason);
            return Ok(ack(&event.id, &event.event_type, "ignored"));
        }
    };
    let scope = Scope {
        own: &own,
        connected: connected.as_deref(),
    };
    let outcome = ctx
        .webhooks
        .apply(app_key, scope, connector.clone(), event)
        .await;
    let event_id = seen.event_id.as_deref().unwrap_or_default();
    let event_type = seen.event_type.as_deref().unwrap_or_default();
    match outcome {
        Ok(action) => {
            seen.action = Some(action.as_str());
            tracing::debug!(app = app_key, event = %event_id, r#type = %event_type, action = action.as_str(), "webhook");
            Ok(ack(event_id, event_type, action.as_str()))
        }
        Err(ApplyError::Provider(e)) => {
            tracing::warn!(app = app_key, event = %event_id, error = %e, "webhook not applied");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the provider could not be reached to settle the event's order; deliver again later",
            ))
        }
        Err(e @ (ApplyError::Store(_) | ApplyError::Unavailable(_))) => {
            tracing::warn!(app = app_key, event = %event_id, error = %e, "webhook not applied");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable",
            ))
        }
    }
}

/// Reserves the body's bytes in the budget before any is read: its `Content-Length`, or the
/// largest body accepted when it declares none. A declared length over the limit is refused at
/// once (413); a budget that stays spent for [`super::budget::WAIT`] answers 503.
async fn reserve_body(
    ctx: &Context,
    intake: &Intake,
    app_key: &str,
    headers: &HeaderMap,
) -> Result<Reservation, ApiError> {
    let limit = ctx.config.server.max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()));
    let bytes = match declared {
        None => limit,
        Some(Some(n)) if n <= limit as u64 => n as usize,
        Some(Some(_)) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {limit} bytes"),
            ))
        }
        Some(None) => return Err(error(StatusCode::BAD_REQUEST, "unreadable Content-Length")),
    };
    intake.bodies.reserve(bytes).await.ok_or_else(|| {
        tracing::info!(
            app = app_key,
            "webhook refused: the webhook body budget is spent"
        );
        retry_later("too many webhook bodies arriving at once; deliver again later")
    })
}

/// The 200 that acknowledges an event, saying what became of it.
fn ack(event_id: &str, event_type: &str, action: &str) -> Resp {
    json_response(
        StatusCode::OK,
        &json!({
            "received": true,
            "event_id": event_id,
            "type": event_type,
            "action": action,
        }),
    )
}

/// The connected account an event happened in (`None` for the app's own), or why the event is
/// not the app's to apply: of the other mode than its key (Connect endpoints receive test-mode
/// events on live URLs), or of a connected account the app does not mirror.
fn not_the_apps(
    app: &AppConfig,
    connector: &dyn Connector,
    event: &supasaasy_connector::Event,
    own: &str,
) -> Result<Option<String>, String> {
    if let (Some(key), Some(event)) = (connector.live_mode(), event.livemode) {
        if key != event {
            let mode = |live| if live { "live" } else { "test" };
            return Err(format!(
                "a {}-mode event, and the app's key is a {}-mode key",
                mode(event),
                mode(key)
            ));
        }
    }
    let of_accounts = event
        .changes
        .iter()
        .any(|c| find_resource(connector, c.resource).is_some_and(|r| r.connected_accounts));
    if of_accounts && app.connect.is_none() {
        return Err("a connected account's change, and the app has no Stripe Connect".into());
    }
    let Some(account) = event.account.as_deref().filter(|a| *a != own) else {
        return Ok(None);
    };
    match &app.connect {
        None => Err(format!(
            "an event of connected account {account}, and the app has no Stripe Connect"
        )),
        Some(connect) if !connect.accounts.includes(account) => Err(format!(
            "an event of connected account {account}, which is not in connect.accounts"
        )),
        Some(_) => Ok(Some(account.to_owned())),
    }
}

fn webhook_error(app_key: &str, e: WebhookError) -> ApiError {
    match e {
        WebhookError::BadSignature(reason) => {
            tracing::info!(app = app_key, %reason, "webhook refused: bad signature");
            error(
                StatusCode::UNAUTHORIZED,
                format!("invalid signature: {reason}"),
            )
        }
        WebhookError::Malformed(reason) => error(
            StatusCode::BAD_REQUEST,
            format!("malformed event: {reason}"),
        ),
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
