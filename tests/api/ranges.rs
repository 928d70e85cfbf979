//! A full sync of a Stripe resource walks several `created` ranges at once: parity with the
//! provider, objects sharing a boundary second listed once, resuming the range state after a
//! release, a killed worker or a failing provider, and `sync_from`.

use std::time::Duration;

use serde_json::{json, Value};
use supasaasy::task::TaskOutcome;
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_stripe::FakeStripe;
use tokio_util::sync::CancellationToken;

use crate::helpers::{customers, fake_ids, nth_created, spawn_app, Setup, TestApp};

/// Adds `per_second` customers created in each of the `seconds` seconds from `from` on.
fn cluster(fake: &FakeStripe, from: i64, seconds: i64, per_second: usize) {
    for s in 0..seconds {
        for k in 0..per_second {
            let id = format!("cus_same{s:02}x{k:04}");
            let email = format!("{id}@example.com");
            fake.upsert(
                "customer",
                json!({"id": id, "object": "customer", "created": from + s, "email": email}),
            );
        }
    }
}

async fn full_customers(app: &TestApp) -> String {
    let job = json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]});
    app.sync(job, 202).await["job_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_for_pages(app: &TestApp, job: &str, at_least: i32) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while app.task_row(job).await.1 < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the task makes progress");
}

/// The ranges a cursor holds.
fn ranges(cursor: &str) -> Vec<Value> {
    let json = cursor.strip_prefix("ranges:").expect("range state");
    serde_json::from_str::<Vec<Value>>(json).expect("json")
}

async fn run_to_end(app: &TestApp) -> TaskOutcome {
    Worker::new(app.ctx.clone())
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
        .expect("a task to run")
}

fn completed() -> TaskOutcome {
    TaskOutcome::Completed {
        job_status: "completed".into(),
    }
}

#[tokio::test]
async fn a_split_full_sync_lists_every_customer_once_with_many_sharing_a_second() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(2000))
    })
    .await;
    // 1,200 customers in 12 seconds, 100 a second: the splits inside this cluster fall on
    // seconds that many customers share.
    let now = chrono::Utc::now().timestamp();
    cluster(app.fake(), now - 600, 12, 100);
    app.fake().set_latency(Duration::from_millis(10));
    let job = full_customers(&app).await;
    assert_eq!(run_to_end(&app).await, completed());

    let all = fake_ids(app.fake(), "customer");
    assert_eq!(all.len(), 3200);
    assert_eq!(app.live_ids("stripe_test", "stripe_customer").await, all);
    let (_, pages, entities, _) = app.task_row(&job).await;
    assert_eq!(entities, 3200, "no customer listed twice");
    // Each range ends with a partial (or empty) page: more pages than 32 full ones.
    assert!(pages > 32, "{pages} pages: the listing was split");
    assert_eq!(app.wait_job(&job).await["processed_entities"], 3200);
    app.stop().await;
}

#[tokio::test]
async fn a_released_split_sync_resumes_every_range_without_duplicates_or_gaps() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(3000))
    })
    .await;
    app.fake().set_latency(Duration::from_millis(40));
    let job = full_customers(&app).await;
    let stopping = CancellationToken::new();
    let worker = Worker::new(app.ctx.clone());
    let token = stopping.clone();
    let running = tokio::spawn(async move { worker.try_execute_task(&token).await });
    wait_for_pages(&app, &job, 10).await;
    stopping.cancel();
    let outcome = running.await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, TaskOutcome::Released);

    let (status, pages, entities, cursor) = app.task_row(&job).await;
    assert_eq!(status, "pending");
    assert!(pages < 30, "released mid-run at page {pages}");
    let state = ranges(cursor.as_deref().expect("a cursor"));
    let undone = state.iter().filter(|r| r["done"] == false).count();
    assert!(state.len() >= 2 && undone >= 1, "{state:?}");

    app.fake().set_latency(Duration::ZERO);
    assert_eq!(run_to_end(&app).await, completed());
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    let (_, _, after, _) = app.task_row(&job).await;
    assert!(entities < 3000);
    assert_eq!(after, 3000, "no page counted twice");
    app.stop().await;
}

#[tokio::test]
async fn a_killed_split_sync_resumes_from_its_committed_ranges() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(3000))
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    cluster(app.fake(), now - 900, 5, 100);
    app.fake().set_latency(Duration::from_millis(40));
    let job = full_customers(&app).await;
    // The worker dies (its future is dropped mid-page: no release, no more writes).
    let worker = Worker::new(app.ctx.clone());
    let running =
        tokio::spawn(async move { worker.try_execute_task(&CancellationToken::new()).await });
    wait_for_pages(&app, &job, 8).await;
    running.abort();
    let _ = running.await;
    let (status, _, _, cursor) = app.task_row(&job).await;
    assert_eq!(status, "processing");
    assert!(cursor.unwrap().starts_with("ranges:"));

    // The lease runs out (back-dated rather than waited for); another worker resumes.
    app.db()
        .await
        .execute(
            "UPDATE supasaasy.sync_tasks SET lease_expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    app.fake().set_latency(Duration::ZERO);
    assert_eq!(run_to_end(&app).await, completed());
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    assert_eq!(app.task_row(&job).await.2, 3500, "no page counted twice");
    app.stop().await;
}

#[tokio::test]
async fn a_provider_failing_mid_split_leaves_a_resumable_state() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(2500))
    })
    .await;
    app.fake().set_latency(Duration::from_millis(30));
    let job = full_customers(&app).await;
    let worker = Worker::new(app.ctx.clone());
    let running =
        tokio::spawn(async move { worker.try_execute_task(&CancellationToken::new()).await });
    wait_for_pages(&app, &job, 6).await;
    // Every request fails for longer than the in-place retries last.
    app.fake().fail_next(1_000, 500);
    let outcome = running.await.unwrap().unwrap().unwrap();
    assert!(
        matches!(
            outcome,
            TaskOutcome::Retrying { .. } | TaskOutcome::CircuitOpen
        ),
        "{outcome:?}"
    );
    let (status, _, _, cursor) = app.task_row(&job).await;
    assert_eq!(status, "pending");
    assert!(!ranges(cursor.as_deref().expect("a cursor")).is_empty());

    // The provider recovers; the retry (made due now) resumes the ranges.
    app.fake().fail_next(0, 500);
    app.fake().set_latency(Duration::ZERO);
    app.ctx.ops.breakers.success("stripe_test");
    app.db()
        .await
        .execute(
            "UPDATE supasaasy.sync_tasks SET run_after = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(run_to_end(&app).await, completed());
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    assert_eq!(app.task_row(&job).await.2, 2500, "no page counted twice");
    app.stop().await;
}

#[tokio::test]
async fn a_split_sync_respects_sync_from() {
    let data = customers(1500);
    let (cutoff, from) = nth_created(&data, 500);
    let app = spawn_app(Setup {
        workers: false,
        app_extra: format!("sync_from = \"{from}\"\n"),
        ..Setup::stripe(data)
    })
    .await;
    let job = full_customers(&app).await;
    assert_eq!(run_to_end(&app).await, completed());
    let fake = app.fake();
    let mut want: Vec<String> = fake
        .ids("customer")
        .into_iter()
        .filter(|id| {
            fake.get("customer", id).unwrap()["created"]
                .as_i64()
                .unwrap()
                >= cutoff
        })
        .collect();
    want.sort();
    assert_eq!(app.live_ids("stripe_test", "stripe_customer").await, want);
    assert_eq!(app.task_row(&job).await.2, want.len() as i64);
    app.stop().await;
}
