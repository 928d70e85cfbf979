//! A database outage mid-run: webhooks and /health answer 503 while Postgres is down, workers pause
//! and reconnect, and when it returns everything resumes without a restart and converges.

use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, StripeData};
use supasaasy_testkit::pg::TestPostgres;

use crate::helpers::{fake_ids, spawn_app, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_pauses_work_and_everything_resumes() {
    // A cluster of its own: this test stops it.
    let pg = std::sync::Arc::new(
        tokio::task::spawn_blocking(TestPostgres::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let app = spawn_app(Setup {
        database_url: Some(pg.url("postgres")),
        worker_toml: "concurrency = 2\npoll_interval_ms = 100\nlease_seconds = 2\nrequest_timeout_seconds = 1\n".into(),
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 1000,
            ..Counts::default()
        }))
    })
    .await;
    app.fake().set_latency(Duration::from_millis(40));
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = uuid::Uuid::parse_str(job["job_id"].as_str().unwrap()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let pages: i32 = app
                .db()
                .await
                .query_one("SELECT pages FROM supasaasy.sync_tasks", &[])
                .await
                .unwrap()
                .get(0);
            if pages >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();

    let down = pg.clone();
    tokio::task::spawn_blocking(move || down.stop_server())
        .await
        .unwrap()
        .unwrap();
    let health = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "down");
    let id = app.fake().ids("customer")[0].clone();
    app.fake()
        .update("customer", &id, |c| c["name"] = json!("During the outage"));
    let event = app.fake().last_event().unwrap();
    let (status, answer) = app.deliver("stripe_test", &event).await;
    assert_eq!(
        status, 503,
        "an event is never acknowledged unless written: {answer}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let up = pg.clone();
    tokio::task::spawn_blocking(move || up.start_server())
        .await
        .unwrap()
        .unwrap();
    // The provider delivers again; now it is written.
    let (status, answer) = app.deliver("stripe_test", &event).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let doc = app.wait_job(&job_id.to_string()).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    let health = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}
