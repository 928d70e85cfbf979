//! The queue: resuming an interrupted task, fencing a stale worker, two workers never sharing a
//! task, cancelling a running job.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use supasaasy::store::entities::{self, PageWrite};
use supasaasy::store::jobs;
use supasaasy::store::locks::SessionLock;
use supasaasy::store::StoreError;
use supasaasy::task::TaskOutcome;
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_stripe::{Counts, StripeData};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{fake_ids, spawn_app, Setup, TestApp};

fn customers(n: usize) -> StripeData {
    StripeData::generate(&Counts {
        customers: n,
        products: 2,
        prices_per_product: 1,
        subscriptions: 0,
        items_per_subscription: 1,
        canceled_every: 0,
        ..Counts::default()
    })
}

async fn pages_done(app: &TestApp, job: &str) -> i32 {
    let id = Uuid::parse_str(job).unwrap();
    app.db()
        .await
        .query_one(
            "SELECT COALESCE(max(pages), 0) FROM supasaasy.sync_tasks WHERE job_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

async fn wait_for_pages(app: &TestApp, job: &str, at_least: i32) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while pages_done(app, job).await < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the task makes progress");
}

#[tokio::test]
async fn an_interrupted_task_resumes_at_the_next_page_without_duplicates_or_gaps() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(1000))
    })
    .await;
    app.fake().set_latency(Duration::from_millis(40));
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();

    // The first worker dies (its future is dropped: no release, no more writes) after a few pages.
    let first = Worker::new(app.ctx.clone());
    let running =
        tokio::spawn(async move { first.try_execute_task(&CancellationToken::new()).await });
    wait_for_pages(&app, &job_id, 4).await;
    running.abort();
    let _ = running.await;
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT id, lease_id, pages, status FROM supasaasy.sync_tasks WHERE job_id = $1",
            &[&Uuid::parse_str(&job_id).unwrap()],
        )
        .await
        .unwrap();
    let (task_id, old_lease, pages_before): (Uuid, Uuid, i32) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(row.get::<_, String>(3), "processing");
    assert!(
        pages_before >= 4,
        "interrupted mid-resource at page {pages_before}"
    );

    // While the lease holds, nobody else may take the task.
    let other = Worker::new(app.ctx.clone());
    assert!(other
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
        .is_none());

    // The lease runs out (back-dated rather than waited for); another worker resumes.
    db.execute(
        "UPDATE supasaasy.sync_tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
        &[&task_id],
    )
    .await
    .unwrap();
    app.fake().set_latency(Duration::ZERO);
    let outcome = other
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        TaskOutcome::Completed {
            job_status: "completed".into()
        }
    );

    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    // The listing is split into `created` ranges (each ending with a partial page): at least 10
    // pages. Each of the first owner's walkers (up to 8) may have had a page in hand and the next
    // one prefetched, which the second owner fetches again.
    let committed: i32 = db
        .query_one(
            "SELECT pages FROM supasaasy.sync_tasks WHERE id = $1",
            &[&task_id],
        )
        .await
        .unwrap()
        .get(0);
    let listed = app.fake().requests_to("/v1/customers");
    assert!(
        listed as i64 <= i64::from(committed) + 16,
        "{committed} pages, at most two a walker fetched twice; made {listed}"
    );
    let task = db
        .query_one(
            "SELECT attempts, pages, entity_count FROM supasaasy.sync_tasks WHERE id = $1",
            &[&task_id],
        )
        .await
        .unwrap();
    assert_eq!(task.get::<_, i32>(0), 2);
    assert!((10..=10 + 64).contains(&task.get::<_, i32>(1)));
    assert_eq!(task.get::<_, i64>(2), 1000, "no page counted twice");
    let doc = app.wait_job(&job_id).await;
    assert_eq!(doc["processed_entities"], 1000);

    // The old owner comes back: every write it tries is fenced off.
    let stale = jobs::ClaimedTask {
        id: task_id,
        job_id: Uuid::parse_str(&job_id).unwrap(),
        app_key: "stripe_test".into(),
        resource_type: "customer".into(),
        account_id: String::new(),
        mode: supasaasy::config::SyncMode::Full,
        cursor: None,
        lease_id: old_lease,
        attempts: 1,
        run_started_at: None,
        window_end: None,
        note: None,
    };
    let write = PageWrite {
        left_out: &[],
        task_id,
        lease_id: old_lease,
        job_id: stale.job_id,
        app_key: "stripe_test",
        account_id: "",
        api_version: "old",
        records: &[],
        count: 0,
        next_cursor: Some("cus_stale"),
        fetched_at: chrono::Utc::now(),
        requests: 1,
        lease_secs: 60.0,
    };
    assert!(matches!(
        entities::commit_page(&db, &write).await,
        Err(StoreError::LostLease)
    ));
    assert!(matches!(
        entities::write_page_rows(&db, &write).await,
        Err(StoreError::LostLease)
    ));
    assert!(matches!(
        jobs::heartbeat(&**db, &stale, 60.0).await,
        Err(StoreError::LostLease)
    ));
    assert!(matches!(
        jobs::finish_task(&**db, &stale, Some("late")).await,
        Err(StoreError::LostLease)
    ));
    let after = app.wait_job(&job_id).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["failed_tasks"], 0);
    app.stop().await;
}

