//! What a running task leans on: the lease heartbeat, the lock of an exclusive resource, and the
//! in-place retries of provider calls.

use std::time::Duration;

use supasaasy_connector::ConnectorError;
use tokio_util::sync::CancellationToken;

use crate::backoff::jitter;
use crate::context::Context;
use crate::store::jobs::{self, ClaimedTask};
use crate::store::locks::SessionLock;
use crate::store::StoreError;

/// Provider calls retried in place before the task is handed back to the queue.
const IN_PLACE_RETRIES: u32 = 4;

/// Takes the lock of an exclusive resource's run, if no run of it holds it: a session advisory
/// lock kept for the run ([`SessionLock`]). If the daemon dies, the connection closes and the
/// lock goes with it.
pub(super) async fn take_exclusive(
    ctx: &Context,
    task: &ClaimedTask,
) -> Result<Option<SessionLock>, StoreError> {
    let key = format!(
        "supasaasy.exclusive:{}:{}",
        task.app_key, task.resource_type
    );
    SessionLock::try_take(&ctx.pool, key).await
}

/// Why a provider call did not succeed.
#[derive(Debug)]
pub(super) enum CallError {
    /// The provider failed, after the in-place retries.
    Provider(ConnectorError),
    /// The app's circuit is open: no request was sent; try again after the delay.
    CircuitOpen(Duration),
}

/// Runs a provider call of `app_key` through its circuit breaker, retrying retryable errors in
/// place with exponential backoff and jitter, and honouring a rate limit's delay. The call's end
/// result (not each retry) counts for or against the circuit.
pub(super) async fn with_retries<T, F, Fut>(
    ctx: &Context,
    app_key: &str,
    cancel: &CancellationToken,
    mut call: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectorError>>,
{
    let first_delay = ctx.config.worker.retry_base;
    let breakers = &ctx.ops.breakers;
    let mut attempt = 0;
    loop {
        let probe = breakers.check(app_key).map_err(CallError::CircuitOpen)?;
        let e = match call().await {
            Ok(v) => {
                breakers.success(app_key);
                return Ok(v);
            }
            Err(e) => e,
        };
        let retry = e.is_retryable() && attempt < IN_PLACE_RETRIES && !cancel.is_cancelled();
        if !retry || (probe && e.is_provider_failure()) {
            if e.is_provider_failure() {
                breakers.failure(app_key, e.message());
            } else {
                // A rate limit or one bad request: the provider is up.
                breakers.success(app_key);
            }
            return Err(CallError::Provider(e));
        }
        let base = first_delay * 2u32.pow(attempt);
        let delay = match &e {
            ConnectorError::RateLimited {
                retry_after: Some(d),
                ..
            } => (*d).max(base),
            _ => base,
        } + jitter(base / 2);
        if matches!(e, ConnectorError::RateLimited { .. }) {
            ctx.ops.metrics.rate_limit_wait(app_key, delay);
        }
        tracing::debug!(error = %e, ?delay, "provider call failed; retrying");
        attempt += 1;
        tokio::time::sleep(delay).await;
    }
}

/// Renews a task's lease in the background while the task runs; `lost` fires when it cannot.
pub(super) struct Heartbeat {
    pub(super) lost: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    pub(super) fn start(ctx: &Context, task: &ClaimedTask, lease: Duration) -> Heartbeat {
        let lost = CancellationToken::new();
        let (ctx, task, flag) = (ctx.clone(), task.clone(), lost.clone());
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let Ok(client) = ctx.pool.get().await else {
                    continue;
                };
                match jobs::heartbeat(&**client, &task, lease.as_secs_f64()).await {
                    Ok(()) => {}
                    Err(StoreError::LostLease) => {
                        flag.cancel();
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "lease heartbeat failed"),
                }
            }
        });
        Heartbeat { lost, handle }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
