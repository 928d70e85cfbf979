//! One client connection, from accept to close, and the bounds that keep it from holding a slot:
//! at most `server.max_connections_per_ip` open per client address ([`PerAddress`]); at most
//! `server.max_requests_per_connection` requests, keep-alive and pipelined alike (the last is
//! answered with `Connection: close`); an answer the client reads none of for
//! `server.read_timeout_seconds` ends the connection ([`Stall`]); and past
//! `server.connection_max_seconds` the connection closes once the request in hand is answered,
//! its answer given `read_timeout` to be read after its handler returns.
//!
//! Hyper bounds the rest: the headers of each request (the first and every keep-alive one) must
//! arrive within `read_timeout`, so an idle connection closes after it; a body is read with the
//! same timeout by the route that reads it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::routes;
use super::webhook::Intake;
use crate::context::Context;

/// Serves one accepted connection until it ends, the daemon stops, or a bound closes it.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Context,
    intake: Arc<Intake>,
    cancel: CancellationToken,
) {
    let server = &ctx.config.server;
    let (read_timeout, max_requests, max_age) = (
        server.read_timeout,
        server.max_requests_per_connection,
        server.connection_max_age,
    );
    let metrics = ctx.ops.metrics.clone();
    let served = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let handlers = busy.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let (ctx, intake, served, busy) =
            (ctx.clone(), intake.clone(), served.clone(), busy.clone());
        async move {
            let _busy = Busy::enter(busy);
            let n = served.fetch_add(1, Ordering::Relaxed) + 1;
            let mut resp = routes::handle(&ctx, &intake, req).await;
            if n >= max_requests {
                // Hyper reads no further request, pipelined or not, and closes once this is sent.
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let stalled = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Stall::new(stream, read_timeout, stalled.clone()));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = tokio::time::sleep(max_age) => {
            conn.as_mut().graceful_shutdown();
            let Some(result) = finish(conn, &handlers, read_timeout).await else {
                tracing::debug!(%peer, "connection closed: past server.connection_max_seconds");
                metrics.connection_closed("max_age");
                return;
            };
            result
        }
    };
    if stalled.load(Ordering::Relaxed) {
        tracing::debug!(%peer, "connection closed: the client read nothing of its answer");
        metrics.connection_closed("stalled");
    } else if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Drives a connection told to shut down gracefully: a handler still running (an `immediate`
/// sync) may finish, then its answer gets at least `read_timeout` to be read. `None` when the
/// connection had to be dropped.
async fn finish<F>(
    mut conn: Pin<&mut F>,
    handlers: &AtomicUsize,
    read_timeout: Duration,
) -> Option<Result<(), hyper::Error>>
where
    F: Future<Output = Result<(), hyper::Error>>,
{
    let mut was_busy = true;
    loop {
        tokio::select! {
            r = conn.as_mut() => return Some(r),
            () = tokio::time::sleep(read_timeout) => {}
        }
        let busy = handlers.load(Ordering::Relaxed) > 0;
        if !busy && !was_busy {
            return None;
        }
        was_busy = busy;
    }
}

/// Counts a running handler while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::Relaxed);
        Busy(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections open per client address. Holds an entry only while its address has a connection
/// open, so it is never larger than the listener's connection limit.
pub(super) struct PerAddress {
    /// `server.max_connections_per_ip`.
    max: usize,
    /// Open connections by address.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address; dropping it frees its place.
pub(super) struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A table allowing `max` connections per address.
    pub(super) fn new(max: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection of `ip`, or `None` when it has `max` open. An IPv4
    /// address mapped into IPv6 counts as the IPv4 address.
    pub(super) fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            ip,
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A client stream whose writes fail once one has waited `limit` for the client to read: an
/// answer the client reads none of (a client that pipelines requests and never reads their
/// answers) ends its connection instead of holding it for good. Any progress starts the wait
/// again.
pub(super) struct Stall<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write waits for the client.
    waiting: Option<Pin<Box<Sleep>>>,
    /// Set when a write timed out, for the log and the metrics.
    stalled: Arc<AtomicBool>,
}

impl<T> Stall<T> {
    pub(super) fn new(inner: T, limit: Duration, stalled: Arc<AtomicBool>) -> Stall<T> {
        Stall {
            inner,
            limit,
            waiting: None,
            stalled,
        }
    }

    /// Passes a finished write through, and fails a pending one that has waited too long.
    fn guard<R>(
        &mut self,
        cx: &mut TaskContext<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.waiting = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.waiting = None;
                self.stalled.store(true, Ordering::Relaxed);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client read none of its answer in time",
                )))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_frees_it_on_close() {
        let table = PerAddress::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = table.enter(a).unwrap();
        let second = table
            .enter(mapped)
            .expect("the same address, mapped: its second place");
        assert!(table.enter(a).is_none(), "a third is refused");
        let other = table.enter(b).expect("another address is not affected");
        drop(first);
        let again = table.enter(a).expect("a closed connection frees its place");
        drop((second, other, again));
        assert_eq!(table.addresses(), 0, "no entry outlives its connections");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_reads_fails_after_the_limit() {
        let (server, mut client) = tokio::io::duplex(64);
        let stalled = Arc::new(AtomicBool::new(false));
        let mut guarded = Stall::new(server, Duration::from_secs(15), stalled.clone());
        // A reader that takes a little at a long interval keeps the writes going.
        let answer = vec![b'x'; 64 * 20];
        let reader = async {
            let mut got = 0;
            let mut buf = [0u8; 64];
            while got < answer.len() {
                tokio::time::sleep(Duration::from_secs(10)).await;
                got += client.read(&mut buf).await.unwrap();
            }
            client
        };
        let (written, mut client) = tokio::join!(guarded.write_all(&answer), reader);
        written.expect("progress every 10 s is not a stall");
        assert!(!stalled.load(Ordering::Relaxed));
        // A client that reads nothing: the write fails once it has waited 15 s.
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&answer).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert!(stalled.load(Ordering::Relaxed));
        let mut buf = [0u8; 64];
        assert_eq!(
            client.read(&mut buf).await.unwrap(),
            64,
            "what fit was sent"
        );
    }
}