#[tokio::test]
async fn two_workers_never_run_the_same_task() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::classic(customers(250))
    })
    .await;
    let mut jobs_made = Vec::new();
    for _ in 0..4 {
        let job = app
            .sync(
                json!({"app_key": "stripe_test", "mode": "incremental"}),
                202,
            )
            .await;
        jobs_made.push(job["job_id"].as_str().unwrap().to_string());
    }
    // Many claims race for the 20 tasks: each task is handed out once.
    let db = app.db().await;
    let claims = (0..40).map(|i| {
        let pool = app.ctx.pool.clone();
        async move {
            let client = pool.get().await.unwrap();
            jobs::claim_task(
                &**client,
                &format!("racer-{i}"),
                &["stripe_test".to_string()],
                60.0,
                chrono::Utc::now(),
            )
            .await
            .unwrap()
        }
    });
    let claimed: Vec<_> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(claimed.len(), 20);
    let distinct: HashSet<Uuid> = claimed.iter().map(|t| t.id).collect();
    assert_eq!(distinct.len(), 20);
    db.execute(
        "UPDATE supasaasy.sync_tasks SET status = 'pending', lease_id = NULL, attempts = 0 WHERE status = 'processing'",
        &[],
    )
    .await
    .unwrap();

    // Two worker pools drain the queue side by side; every task runs exactly once.
    let run = |w: Worker| async move {
        let mut ran = Vec::new();
        while let Some(outcome) = w.try_execute_task(&CancellationToken::new()).await.unwrap() {
            ran.push(outcome);
        }
        ran
    };
    let (a, b) = tokio::join!(
        run(Worker::new(app.ctx.clone())),
        run(Worker::new(app.ctx.clone()))
    );
    assert_eq!(
        a.len() + b.len(),
        20,
        "a ran {}, b ran {}",
        a.len(),
        b.len()
    );
    let once: i64 = db
        .query_one(
            "SELECT count(*) FROM supasaasy.sync_tasks WHERE status = 'completed' AND attempts = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(once, 20);
    for job in &jobs_made {
        assert_eq!(app.wait_job(job).await["status"], "completed");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_job_stops_and_sweeps_nothing() {
    let app = spawn_app(Setup::stripe(customers(800))).await;
    let full = json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true});
    assert_eq!(app.sync(full, 200).await["status"], "completed");
    let gone = app.fake().ids("customer")[10].clone();
    app.fake().delete("customer", &gone);

    app.fake().set_latency(Duration::from_millis(60));
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    wait_for_pages(&app, &job_id, 2).await;
    let resp = app
        .admin(reqwest::Method::POST, &format!("/jobs/{job_id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pages_at_cancel = pages_done(&app, &job_id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let doc = app.wait_job(&job_id).await;
    assert_eq!(doc["status"], "cancelled");
    assert!(
        pages_done(&app, &job_id).await <= pages_at_cancel + 1,
        "the worker stopped"
    );
    assert!(
        app.live_ids("stripe_test", "stripe_customer")
            .await
            .contains(&gone),
        "nothing swept"
    );
    app.stop().await;
}

/// A worker holds its task's row and then writes the job's (as a claim, a page or a task's end
/// does); a cancel arriving in between must wait for it rather than deadlock with it.
#[tokio::test]
async fn a_cancel_racing_a_worker_waits_for_it_instead_of_deadlocking() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(5))
    })
    .await;
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = Uuid::parse_str(job["job_id"].as_str().unwrap()).unwrap();

    let mut worker = app.db().await;
    let tx = worker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM supasaasy.sync_tasks WHERE job_id = $1 FOR UPDATE",
        &[&job_id],
    )
    .await
    .unwrap();
    let cancel = tokio::spawn(
        app.admin(reqwest::Method::POST, &format!("/jobs/{job_id}/cancel"))
            .send(),
    );
    // The cancel is waiting for a row lock held by the worker's transaction.
    app.wait_for_count(
        "SELECT count(*) FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE '%sync_tasks%'",
    )
    .await;
    tx.execute(
        "UPDATE supasaasy.sync_jobs SET status = 'processing' WHERE id = $1",
        &[&job_id],
    )
    .await
    .expect("the worker is not chosen as a deadlock victim");
    tx.commit().await.unwrap();

    let resp = cancel.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let doc = app.wait_job(&job_id.to_string()).await;
    assert_eq!(doc["status"], "cancelled");
    let tasks: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.sync_tasks WHERE job_id = $1 AND status <> 'cancelled'",
            &[&job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tasks, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_stopping_worker_releases_its_task_without_spending_an_attempt() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(600))
    })
    .await;
    app.fake().set_latency(Duration::from_millis(30));
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    let stop = CancellationToken::new();
    let worker = Worker::new(app.ctx.clone());
    let token = stop.clone();
    let running = tokio::spawn(async move { worker.try_execute_task(&token).await });
    wait_for_pages(&app, &job_id, 2).await;
    stop.cancel();
    let outcome = running.await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, TaskOutcome::Released);
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT status, attempts, cursor FROM supasaasy.sync_tasks",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert_eq!(row.get::<_, i32>(1), 0);
    assert!(
        row.get::<_, Option<String>>(2).is_some(),
        "the cursor is kept"
    );

    app.fake().set_latency(Duration::ZERO);
    let outcome = Worker::new(app.ctx.clone())
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        TaskOutcome::Completed {
            job_status: "completed".into()
        }
    );
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    app.stop().await;
}

