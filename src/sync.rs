//! Asking for a sync: checking an app and its resources, enqueueing the job, and waiting for it to
//! end. The HTTP API, the CLI and the scheduler all go through here.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::config::SyncMode;
use crate::context::Context;
use crate::store::job_status;
use crate::store::jobs::{self, NewJob};
use crate::store::StoreError;

/// A checked sync request.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// The app.
    pub app_key: String,
    /// Full or incremental.
    pub mode: SyncMode,
    /// The resources, one task each, in the connector's order.
    pub resource_types: Vec<String>,
}

/// Why a sync request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No app has this key.
    #[error("unknown app_key {0:?}")]
    UnknownApp(String),
    /// The app's connector has no such resource.
    #[error("unknown resource {resource:?} for app {app_key} (known: {known})")]
    UnknownResource {
        /// The app.
        app_key: String,
        /// The resource asked for.
        resource: String,
        /// The resources the connector has.
        known: String,
    },
    /// An empty resource list.
    #[error("resource_types is empty")]
    NoResources,
}

/// Checks a sync request: the app exists, every resource is one of its connector's. With no
/// resources named, the app's `sync_resources` are synced.
///
/// # Errors
///
/// A [`PlanError`] naming what is wrong.
pub fn plan(
    ctx: &Context,
    app_key: &str,
    mode: SyncMode,
    resources: Option<&[String]>,
) -> Result<SyncPlan, PlanError> {
    let (app, connector) = ctx
        .app(app_key)
        .ok_or_else(|| PlanError::UnknownApp(app_key.to_string()))?;
    let all = connector.resources();
    let resource_types = match resources {
        None => app.sync_resources.clone(),
        Some([]) => return Err(PlanError::NoResources),
        Some(list) => {
            if let Some(bad) = list
                .iter()
                .find(|n| !all.iter().any(|r| r.name == n.as_str()))
            {
                return Err(PlanError::UnknownResource {
                    app_key: app_key.to_string(),
                    resource: bad.clone(),
                    known: all.iter().map(|r| r.name).collect::<Vec<_>>().join(", "),
                });
            }
            // A Connect app's job lists its connected accounts first: their tasks hang off it.
            let connect = app.connect.is_some();
            all.iter()
                .filter(|r| list.iter().any(|n| n == r.name) || (connect && r.connected_accounts))
                .map(|r| r.name.to_string())
                .collect()
        }
    };
    Ok(SyncPlan {
        app_key: app_key.to_string(),
        mode,
        resource_types,
    })
}

/// Enqueues a job for a checked plan; `trigger` records who asked (`api`, `cli`, `schedule`).
///
/// # Errors
///
/// A database error; nothing is enqueued then.
pub async fn enqueue(ctx: &Context, plan: &SyncPlan, trigger: &str) -> Result<Uuid, StoreError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let id = jobs::create_job(
        &*tx,
        &NewJob {
            app_key: &plan.app_key,
            mode: plan.mode,
            resource_types: &plan.resource_types,
            trigger,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(job = %id, app = %plan.app_key, mode = plan.mode.as_str(), "sync job enqueued");
    Ok(id)
}

/// True for the statuses a job ends in.
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// Polls a job until it ends and returns its final status document (with its tasks); `progress`
/// sees every document read on the way.
///
/// # Errors
///
/// A database error. A job that vanished (deleted meanwhile) returns `Value::Null`.
pub async fn wait_for_end(
    ctx: &Context,
    job_id: Uuid,
    mut progress: impl FnMut(&Value),
) -> Result<Value, StoreError> {
    loop {
        let doc = {
            let client = ctx.pool.get().await?;
            job_status::job_document(&**client, job_id, true).await?
        };
        let Some(doc) = doc else {
            return Ok(Value::Null);
        };
        progress(&doc);
        if doc["status"].as_str().is_some_and(is_final) {
            return Ok(doc);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
