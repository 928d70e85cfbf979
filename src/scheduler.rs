//! The scheduler inside `serve`: fires `[[sync_schedules]]` at their cron times and runs the
//! periodic upkeep: retention of the webhook log, of seen event ids, of the integration events and
//! of ended jobs and schedule ticks, and reading the circuits other daemons opened or closed.
//!
//! Every daemon sharing a database runs the same schedules; [`store::schedules::fire`] makes each
//! tick enqueue at most one job across all of them. A tick missed while a daemon was down is not
//! replayed: the next one comes on time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::ScheduleConfig;
use crate::context::Context;
use crate::ops::breaker;
use crate::store::jobs::{self, NewJob};
use crate::store::schedules::{self, TickOutcome};
use crate::store::{events, integration_events, StoreError};

/// How often retention runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(3600);
/// Integration events deleted per statement, so retention never holds a long lock.
const PRUNE_BATCH: i64 = 5_000;
/// Seen event ids are kept a little longer than Stripe keeps events (30 days).
const EVENT_IDS_KEPT_DAYS: u32 = 31;

/// The key a schedule's ticks are recorded under: the same on every daemon with the same config.
pub fn schedule_key(s: &ScheduleConfig) -> String {
    format!("{}|{}|{}", s.app_key, s.cron, s.mode.as_str())
}

/// Handles one tick of `schedule` due at `fire_at`.
///
/// # Errors
///
/// A database error.
pub async fn fire(
    ctx: &Context,
    schedule: &ScheduleConfig,
    fire_at: DateTime<Utc>,
) -> Result<TickOutcome, StoreError> {
    let resources = ctx
        .config
        .app(&schedule.app_key)
        .map(|a| a.sync_resources.clone())
        .unwrap_or_default();
    let mut client = ctx.pool.get().await?;
    let job = NewJob {
        app_key: &schedule.app_key,
        mode: schedule.mode,
        resource_types: &resources,
        trigger: "schedule",
    };
    let outcome = schedules::fire(&mut client, &schedule_key(schedule), fire_at, &job).await?;
    match &outcome {
        TickOutcome::Enqueued(id) => {
            tracing::info!(app = %schedule.app_key, cron = %schedule.cron, job = %id, "scheduled sync enqueued")
        }
        TickOutcome::Skipped(busy) => {
            tracing::info!(app = %schedule.app_key, cron = %schedule.cron, running = %busy, "scheduled sync skipped: a job is still running")
        }
        TickOutcome::AlreadyFired => {}
    }
    Ok(outcome)
}

/// Runs the schedules and the upkeep until `cancel`.
pub async fn run(ctx: Context, cancel: CancellationToken) {
    let schedules: Vec<&ScheduleConfig> = ctx
        .config
        .sync_schedules
        .iter()
        .filter(|s| s.enabled)
        .collect();
    let now = Utc::now();
    let mut next: Vec<Option<DateTime<Utc>>> = schedules
        .iter()
        .map(|s| s.schedule.next_after(&now))
        .collect();
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    let mut share = tokio::time::interval(breaker::SHARE_EVERY);
    loop {
        let due = next
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t);
        let wait = due
            .map(|(_, t)| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(UPKEEP_EVERY);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = upkeep.tick() => { prune(&ctx).await; continue; }
            _ = share.tick() => {
                if let Err(e) = ctx.ops.breakers.adopt_shared().await {
                    tracing::debug!(error = %e, "circuits of other daemons not read");
                }
                continue;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let Some((i, at)) = due else { continue };
        if let Err(e) = fire(&ctx, schedules[i], at).await {
            tracing::warn!(app = %schedules[i].app_key, error = %e, "scheduled sync not enqueued");
        }
        next[i] = schedules[i].schedule.next_after(&at);
    }
}

async fn prune(ctx: &Context) {
    let result = async {
        let client = ctx.pool.get().await?;
        let (logs, ids) = events::prune(
            &**client,
            ctx.config.webhook_logging.retention_days,
            EVENT_IDS_KEPT_DAYS,
        )
        .await?;
        let days = ctx.config.events.retention_days;
        let events = integration_events::prune(&**client, days, PRUNE_BATCH).await?;
        let (mut jobs, mut ticks) = (0, 0);
        loop {
            let days = ctx.config.worker.job_retention_days;
            let (j, t) = jobs::prune_jobs(&**client, days, PRUNE_BATCH).await?;
            jobs += j;
            ticks += t;
            if j < PRUNE_BATCH as u64 && t < PRUNE_BATCH as u64 {
                break;
            }
        }
        Ok::<_, StoreError>((logs, ids, events, jobs, ticks))
    }
    .await;
    match result {
        Ok((logs, ids, events, jobs, ticks)) if logs + ids + events + jobs + ticks > 0 => {
            tracing::info!(
                webhook_logs = logs,
                event_ids = ids,
                integration_events = events,
                jobs,
                schedule_ticks = ticks,
                "pruned old rows"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "upkeep skipped"),
    }
}
