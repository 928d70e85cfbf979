//! The routes of SPEC.md's API table and their error codes.
//!
//! Every answer is JSON; errors are `{"error": ...}`; internal error text is logged, never returned.
//! Admin routes check the bearer key before they read the body.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::util::{
    check_admin, error, json_response, method_not_allowed, parse_limit, query_pairs, read_json,
    store_error, ApiError, Resp,
};
use super::webhook::{self, Intake};
use super::{openapi, operating};
use crate::config::SyncMode;
use crate::context::Context;
use crate::store::job_status::{self, JobFilter};
use crate::store::jobs::{self, CancelOutcome};
use crate::sync;

/// Routes one request.
pub async fn handle(ctx: &Context, intake: &Intake, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let admin = |req: &Request<Incoming>| check_admin(req, &ctx.config.server.admin_api_keys);
    let result = match (segments.as_slice(), &method) {
        (["webhook", app_key], &Method::POST) => {
            Ok(webhook::handle(ctx, intake, app_key, false, req).await)
        }
        (["webhook", app_key, "connect"], &Method::POST) => {
            Ok(webhook::handle(ctx, intake, app_key, true, req).await)
        }
        (["webhook", _] | ["webhook", _, "connect"], _) => Err(method_not_allowed("POST")),
        (["health"], &Method::GET) => Ok(operating::health(ctx, admin(&req).is_ok()).await),
        (["health"], _) => Err(method_not_allowed("GET")),
        (["livez"], &Method::GET) => Ok(operating::livez()),
        (["livez"], _) => Err(method_not_allowed("GET")),
        (["readyz"], &Method::GET) => Ok(operating::readyz(ctx).await),
        (["readyz"], _) => Err(method_not_allowed("GET")),
        (["metrics"], &Method::GET) => Ok(operating::metrics(ctx).await),
        (["metrics"], _) => Err(method_not_allowed("GET")),
        (["openapi.json"], &Method::GET) => Ok(openapi::serve()),
        (["openapi.json"], _) => Err(method_not_allowed("GET")),
        (["events"], &Method::GET) => match admin(&req) {
            Ok(()) => operating::list_events(ctx, &req).await,
            Err(resp) => Err(resp),
        },
        (["events"], _) => Err(method_not_allowed("GET")),
        (["alerts"], &Method::POST) => match admin(&req) {
            Ok(()) => operating::send_alert(ctx, req).await,
            Err(resp) => Err(resp),
        },
        (["alerts"], _) => Err(method_not_allowed("POST")),
        (["sync"], &Method::POST) => match admin(&req) {
            Ok(()) => create_sync(ctx, req).await,
            Err(resp) => Err(resp),
        },
        (["sync"], _) => Err(method_not_allowed("POST")),
        (["jobs"], &Method::GET) => match admin(&req) {
            Ok(()) => list_jobs(ctx, &req).await,
            Err(resp) => Err(resp),
        },
        (["jobs"], _) => Err(method_not_allowed("GET")),
        (["jobs" | "job-status", id], &Method::GET) => match admin(&req) {
            Ok(()) => get_job(ctx, id, &req).await,
            Err(resp) => Err(resp),
        },
        (["jobs" | "job-status", _], _) => Err(method_not_allowed("GET")),
        (["jobs", id, "cancel"], &Method::POST) => match admin(&req) {
            Ok(()) => cancel_job(ctx, id).await,
            Err(resp) => Err(resp),
        },
        (["jobs", _, "cancel"], _) => Err(method_not_allowed("POST")),
        _ => Err(error(StatusCode::NOT_FOUND, format!("no route {path}"))),
    };
    let resp = result.unwrap_or_else(Resp::from);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    app_key: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    resource_types: Option<Vec<String>>,
    #[serde(default)]
    immediate: bool,
    /// With `immediate`, how long to wait for the job to end before answering 202 as a call
    /// without it does (default [`DEFAULT_WAIT_SECONDS`], at most [`MAX_WAIT_SECONDS`]).
    #[serde(default)]
    wait_seconds: Option<i64>,
}

/// How long `"immediate": true` waits for its job by default.
const DEFAULT_WAIT_SECONDS: i64 = 300;
/// The longest `wait_seconds` accepted: an hour, past which a client should poll the job.
const MAX_WAIT_SECONDS: i64 = 3600;

