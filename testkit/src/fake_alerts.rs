//! A fake Slack / Microsoft Teams incoming-webhook receiver.
//!
//! [`FakeAlerts`] accepts `POST`s on any path, records each one (path, body, when it arrived) and
//! answers as the test says: by default like the real services (200 `ok` on a Slack-style
//! `/services/...` path, 202 on any other path, as Teams Workflows do), or a status of the test's
//! choice, 429 with a `Retry-After`, or nothing for a while ([`Answer::Hang`]). Scripted answers
//! ([`FakeAlerts::answer_next`]) are used first, then the standing one ([`FakeAlerts::set_answer`]).
//! Like the other fakes it serves from a thread and runtime of its own.
//!
//! ```no_run
//! # async fn demo() {
//! use supasaasy_testkit::fake_alerts::{Answer, FakeAlerts};
//!
//! let receiver = FakeAlerts::start().await;
//! let slack_url = receiver.url("/services/T000/B000/XXXX");
//! receiver.answer_next([Answer::Status(500)]);
//! # }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::fake_stripe::lock;
use crate::http_server::Server;

/// How the receiver answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Like the real service: 200 `ok` on a `/services/...` path (Slack), 202 elsewhere (Teams).
    Ok,
    /// This status, with a short text body that quotes the request's path.
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Nothing for this long, then as [`Answer::Ok`].
    Hang(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The URL path (no query).
    pub path: String,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

/// A running fake receiver. Stops when dropped.
#[derive(Debug)]
pub struct FakeAlerts {
    /// Requests and answers, shared with the server thread.
    shared: Arc<Shared>,
    /// The server thread; stops when dropped.
    server: Server,
}

#[derive(Debug)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    standing: Mutex<Answer>,
    /// Answers sent (a hang counts when it ends).
    answered: AtomicU64,
}

impl FakeAlerts {
    /// Serves on `127.0.0.1` on a free port.
    ///
    /// # Panics
    ///
    /// When no local port can be bound or no thread can be started.
    pub async fn start() -> FakeAlerts {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            standing: Mutex::new(Answer::Ok),
            answered: AtomicU64::new(0),
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::spawn("fake-alerts", addr, shared.clone(), handle)
            .await
            .expect("binding 127.0.0.1:0 for the fake alert receiver");
        FakeAlerts { shared, server }
    }

    /// `http://127.0.0.1:PORT{path}`: a webhook URL to configure.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// The answer given once the scripted ones are used up.
    pub fn set_answer(&self, answer: Answer) {
        *lock(&self.shared.standing) = answer;
    }

    /// Answers the next requests (to any path) with these, in order, before the standing answer.
    pub fn answer_next(&self, answers: impl IntoIterator<Item = Answer>) {
        lock(&self.shared.script).extend(answers);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// The requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        lock(&self.shared.received)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Answers sent so far; a hanging request counts once its hang ends.
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Waits until `path` has had at least `n` requests and returns them.
    ///
    /// # Panics
    ///
    /// When that does not happen within `timeout`.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.requests_to(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "{path} got {} requests within {timeout:?}, not {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let at = Instant::now();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    lock(&shared.received).push(Received {
        path: path.clone(),
        body,
        at,
    });
    let answer = lock(&shared.script)
        .pop_front()
        .unwrap_or_else(|| lock(&shared.standing).clone());
    let response = match answer {
        Answer::Ok => ok(&path),
        Answer::Hang(d) => {
            tokio::time::sleep(d).await;
            ok(&path)
        }
        // Echoing the path, token included, as a careless receiver might: what the daemon quotes
        // of an answer must not carry it on.
        Answer::Status(status) => text(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            format!("injected failure at {path}"),
        ),
        Answer::RateLimited { retry_after_secs } => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, "rate_limited".into());
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(RETRY_AFTER, v);
            }
            r
        }
    };
    shared.answered.fetch_add(1, Ordering::SeqCst);
    Ok(response)
}

/// What the real services answer a good request.
fn ok(path: &str) -> Response<Full<Bytes>> {
    if path.starts_with("/services/") {
        text(StatusCode::OK, "ok".into())
    } else {
        text(StatusCode::ACCEPTED, String::new())
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
