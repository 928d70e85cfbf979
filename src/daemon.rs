//! `serve`: the daemon itself. Serves HTTP at once (so probes answer: `/livez` 200, `/readyz` 503),
//! waits for the database (retrying with backoff, a log line per try, while it cannot be reached),
//! migrates or checks the schema, then runs the worker pool and the scheduler beside the listener
//! until the cancellation token fires, and returns once all have stopped cleanly, within
//! `shutdown_grace_seconds` (running tasks checkpointed and released, in-flight requests answered,
//! then the background parts: alerts already raised sent or recorded as failed, the events log
//! written last). A database that refuses us for good (a
//! certificate, a password, a schema this binary cannot run against) stops start-up with one line.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::worker::Worker;
use crate::{db, http, scheduler};

/// Runs the daemon on a bound listener until `cancel`.
///
/// # Errors
///
/// When the database refuses us for good, or the schema cannot be migrated or run against.
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, apps = ctx.config.apps.len(), "supasaasy listening");
    let grace = ctx.config.server.shutdown_grace;
    let listener = tokio::spawn(http::serve(listener, ctx.clone(), cancel.clone()));
    let waited = wait_for_database(&ctx, &cancel).await;
    if waited.is_err() || cancel.is_cancelled() {
        cancel.cancel();
        let _ = listener.await;
        return waited;
    }
    tracing::info!(%addr, "supasaasy ready: the schema is in place, workers and schedules start");
    // Each Connect app's own account is read (and its older rows given it) now, rather than by
    // the first task or webhook that needs it; those wait for it either way.
    for app in ctx.config.apps.iter().filter(|a| a.connect.is_some()) {
        let (ctx, app_key) = (ctx.clone(), app.app_key.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::connect::own_account(&ctx, &app_key).await {
                tracing::warn!(app = %app_key, error = %e, "the app's own account is not known yet; the first task or webhook tries again");
            }
        });
    }
    let worker = tokio::spawn(Worker::new(ctx.clone()).run(cancel.clone()));
    ctx.ops
        .stopping
        .spawn(scheduler::run(ctx.clone(), cancel.clone()));
    cancel.cancelled().await;
    // In-flight requests are answered; running tasks checkpoint the page in hand and release
    // themselves. A task that cannot within the grace period is left to its lease, which another
    // worker takes over when it expires.
    let deadline = tokio::time::Instant::now() + grace;
    let stopped = tokio::time::timeout_at(deadline, async {
        let _ = listener.await;
        let _ = worker.await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("still busy after {grace:?}; exiting anyway");
    }
    // Then the background parts, by the same deadline: the scheduler ends between schedules, the
    // webhook lanes apply what is queued, alerts already raised are sent or recorded as failed;
    // the events log is written last.
    ctx.ops.stop(deadline).await;
    tracing::info!("supasaasy stopped");
    Ok(())
}

/// Migrates (or checks) the schema, retrying while the database cannot be reached, with backoff
/// from half a second up to 30 seconds; returns early, without error, when the daemon is stopped
/// meanwhile.
async fn wait_for_database(ctx: &Context, cancel: &CancellationToken) -> anyhow::Result<()> {
    let database = &ctx.config.database;
    let mut delay = Duration::from_millis(500);
    for attempt in 1.. {
        match db::prepare(&database.target, database.migrate).await {
            Ok(()) => return Ok(()),
            Err(e) if db::is_transient(&e) => {
                let error = format!("{e:#}");
                tracing::warn!(attempt, %error, retry_in = ?delay, "the database cannot be reached yet");
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    Ok(())
}
