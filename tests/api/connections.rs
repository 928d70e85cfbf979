//! Clients that try to hold the listener: many connections from one address, connections that
//! pipeline requests and never read the answers, connections kept open forever. Each bound lets
//! another client's `/health` through. The waits here only detect a hang.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use supasaasy_testkit::fake_stripe::StripeData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{spawn_app, Setup, TestApp};
use crate::metrics::{parse, sum};

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

async fn app(server_toml: &str) -> TestApp {
    spawn_app(Setup {
        workers: false,
        server_toml: server_toml.into(),
        ..Setup::stripe(StripeData::empty())
    })
    .await
}

fn addr(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection from 127.0.0.1 with a small receive window that pipelines `requests` requests
/// for the OpenAPI description (50 KB each) and never reads an answer: its answers soon fill
/// every buffer between the daemon and it. The task holds the connection until aborted.
async fn silent_client(to: SocketAddr, requests: usize) -> JoinHandle<()> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    tokio::spawn(async move {
        let pipeline = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
        // Blocks once the daemon stops reading; an error means the daemon closed it.
        let _ = stream.write_all(pipeline.as_bytes()).await;
        std::future::pending::<()>().await;
        drop(stream);
    })
}

/// A client from another address than the silent ones (127.0.0.2).
fn elsewhere() -> reqwest::Client {
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    reqwest::Client::builder()
        .local_address(other)
        .build()
        .unwrap()
}

/// `GET /health` from another client address; its status.
async fn health_from_elsewhere(app: &TestApp) -> u16 {
    let client = elsewhere();
    let resp = tokio::time::timeout(HANG, client.get(format!("{}/health", app.base)).send())
        .await
        .expect("another client is answered while the silent ones hold their connections")
        .unwrap();
    resp.status().as_u16()
}

/// A counter of `/metrics`, scraped from another address than the silent ones.
async fn counted(app: &TestApp, series: &str, reason: &str) -> f64 {
    let url = format!("{}/metrics", app.base);
    let text = elsewhere()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sum(&parse(&text), series, &[("reason", reason)]).unwrap_or(0.0)
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    // The read timeout is long, so only the limit per address can let /health through.
    let app =
        app("max_connections = 8\nmax_connections_per_ip = 4\nread_timeout_seconds = 600\n").await;
    let to = addr(&app);
    let mut silent = Vec::new();
    for _ in 0..12 {
        silent.push(silent_client(to, 2000).await);
    }
    assert_eq!(health_from_elsewhere(&app).await, 200);

    // One more from the silent client's address is refused at once, with 503.
    let mut extra = TcpStream::connect(to).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, extra.read_to_end(&mut answer))
        .await
        .expect("the refused connection is closed at once")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    assert!(
        counted(&app, "supasaasy_http_connections_refused_total", "per_ip").await >= 9.0,
        "the eight silent connections past the limit, and the extra one"
    );
    for task in silent {
        task.abort();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_loses_its_connections() {
    // Every connection the listener serves is held by the silent client, its address allowed
    // them all; a request cap high enough not to end them first.
    let app = app(
        "max_connections = 4\nmax_connections_per_ip = 64\nread_timeout_seconds = 1\n\
         max_requests_per_connection = 100000\n",
    )
    .await;
    let to = addr(&app);
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(silent_client(to, 2000).await);
    }
    assert_eq!(health_from_elsewhere(&app).await, 200);
    assert!(counted(&app, "supasaasy_http_connections_closed_total", "stalled").await >= 1.0);
    for task in silent {
        task.abort();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_connection_serves_at_most_its_requests_pipelined_or_not() {
    let app = app("max_requests_per_connection = 3\nread_timeout_seconds = 1\n").await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let pipeline = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5);
    stream.write_all(pipeline.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut raw))
        .await
        .expect("the connection ends")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).to_lowercase();
    let answers: Vec<&str> = raw.split("http/1.1 ").filter(|a| !a.is_empty()).collect();
    assert_eq!(answers.len(), 3, "{raw}");
    assert!(answers.iter().all(|a| a.starts_with("200")), "{raw}");
    assert!(answers[2].contains("connection: close"), "{raw}");
    assert!(!answers[1].contains("connection: close"), "{raw}");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_closes_past_its_age_once_its_request_is_answered() {
    let app = app("connection_max_seconds = 1\nread_timeout_seconds = 1\n").await;

    // A client that keeps its connection busy (a request every 100 ms, every answer read)
    // loses it past its age.
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let closed = tokio::time::timeout(HANG, async {
        let mut buf = vec![0u8; 4096];
        loop {
            let sent = stream
                .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let n = match (sent, stream.read(&mut buf).await) {
                (Ok(()), Ok(n)) => n,
                _ => return,
            };
            if n == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "the daemon closes the connection");

    // A request whose handler outlives the age (an immediate sync waiting 3 s) is answered.
    let answer = tokio::time::timeout(
        HANG,
        app.sync(
            serde_json::json!({"app_key": "stripe_test", "immediate": true, "wait_seconds": 3}),
            202,
        ),
    )
    .await
    .expect("answered");
    assert_eq!(answer["status"], "pending");
    app.stop().await;
}
