//! `serve`: the daemon itself. Migrates the schema, then runs the HTTP listener, the worker pool and
//! the scheduler side by side until the cancellation token fires, and returns once both have stopped cleanly
//! (running tasks checkpointed and released, in-flight requests answered).

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::worker::Worker;
use crate::{db, http, scheduler};

/// Runs the daemon on a bound listener until `cancel`.
///
/// # Errors
///
/// When the schema cannot be migrated (the database is unreachable at start-up).
pub async fn run(
    ctx: Context,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    db::migrate(&ctx.config.database.target).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, apps = ctx.config.apps.len(), "supasaasy listening");
    let worker = tokio::spawn(Worker::new(ctx.clone()).run(cancel.clone()));
    let scheduler = tokio::spawn(scheduler::run(ctx.clone(), cancel.clone()));
    let grace = ctx.config.server.shutdown_grace;
    let ctx_events = ctx.ops.events.clone();
    let listener = tokio::spawn(http::serve(listener, ctx, cancel.clone()));
    cancel.cancelled().await;
    // In-flight requests are answered; running tasks checkpoint the page in hand and release
    // themselves. A task that cannot within the grace period is left to its lease, which another
    // worker takes over when it expires.
    let stopped = tokio::time::timeout(grace, async {
        let _ = listener.await;
        let _ = worker.await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("still busy after {grace:?}; exiting anyway");
    }
    scheduler.abort();
    ctx_events.flush(std::time::Duration::from_secs(5)).await;
    tracing::info!("supasaasy stopped");
    Ok(())
}