#[tokio::test]
async fn old_ended_jobs_and_ticks_are_pruned_keeping_each_apps_latest_per_mode() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let db = app.db().await;
    let mut ids = std::collections::HashMap::new();
    for (name, app_key, mode, status, days) in [
        ("a", "stripe_test", "full", "completed", 40),
        ("b", "stripe_test", "full", "completed", 35),
        ("c", "stripe_test", "full", "completed", 1),
        ("d", "stripe_test", "incremental", "failed", 50),
        ("e", "stripe_test", "incremental", "processing", 60),
        ("f", "other_app", "full", "cancelled", 45),
        ("g", "stripe_test", "full", "failed", 31),
    ] {
        let id: Uuid = db
            .query_one(
                "INSERT INTO supasaasy.sync_jobs (app_key, mode, status, resource_types, total_tasks, created_at)
                 VALUES ($1, $2, $3, ARRAY['customer'], 1, now() - make_interval(days => $4))
                 RETURNING id",
                &[&app_key, &mode, &status, &days],
            )
            .await
            .unwrap()
            .get(0);
        db.execute(
            "INSERT INTO supasaasy.sync_tasks (job_id, app_key, resource_type, mode, status)
             VALUES ($1, $2, 'customer', $3, $4)",
            &[&id, &app_key, &mode, &status],
        )
        .await
        .unwrap();
        ids.insert(name, id);
    }
    // e (processing, older than d) stays: only ended jobs go. Ticks: one old, one new.
    db.batch_execute(
        "INSERT INTO supasaasy.schedule_ticks (schedule_key, fire_at, created_at)
         VALUES ('k', now() - interval '40 days', now() - interval '40 days'),
                ('k', now(), now())",
    )
    .await
    .unwrap();
    // Batches of two: called again while a batch is full, as the upkeep does.
    let mut deleted = (0, 0);
    loop {
        let (jobs, ticks) = jobs::prune_jobs(&**db, 30, 2).await.unwrap();
        deleted = (deleted.0 + jobs, deleted.1 + ticks);
        if jobs < 2 && ticks < 2 {
            break;
        }
    }
    assert_eq!(deleted, (3, 1));
    let left: Vec<Uuid> = db
        .query("SELECT id FROM supasaasy.sync_jobs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for kept in ["c", "d", "e", "f"] {
        assert!(left.contains(&ids[kept]), "{kept} kept");
    }
    for gone in ["a", "b", "g"] {
        assert!(!left.contains(&ids[gone]), "{gone} pruned");
    }
    let tasks: i64 = db
        .query_one("SELECT count(*) FROM supasaasy.sync_tasks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tasks, 4, "the pruned jobs' tasks went with them");
    app.stop().await;
}

/// Advisory locks granted on the test's database.
async fn advisory_locks_held(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_run_lock_whose_holder_panics_does_not_outlive_it() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(customers(1))
    })
    .await;
    let pool = app.ctx.pool.clone();
    let holder = tokio::spawn(async move {
        let key = "supasaasy.exclusive:stripe_test:stripe_customer".to_owned();
        let lock = SessionLock::try_take(&pool, key).await.unwrap();
        assert!(lock.is_some(), "the lock is free");
        panic!("the run fails while holding its lock");
    });
    assert!(holder.await.unwrap_err().is_panic());
    // The holder's pooled connection would keep the lock for as long as it lives: it is closed
    // instead, and the lock goes with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while advisory_locks_held(&app).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its holder"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = SessionLock::try_take(
        &app.ctx.pool,
        "supasaasy.exclusive:stripe_test:stripe_customer".to_owned(),
    )
    .await
    .unwrap();
    again.expect("the next run takes it").release().await;
    assert_eq!(advisory_locks_held(&app).await, 0, "released, it is gone");
}
