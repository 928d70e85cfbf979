//! Provider faults: retryable errors retried with backoff, rate limits honoured, attempts spent and
//! then the job failed; fatal errors fail at once. And clients too slow to send a request.

use std::time::Duration;

use serde_json::json;
use supasaasy::task::TaskOutcome;
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_stripe::{Counts, StripeData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::helpers::{fake_ids, spawn_app, Setup, TestApp};
use crate::metrics::{parse, scrape, sum};

fn setup() -> Setup {
    Setup {
        workers: false,
        worker_toml: "retry_base_ms = 1\nmax_attempts = 3\n".into(),
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 350,
            ..Counts::default()
        }))
    }
}

async fn run_once(app: &TestApp) -> TaskOutcome {
    Worker::new(app.ctx.clone())
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
        .expect("a task is due")
}

async fn full_customers(app: &TestApp) -> String {
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    job["job_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn retryable_errors_and_rate_limits_are_retried_in_place() {
    let app = spawn_app(setup()).await;
    let job = full_customers(&app).await;
    app.fake().fail_next(3, 500);
    assert_eq!(
        run_once(&app).await,
        TaskOutcome::Completed {
            job_status: "completed".into()
        }
    );
    let job2 = full_customers(&app).await;
    app.fake().fail_next(1, 429);
    assert_eq!(
        run_once(&app).await,
        TaskOutcome::Completed {
            job_status: "completed".into()
        }
    );
    for id in [job, job2] {
        let doc = app.wait_job(&id).await;
        assert_eq!(doc["tasks"][0]["attempts"], 1, "{doc}");
    }
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    app.stop().await;
}

#[tokio::test]
async fn persistent_errors_spend_attempts_then_fail_the_job() {
    let app = spawn_app(setup()).await;
    let job = full_customers(&app).await;
    app.fake().fail_next(1_000_000, 503);
    let db = app.db().await;
    for attempt in 1..=2 {
        let outcome = run_once(&app).await;
        assert!(
            matches!(outcome, TaskOutcome::Retrying { .. }),
            "attempt {attempt}: {outcome:?}"
        );
        let row = db
            .query_one(
                "SELECT status, attempts, run_after > now() FROM supasaasy.sync_tasks",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "pending");
        assert_eq!(row.get::<_, i32>(1), attempt);
        // The backoff is honoured: not claimable yet; then the wait is back-dated, not slept.
        assert!(row.get::<_, bool>(2));
        assert!(Worker::new(app.ctx.clone())
            .try_execute_task(&CancellationToken::new())
            .await
            .unwrap()
            .is_none());
        db.execute("UPDATE supasaasy.sync_tasks SET run_after = now()", &[])
            .await
            .unwrap();
    }
    let outcome = run_once(&app).await;
    assert!(
        matches!(&outcome, TaskOutcome::Failed { job_status, .. } if job_status == "failed"),
        "{outcome:?}"
    );
    let doc = app.wait_job(&job).await;
    assert_eq!(doc["status"], "failed");
    assert!(
        doc["error_message"].as_str().unwrap().contains("503"),
        "{doc}"
    );
    assert_eq!(app.count("entities").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn fatal_errors_fail_at_once_with_an_operators_message() {
    let app = spawn_app(setup()).await;
    let job = full_customers(&app).await;
    app.fake().fail_next(1, 403);
    let outcome = run_once(&app).await;
    assert!(matches!(outcome, TaskOutcome::Failed { .. }), "{outcome:?}");
    let doc = app.wait_job(&job).await;
    assert_eq!(doc["tasks"][0]["attempts"], 1);
    let message = doc["error_message"].as_str().unwrap();
    assert!(
        message.contains("stripe_test") && message.contains("403"),
        "{message}"
    );
    assert!(!message.contains("sk_test"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn slow_clients_cannot_hold_a_connection() {
    let app = spawn_app(Setup {
        server_toml: "read_timeout_seconds = 1\n".into(),
        ..setup()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // Headers that never finish: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /sync HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");

    // A body that never finishes: 408, and nothing is enqueued.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"app",
        crate::helpers::ADMIN_KEY
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("an answer within the timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(app.count("sync_jobs").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_request_budget_spaces_every_request_of_the_app() {
    let app = spawn_app(Setup {
        requests_per_second: 40.0,
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 450,
            products: 3,
            prices_per_product: 2,
            subscriptions: 120,
            items_per_subscription: 2,
            canceled_every: 5,
            ..Counts::default()
        }))
    })
    .await;
    let started = std::time::Instant::now();
    let job = app
        .sync(json!({"app_key": "stripe_test", "mode": "full"}), 202)
        .await;
    let doc = app.wait_job(job["job_id"].as_str().unwrap()).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    let elapsed = started.elapsed();
    // Four tasks ran at once, yet no two requests started less than 1/40 s apart: n requests
    // took at least (n - 1) / 40 s.
    let requests = app.fake().requests();
    assert!(requests >= 10, "{requests}");
    let floor = Duration::from_millis(25 * (requests - 1));
    assert!(elapsed >= floor, "{requests} requests in {elapsed:?}");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    let metrics = scrape(&app).await;
    let waits = sum(
        &parse(&metrics),
        "supasaasy_rate_limit_waits_total",
        &[("app_key", "stripe_test")],
    )
    .unwrap_or(0.0);
    assert!(waits > 0.0, "the budget made requests wait:\n{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_provider_rate_limit_below_the_traffic_is_waited_out() {
    // No budget on the daemon's side, and a provider that refuses more than 20 requests a second
    // (two at once): the four tasks and their ranges run into 429s and wait them out.
    let app = spawn_app(Setup::classic(StripeData::generate(&Counts {
        customers: 900,
        products: 3,
        prices_per_product: 2,
        subscriptions: 120,
        items_per_subscription: 2,
        canceled_every: 5,
        ..Counts::default()
    })))
    .await;
    app.fake().set_rate_limit(Some(20.0));
    let job = app
        .sync(json!({"app_key": "stripe_test", "mode": "full"}), 202)
        .await;
    let doc = app.wait_job(job["job_id"].as_str().unwrap()).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    assert!(app.fake().rate_limited() > 0, "the limit was reached");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    assert_eq!(
        app.live_ids("stripe_test", "stripe_subscription_item")
            .await,
        fake_ids(app.fake(), "subscription_item")
    );
    app.stop().await;
}