async fn create_sync(ctx: &Context, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let request: SyncRequest = read_json(ctx, req).await?;
    let wait_seconds = request.wait_seconds.unwrap_or(DEFAULT_WAIT_SECONDS);
    if !(0..=MAX_WAIT_SECONDS).contains(&wait_seconds) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("wait_seconds must be between 0 and {MAX_WAIT_SECONDS}, got {wait_seconds}"),
        ));
    }
    let mode = match request.mode.as_deref() {
        None => SyncMode::Incremental,
        Some(m) => m
            .parse()
            .map_err(|e: String| error(StatusCode::BAD_REQUEST, e))?,
    };
    let plan = sync::plan(
        ctx,
        &request.app_key,
        mode,
        request.resource_types.as_deref(),
    )
    .map_err(|e| match e {
        sync::PlanError::UnknownApp(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        sync::PlanError::UnknownResource { .. } | sync::PlanError::NoResources => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
    })?;
    let job_id = sync::enqueue(ctx, &plan, "api")
        .await
        .map_err(store_error)?;
    let mut status = "pending".to_string();
    if request.immediate {
        // Bounded: with no worker running (or a long backfill) the answer is the 202 of a call
        // without `immediate`, not a request that hangs.
        let wait = Duration::from_secs(wait_seconds.unsigned_abs());
        let ended = tokio::time::timeout(
            wait,
            sync::wait_for_end(ctx, job_id, |doc| {
                if let Some(s) = doc["status"].as_str() {
                    status = s.to_string();
                }
            }),
        )
        .await;
        if let Ok(doc) = ended {
            let doc = doc.map_err(store_error)?;
            return Ok(json_response(StatusCode::OK, &doc));
        }
    }
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({
            "job_id": job_id.to_string(),
            "app_key": plan.app_key,
            "mode": plan.mode.as_str(),
            "status": status,
            "total_tasks": plan.resource_types.len(),
            "resource_types": plan.resource_types,
        }),
    ))
}

fn parse_job_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            format!("job id {id:?} is not a UUID"),
        )
    })
}

async fn get_job(ctx: &Context, id: &str, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let job_id = parse_job_id(id)?;
    let mut include_tasks = false;
    for (k, v) in query_pairs(req.uri().query())? {
        if k == "include_tasks" {
            include_tasks = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                _ => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        "include_tasks must be true or false",
                    ))
                }
            };
        }
    }
    let client = ctx.pool.get().await.map_err(|e| store_error(e.into()))?;
    match job_status::job_document(&**client, job_id, include_tasks).await {
        Ok(Some(doc)) => Ok(json_response(StatusCode::OK, &doc)),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, format!("no job {job_id}"))),
        Err(e) => Err(store_error(e)),
    }
}

async fn list_jobs(ctx: &Context, req: &Request<Incoming>) -> Result<Resp, ApiError> {
    let mut filter = JobFilter {
        limit: 20,
        ..JobFilter::default()
    };
    for (k, v) in query_pairs(req.uri().query())? {
        match k.as_str() {
            "app_key" => filter.app_key = Some(v),
            "status" => {
                if !["pending", "processing", "completed", "failed", "cancelled"]
                    .contains(&v.as_str())
                {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!("unknown status {v:?}"),
                    ));
                }
                filter.status = Some(v);
            }
            "limit" => filter.limit = parse_limit(&v)?,
            other => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown filter {other:?}"),
                ))
            }
        }
    }
    let client = ctx.pool.get().await.map_err(|e| store_error(e.into()))?;
    let jobs = job_status::list_jobs(&**client, &filter)
        .await
        .map_err(store_error)?;
    Ok(json_response(StatusCode::OK, &json!({ "jobs": jobs })))
}

async fn cancel_job(ctx: &Context, id: &str) -> Result<Resp, ApiError> {
    let job_id = parse_job_id(id)?;
    let mut client = ctx.pool.get().await.map_err(|e| store_error(e.into()))?;
    match jobs::cancel_job(&mut client, job_id)
        .await
        .map_err(store_error)?
    {
        CancelOutcome::Cancelled => {
            let doc = job_status::job_document(&**client, job_id, false)
                .await
                .map_err(store_error)?
                .unwrap_or(Value::Null);
            Ok(json_response(StatusCode::OK, &doc))
        }
        CancelOutcome::AlreadyEnded(status) => Err(error(
            StatusCode::CONFLICT,
            format!("job {job_id} already ended: {status}"),
        )),
        CancelOutcome::NotFound => Err(error(StatusCode::NOT_FOUND, format!("no job {job_id}"))),
    }
}
