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

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{HeaderMap, Request, StatusCode};
use serde_json::json;
use supasaasy_connector::{find_resource, surrogates, Connector, WebhookError};

use super::budget::{BodyBudget, Reservation};
use super::rejections::{self, Rejections};
use super::util::{error, json_response, read_body, retry_later, ApiError, Resp};
use super::webhook_log::{self, Logged, Seen};
use crate::apply::{Action, ApplyError, Scope};
use crate::config::AppConfig;
use crate::connect;
use crate::context::Context;
use crate::store::StoreError;

/// An event created at or after this (2100-01-01, Unix seconds) is refused as malformed: no
/// provider sends one, and times near the end of `chrono`'s range overflow.
const LATEST_CREATED: i64 = 4_102_444_800;
/// The longest event id accepted, in bytes. Providers' ids are a few dozen characters; the id keys
/// the table of events seen, whose index refuses entries of a few KiB.
const MAX_EVENT_ID_BYTES: usize = 255;

/// What the webhook route keeps between requests.
pub struct Intake {
    /// Bytes of webhook bodies held at once.
    bodies: BodyBudget,
    /// How many refusals of each app were recorded this minute.
    rejections: Arc<Rejections>,
}

impl Intake {
    /// The route's state for the daemon of `ctx`. Must be called inside a Tokio runtime.
    pub fn new(ctx: &Context) -> Intake {
        let events = ctx.ops.events.clone();
        let services: HashMap<String, &'static str> = ctx
            .config
            .apps
            .iter()
            .map(|a| (a.app_key.clone(), a.connector.service))
            .collect();
        let summarize = move |app_key: &str, count: u64, last_reason: &str| {
            let service = services.get(app_key).copied().unwrap_or("supasaasy");
            events.record(
                Some(app_key),
                service,
                "webhook.rejections_unrecorded",
                "rejected",
                json!({
                    "count": count,
                    "window_seconds": rejections::WINDOW.as_secs(),
                    "last_reason": last_reason,
                }),
            );
        };
        Intake {
            bodies: BodyBudget::new(ctx.config.server.webhook_body_budget_bytes),
            rejections: Rejections::new(Box::new(summarize)),
        }
    }
}

/// A verified body, kept for the request log, and its share of the budget, returned when both
/// are dropped.
struct Held {
    body: Bytes,
    _reservation: Reservation,
}

/// Handles one webhook request for `app_key`: records its outcome in the metrics and, as
/// [`webhook_log`] allows, the integration events log and (with `[webhook_logging]` enabled)
/// the request log (the body, kept for the log, is a reference-counted buffer: no copy).
pub async fn handle(
    ctx: &Context,
    intake: &Intake,
    app_key: &str,
    connect: bool,
    req: Request<Incoming>,
) -> Resp {
    let logged = ctx.config.webhook_logging.enabled.then(|| Logged::of(&req));
    let mut seen = Seen::default();
    let mut held = None;
    let result = receive(ctx, intake, (app_key, connect), req, &mut held, &mut seen).await;
    let kept = webhook_log::record(
        ctx,
        &intake.rejections,
        app_key,
        &seen,
        result.as_ref().err(),
    );
    let (resp, err) = match result {
        Ok(resp) => (resp, None),
        Err(e) => {
            let message = e.message().to_string();
            (Resp::from(e), Some(message))
        }
    };
    if let Some(logged) = logged.filter(|_| kept) {
        let body = held.map(|h: Held| h.body);
        logged.write(ctx, app_key, body, &resp, err).await;
    }
    resp
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
    seen.verified = true;
    *raw_body = Some(Held {
        body: body.clone(),
        _reservation: reservation,
    });
    // Verified: a lone surrogate the provider let into a string is replaced before reading.
    let mut body = body.to_vec();
    surrogates::repair(&mut body);
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
    // An id Postgres cannot store, or too long to index, would fail every delivery of it.
    if event.id.contains('\0') || event.id.len() > MAX_EVENT_ID_BYTES {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "malformed event: its id holds U+0000 or is longer than {MAX_EVENT_ID_BYTES} bytes"
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
    let resources: Vec<&'static str> = event.changes.iter().map(|c| c.resource).collect();
    let outcome = ctx
        .webhooks
        .apply(app_key, scope, connector.clone(), event)
        .await;
    let event_id = seen.event_id.as_deref().unwrap_or_default();
    let event_type = seen.event_type.as_deref().unwrap_or_default();
    match outcome {
        Ok(action) => {
            seen.action = Some(action.as_str());
            if action == Action::Quarantined {
                seen.ignored_reason = Some(
                    "the database refused a value of the event's objects: they were left out and recorded in supasaasy.skipped_entities".into(),
                );
                for resource in resources {
                    ctx.ops
                        .metrics
                        .objects_skipped(app_key, resource, "webhook");
                }
            }
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
        Err(e @ ApplyError::Store(StoreError::Pool(_))) => {
            tracing::warn!(app = app_key, event = %event_id, error = %e, "webhook not applied");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable",
            ))
        }
        Err(e @ (ApplyError::Store(_) | ApplyError::Unavailable(_))) => {
            tracing::warn!(app = app_key, event = %event_id, error = %e, "webhook not applied");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event could not be written to the mirror; deliver it again later",
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
