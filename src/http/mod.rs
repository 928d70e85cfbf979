//! The HTTP listener: a small hyper 1 server over a bound `TcpListener`.
//!
//! [`serve`] takes the listener and a cancellation token, so tests bind port 0 and the daemon's
//! shutdown is one `cancel()`. On cancel it stops accepting, lets each open connection finish the
//! request in hand (hyper's graceful shutdown), and returns when they have, or after the grace period.
//! A slow client cannot hold a connection: headers, and then a body, must each arrive within
//! `server.read_timeout_seconds`; at most `server.max_connections` connections are served at once.

pub mod openapi;
mod operating;
mod routes;
mod util;
mod webhook;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// Serves the API on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, ctx: Context, cancel: CancellationToken) {
    let grace = ctx.config.server.shutdown_grace;
    let read_timeout = ctx.config.server.read_timeout;
    let slots = Arc::new(Semaphore::new(ctx.config.server.max_connections));
    let mut connections = JoinSet::new();
    loop {
        // At most max_connections at once: the next accept waits for a free slot.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = cancel.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let (ctx, cancel) = (ctx.clone(), cancel.clone());
        connections.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(routes::handle(&ctx, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("closing connections still open after {grace:?}");
    }
}
