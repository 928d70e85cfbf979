//! The HTTP listener: a small hyper 1 server over a bound `TcpListener`.
//!
//! [`serve`] takes the listener and a cancellation token, so tests bind port 0 and the daemon's
//! shutdown is one `cancel()`. On cancel it stops accepting, lets each open connection finish the
//! request in hand (hyper's graceful shutdown), and returns when they have, or after the grace period.
//! At most `server.max_connections` connections are served at once, and at most
//! `server.max_connections_per_ip` of them from one client address: a connection past that is
//! answered 503 and closed at once. What bounds each connection (slow or silent clients, its
//! requests, its age) is in [`conn`].

mod budget;
mod conn;
pub mod openapi;
mod operating;
mod rejections;
mod routes;
mod util;
mod webhook;
mod webhook_log;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// The whole answer to a connection its address has no room for: written if the socket takes it
/// at once, never waited on.
const TOO_MANY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: application/json\r\nContent-Length: 51\r\n\r\n\
{\"error\":\"too many connections from this address\"}\n";

/// Serves the API on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, ctx: Context, cancel: CancellationToken) {
    let grace = ctx.config.server.shutdown_grace;
    let slots = Arc::new(Semaphore::new(ctx.config.server.max_connections));
    let per_address = conn::PerAddress::new(ctx.config.server.max_connections_per_ip);
    let intake = Arc::new(webhook::Intake::new(&ctx));
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
        let Some(address_slot) = per_address.enter(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: server.max_connections_per_ip reached");
            ctx.ops.metrics.connection_refused("per_ip");
            refuse(&stream);
            continue;
        };
        let (ctx, intake, cancel) = (ctx.clone(), intake.clone(), cancel.clone());
        connections.spawn(async move {
            conn::serve(stream, peer, ctx, intake, cancel).await;
            drop((slot, address_slot));
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

/// Answers 503 to a connection refused for its address, if the socket takes the answer at once,
/// and closes it (on drop).
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(TOO_MANY);
}
