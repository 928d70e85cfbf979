//! The HTTP loop both fakes run: a multi-threaded runtime of its own on a dedicated thread, so a
//! test that blocks its own thread (waiting on a child process, say) never stalls the fake.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// A server thread: stops when [`Server::shutdown`] is awaited or when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    /// Where it listens.
    addr: std::net::SocketAddr,
    /// Stops the server thread when sent to or dropped.
    stop: Option<oneshot::Sender<()>>,
    /// Resolves once the server thread has closed the listener and every connection.
    stopped: Option<oneshot::Receiver<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free one) and serves `handle` on a thread named `name`.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound or the server thread cannot start.
    pub(crate) async fn spawn<S, F, Fut>(
        name: &str,
        addr: std::net::SocketAddr,
        shared: Arc<S>,
        handle: F,
    ) -> std::io::Result<Server>
    where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        let (ready_tx, ready) = oneshot::channel();
        let worker_name = format!("{name}-worker");
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                run(&worker_name, listener, shared, handle, ready_tx, stop_rx);
                let _ = stopped_tx.send(());
            })?;
        ready
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other(format!("the {name} thread died"))))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            stopped: Some(stopped),
        })
    }

    /// Where it listens.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops the server and waits until the listener and every connection are closed.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping the sender is enough to stop the thread; there is no waiting in `drop`.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs `handle` for every request on `listener`, on the current thread and a runtime of its own
/// (threads named `thread_name`), until `stop` resolves (sent to or dropped). Reports on `ready`
/// whether it could start.
fn run<S, F, Fut>(
    thread_name: &str,
    listener: std::net::TcpListener,
    shared: Arc<S>,
    handle: F,
    ready: oneshot::Sender<std::io::Result<()>>,
    stop: oneshot::Receiver<()>,
) where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let started = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(thread_name)
        .enable_all()
        .build()
        .and_then(|runtime| {
            let listener = runtime.block_on(async { TcpListener::from_std(listener) })?;
            Ok((runtime, listener))
        });
    let (runtime, listener) = match started {
        Ok(started) => started,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    runtime.block_on(async move {
        tokio::select! {
            () = serve(listener, shared, handle) => {}
            _ = stop => {}
        }
    });
    // Dropping the runtime here drops every connection task before `run` returns.
}

/// Serves connections until dropped; dropping it also drops (and so aborts) every open
/// connection.
async fn serve<S, F, Fut>(listener: TcpListener, shared: Arc<S>, handle: F)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
